package a2awire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// IDKind is what an id names.
type IDKind int

// Kinds of ids.
const (
	TaskID IDKind = iota + 1
	ContextID
)

func (k IDKind) String() string {
	if k == ContextID {
		return "contextId"
	}
	return "taskId"
}

// Mapper maps one id found in a message (an upstream's id to the one the
// caller sees, or back); an error stops the rewrite and is returned as is.
type Mapper func(kind IDKind, id string) (string, error)

// Facts are what the gateway reads from a result or a stream event, with
// the ids as the Mapper made them.
type Facts struct {
	// TaskID and ContextID are the task (or message) the result is about;
	// empty when it names none.
	TaskID, ContextID string
	// State is the task's state as the agent wrote it ("" when the result
	// carries none).
	State string
	// Final is set for an event after which a stream ends: a message, or
	// a task or status update in a terminal or interrupted state (or
	// marked final, in 0.3).
	Final bool
	// Tasks is how many tasks a ListTasks result returned.
	Tasks int
}

// ErrShape reports a message whose shape is not what its method returns.
var ErrShape = errors.New("the agent's answer does not have the shape A2A gives it")

// Object members that hold ids or the objects that do.
const (
	fieldID               = "id"
	fieldTaskID           = "taskId"
	fieldContextID        = "contextId"
	fieldReferenceTaskIDs = "referenceTaskIds"
	fieldMessage          = "message"
	fieldTask             = "task"
	fieldStatusUpdate     = "statusUpdate"
	fieldArtifactUpdate   = "artifactUpdate"
	fieldStatus           = "status"
	fieldState            = "state"
	fieldHistory          = "history"
	fieldTasks            = "tasks"
	fieldKind             = "kind"
	fieldFinal            = "final"
	fieldMetadata         = "metadata"
	fieldParts            = "parts"
	fieldConfiguration    = "configuration"
)

// 0.3's kind discriminators.
const (
	kindTask           = "task"
	kindMessage        = "message"
	kindStatusUpdate   = "status-update"
	kindArtifactUpdate = "artifact-update"
)

// decode reads raw with numbers kept exactly.
func decode(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// SendFacts are what a SendMessage request tells policy: the skill the
// caller names, if any (metadata "skill" of the request, else of its
// message), and the sizes in bytes of the message's parts and of the
// request's and message's metadata, as sent.
type SendFacts struct {
	Skill         string
	MessageBytes  int64
	MetadataBytes int64
	// PushConfig is set when the request asks the agent to push updates
	// to a URL (configuration.taskPushNotificationConfig in 1.0,
	// configuration.pushNotificationConfig in 0.3).
	PushConfig bool
}

// ReadSend reads the facts of a SendMessage request's params.
func ReadSend(params json.RawMessage) (SendFacts, error) {
	var p struct {
		Message *struct {
			Parts    json.RawMessage `json:"parts"`
			Metadata json.RawMessage `json:"metadata"`
		} `json:"message"`
		Metadata      json.RawMessage            `json:"metadata"`
		Configuration map[string]json.RawMessage `json:"configuration"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return SendFacts{}, fmt.Errorf("the params are not a SendMessage request: %w", err)
	}
	if p.Message == nil {
		return SendFacts{}, errors.New("the params name no message")
	}
	f := SendFacts{
		MessageBytes:  int64(len(p.Message.Parts)),
		MetadataBytes: int64(len(nonNull(p.Metadata)) + len(nonNull(p.Message.Metadata))),
	}
	for _, k := range []string{"taskPushNotificationConfig", "pushNotificationConfig"} {
		if v, ok := p.Configuration[k]; ok && string(v) != "null" {
			f.PushConfig = true
		}
	}
	for _, m := range []json.RawMessage{p.Metadata, p.Message.Metadata} {
		var meta struct {
			Skill *string `json:"skill"`
		}
		if len(nonNull(m)) > 0 && json.Unmarshal(m, &meta) == nil && meta.Skill != nil {
			f.Skill = *meta.Skill
			break
		}
	}
	return f, nil
}

func nonNull(raw json.RawMessage) json.RawMessage {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	return raw
}

// RewriteParams maps the task and context ids a request of op names
// (SendMessage: the message's taskId, contextId and referenceTaskIds;
// GetTask, CancelTask, SubscribeToTask: id; ListTasks: contextId) and
// returns the params re-encoded. Params of other operations come back
// unchanged.
func RewriteParams(op Op, params json.RawMessage, m Mapper) (json.RawMessage, error) {
	if len(params) == 0 {
		return params, nil
	}
	v, err := decode(params)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("params must be an object")
	}
	switch op {
	case OpSend, OpSendStream:
		msg, ok := obj[fieldMessage].(map[string]any)
		if !ok {
			return nil, errors.New("the params name no message")
		}
		if err := mapMessage(msg, m); err != nil {
			return nil, err
		}
	case OpGetTask, OpCancelTask, OpSubscribe:
		if err := mapField(obj, fieldID, TaskID, m); err != nil {
			return nil, err
		}
	case OpListTasks:
		if err := mapField(obj, fieldContextID, ContextID, m); err != nil {
			return nil, err
		}
	default:
		return params, nil
	}
	return marshal(obj)
}

// RequestIDs returns the task and context ids a request of op names (each
// "" when absent): for SendMessage its message's, for the task methods
// the task's, for ListTasks the context filter.
func RequestIDs(op Op, params json.RawMessage) (taskID, contextID string) {
	var p struct {
		ID        string `json:"id"`
		ContextID string `json:"contextId"`
		Message   struct {
			TaskID    string `json:"taskId"`
			ContextID string `json:"contextId"`
		} `json:"message"`
	}
	_ = json.Unmarshal(params, &p)
	switch op {
	case OpSend, OpSendStream:
		return p.Message.TaskID, p.Message.ContextID
	case OpGetTask, OpCancelTask, OpSubscribe:
		return p.ID, ""
	case OpListTasks:
		return "", p.ContextID
	}
	return "", ""
}

// RewriteResult maps the ids of the result of op, in version v, and reads
// its facts: a SendMessage result (1.0: {"task": …} or {"message": …};
// 0.3: the task or message itself), a task (GetTask, CancelTask), a
// ListTasks result, or one stream event (SendStreamingMessage,
// SubscribeToTask: 1.0 a StreamResponse, 0.3 a task, message, status or
// artifact update by its kind).
func RewriteResult(v Version, op Op, result json.RawMessage, m Mapper) (json.RawMessage, Facts, error) {
	val, err := decode(result)
	if err != nil {
		return nil, Facts{}, fmt.Errorf("%w: %w", ErrShape, err)
	}
	obj, ok := val.(map[string]any)
	if !ok {
		return nil, Facts{}, ErrShape
	}
	var f Facts
	switch op {
	case OpSend, OpSendStream, OpSubscribe:
		if v == V10 {
			f, err = mapStreamResponse(obj, m, op == OpSend)
		} else {
			f, err = mapByKind(obj, m, op == OpSend)
		}
	case OpGetTask, OpCancelTask:
		f, err = mapTask(obj, m)
	case OpListTasks:
		tasks, ok := obj[fieldTasks].([]any)
		if !ok && obj[fieldTasks] != nil {
			return nil, Facts{}, ErrShape
		}
		for _, t := range tasks {
			to, ok := t.(map[string]any)
			if !ok {
				return nil, Facts{}, ErrShape
			}
			if _, err := mapTask(to, m); err != nil {
				return nil, Facts{}, err
			}
		}
		f.Tasks = len(tasks)
	default:
		return result, Facts{}, nil
	}
	if err != nil {
		return nil, Facts{}, err
	}
	out, err := marshal(obj)
	return out, f, err
}

// mapStreamResponse maps a 1.0 StreamResponse (or SendMessageResponse when
// sendOnly: only task or message) holding exactly one member.
func mapStreamResponse(obj map[string]any, m Mapper, sendOnly bool) (Facts, error) {
	var found []string
	for _, k := range []string{fieldTask, fieldMessage, fieldStatusUpdate, fieldArtifactUpdate} {
		if _, ok := obj[k]; ok {
			found = append(found, k)
		}
	}
	if len(found) != 1 || sendOnly && found[0] != fieldTask && found[0] != fieldMessage {
		return Facts{}, ErrShape
	}
	inner, ok := obj[found[0]].(map[string]any)
	if !ok {
		return Facts{}, ErrShape
	}
	switch found[0] {
	case fieldTask:
		return mapTask(inner, m)
	case fieldMessage:
		if err := mapMessage(inner, m); err != nil {
			return Facts{}, err
		}
		f := messageFacts(inner)
		f.Final = true
		return f, nil
	case fieldStatusUpdate:
		return mapStatusUpdate(inner, m)
	default:
		return mapArtifactUpdate(inner, m)
	}
}

// mapByKind maps a 0.3 result or event by its kind.
func mapByKind(obj map[string]any, m Mapper, sendOnly bool) (Facts, error) {
	kind, _ := obj[fieldKind].(string)
	switch {
	case kind == kindTask:
		return mapTask(obj, m)
	case kind == kindMessage:
		if err := mapMessage(obj, m); err != nil {
			return Facts{}, err
		}
		f := messageFacts(obj)
		f.Final = true
		return f, nil
	case kind == kindStatusUpdate && !sendOnly:
		f, err := mapStatusUpdate(obj, m)
		if final, _ := obj[fieldFinal].(bool); final {
			f.Final = true
		}
		return f, err
	case kind == kindArtifactUpdate && !sendOnly:
		return mapArtifactUpdate(obj, m)
	}
	return Facts{}, ErrShape
}

func mapTask(t map[string]any, m Mapper) (Facts, error) {
	if err := mapField(t, fieldID, TaskID, m); err != nil {
		return Facts{}, err
	}
	if err := mapField(t, fieldContextID, ContextID, m); err != nil {
		return Facts{}, err
	}
	if h, ok := t[fieldHistory].([]any); ok {
		for _, e := range h {
			if msg, ok := e.(map[string]any); ok {
				if err := mapMessage(msg, m); err != nil {
					return Facts{}, err
				}
			}
		}
	}
	state, err := mapStatus(t, m)
	if err != nil {
		return Facts{}, err
	}
	id, _ := t[fieldID].(string)
	ctx, _ := t[fieldContextID].(string)
	return Facts{TaskID: id, ContextID: ctx, State: state, Final: StateEndsStream(state)}, nil
}

// mapStatus maps the message of t's status and returns its state.
func mapStatus(t map[string]any, m Mapper) (string, error) {
	st, ok := t[fieldStatus].(map[string]any)
	if !ok {
		return "", nil
	}
	if msg, ok := st[fieldMessage].(map[string]any); ok {
		if err := mapMessage(msg, m); err != nil {
			return "", err
		}
	}
	state, _ := st[fieldState].(string)
	return state, nil
}

func mapStatusUpdate(u map[string]any, m Mapper) (Facts, error) {
	f, err := mapEventIDs(u, m)
	if err != nil {
		return Facts{}, err
	}
	if f.State, err = mapStatus(u, m); err != nil {
		return Facts{}, err
	}
	f.Final = StateEndsStream(f.State)
	return f, nil
}

func mapArtifactUpdate(u map[string]any, m Mapper) (Facts, error) {
	return mapEventIDs(u, m)
}

func mapEventIDs(u map[string]any, m Mapper) (Facts, error) {
	if err := mapField(u, fieldTaskID, TaskID, m); err != nil {
		return Facts{}, err
	}
	if err := mapField(u, fieldContextID, ContextID, m); err != nil {
		return Facts{}, err
	}
	id, _ := u[fieldTaskID].(string)
	ctx, _ := u[fieldContextID].(string)
	return Facts{TaskID: id, ContextID: ctx}, nil
}

// mapMessage maps a message's taskId, contextId and referenceTaskIds.
func mapMessage(msg map[string]any, m Mapper) error {
	if err := mapField(msg, fieldTaskID, TaskID, m); err != nil {
		return err
	}
	if err := mapField(msg, fieldContextID, ContextID, m); err != nil {
		return err
	}
	refs, ok := msg[fieldReferenceTaskIDs]
	if !ok || refs == nil {
		return nil
	}
	list, ok := refs.([]any)
	if !ok {
		return fmt.Errorf("%w: %s is not a list", ErrShape, fieldReferenceTaskIDs)
	}
	for i, r := range list {
		s, ok := r.(string)
		if !ok {
			return fmt.Errorf("%w: %s holds a value that is not an id", ErrShape, fieldReferenceTaskIDs)
		}
		mapped, err := m(TaskID, s)
		if err != nil {
			return err
		}
		list[i] = mapped
	}
	return nil
}

func messageFacts(msg map[string]any) Facts {
	id, _ := msg[fieldTaskID].(string)
	ctx, _ := msg[fieldContextID].(string)
	return Facts{TaskID: id, ContextID: ctx}
}

// mapField maps obj[key], a string id of kind, when present and not
// empty.
func mapField(obj map[string]any, key string, kind IDKind, m Mapper) error {
	raw, ok := obj[key]
	if !ok || raw == nil {
		return nil
	}
	s, ok := raw.(string)
	if !ok {
		return fmt.Errorf("%w: %s is not a string", ErrShape, key)
	}
	if s == "" {
		return nil
	}
	mapped, err := m(kind, s)
	if err != nil {
		return err
	}
	obj[key] = mapped
	return nil
}

// StateEndsStream reports whether a task in state is done or waits for
// the caller — terminal (completed, failed, canceled, rejected) or
// interrupted (input or auth required) — in either version's spelling: a
// stream ends after it.
func StateEndsStream(state string) bool {
	s := strings.ToLower(strings.TrimPrefix(state, "TASK_STATE_"))
	switch strings.ReplaceAll(s, "_", "-") {
	case "completed", "failed", "canceled", "cancelled", "rejected", "input-required", "auth-required":
		return true
	}
	return false
}

// FilterTasks keeps, of a ListTasks result, only the tasks of context
// contextID (an agent's own id). The rest of the result is kept as is.
func FilterTasks(result json.RawMessage, contextID string) (json.RawMessage, error) {
	v, err := decode(result)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShape, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, ErrShape
	}
	tasks, ok := obj[fieldTasks].([]any)
	if !ok {
		if obj[fieldTasks] != nil {
			return nil, ErrShape
		}
		return result, nil
	}
	kept := make([]any, 0, len(tasks))
	for _, t := range tasks {
		if to, ok := t.(map[string]any); ok && to[fieldContextID] == contextID {
			kept = append(kept, t)
		}
	}
	obj[fieldTasks] = kept
	return marshal(obj)
}
