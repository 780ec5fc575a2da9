package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// exchange is the A2A part of one call, which the endpoint hands the
// forwarder in pipeline.Relay.Wire: what the caller asked, in its wire
// shape. Stages never read it.
type exchange struct {
	// version is the version both the caller and the agent speak (the
	// gateway does not translate).
	version a2awire.Version
	op      a2awire.Op
	// method is the caller's method name, sent to the agent as is.
	method string
	// params are the caller's params, its ids not yet unwrapped.
	params json.RawMessage
	// callerID is the caller's JSON-RPC id, which events relayed before
	// the result carry.
	callerID json.RawMessage
}

// taskKeys is what the forwarder needs of the configuration besides an
// upstream.Resolver: the key gateway-issued ids are signed with. The data
// plane's compiled snapshot implements it.
type taskKeys interface {
	TaskIDKey() []byte
}

// minKeyBytes is the shortest task-id key the forwarder accepts.
const minKeyBytes = 16

// Forwarder is A2A's terminal handler: it sends what the pipeline admitted
// to the agents through the Pool (the agent's own credential, the one
// resilience wrapper), with every task and context id unwrapped on the way
// in and wrapped on the way out (see ids.go), and relays a stream's events
// to the caller in order while it holds the last one back as the result,
// so that the final frame is written after the audit record. Safe for
// concurrent use.
type Forwarder struct {
	Pool   *Pool
	Logger *slog.Logger
}

// Forward implements pipeline.Handler for A2A calls.
func (f *Forwarder) Forward(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	r, ok := c.Config.(upstream.Resolver)
	keys, ok2 := c.Config.(taskKeys)
	if !ok || !ok2 {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, "the data plane has no configuration yet; retry shortly")
	}
	if c.Op == pipeline.OpList {
		return f.listSkills(c), nil
	}
	var x *exchange
	if c.Relay != nil {
		x, _ = c.Relay.Wire.(*exchange)
	}
	if x == nil || c.Agent == nil {
		return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
	}
	key := keys.TaskIDKey()
	if len(key) < minKeyBytes {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig,
			"the control plane sends no key for A2A task ids (it predates A2A brokering); an operator must upgrade it")
	}
	codec := idCodec{key: key, owner: c.Agent.GetMeta().GetName(), upstream: c.Target.Upstream}
	params, err := a2awire.RewriteParams(x.op, x.params, codec.unwrap)
	switch {
	case errors.Is(err, errForeignID):
		return nil, pipeline.Refuse(pipeline.ReasonUnknownTask,
			"task or context not found: an id is valid only for the agent it was given to, with the remote agent that made it")
	case err != nil:
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "the params are not a valid %s request", x.method)
	}
	_, upstreamContext := a2awire.RequestIDs(x.op, params)
	if x.op == a2awire.OpListTasks && upstreamContext == "" {
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments,
			"ListTasks through the gateway must name a contextId it gave you: the agent sees one gateway, and an unfiltered list would show every caller's tasks")
	}
	req := request{upstream: c.Target.Upstream, version: x.version, method: x.method, params: params, repeatable: repeatable(c)}
	ctx = hop.WithChain(ctx, c.Hops)
	if x.op.Streaming() {
		return f.stream(ctx, r, c, x, codec, req)
	}
	return f.call(ctx, r, c, x, codec, req, upstreamContext)
}

// repeatable reports whether an attempt of c may be sent again after a
// failure that may have reached the agent: reads and cancels (cancelling
// is idempotent) may; a message only to an agent the operator classified
// read-only or idempotent.
func repeatable(c *pipeline.Call) bool {
	if c.Op != pipeline.OpCall {
		return true
	}
	class := c.Target.Tool.Class
	return class == configv1.ToolClass_TOOL_CLASS_READ_ONLY || class == configv1.ToolClass_TOOL_CLASS_IDEMPOTENT
}

// listSkills answers a card request: the caller's view is rendered by the
// endpoint from c.Visible; the forwarder only counts the skills.
func (f *Forwarder) listSkills(c *pipeline.Call) *pipeline.Result {
	n := 0
	for _, t := range c.Visible {
		if t.Name != "" {
			n++
		}
	}
	return &pipeline.Result{Items: n}
}

// call forwards one request that is answered with one response.
func (f *Forwarder) call(ctx context.Context, r upstream.Resolver, c *pipeline.Call, x *exchange, codec idCodec, req request, upstreamContext string) (*pipeline.Result, error) {
	start := time.Now()
	resp, err := f.Pool.Call(ctx, r, req)
	if err != nil {
		return nil, err
	}
	res := &pipeline.Result{UpstreamLatency: time.Since(start), Task: &pipeline.Task{ID: c.Target.Item}}
	if resp.Error != nil {
		res.Failure, res.IsError = relayedError(resp.Error), true
		return res, nil //nolint:nilerr // the agent's JSON-RPC error is its answer, relayed

	}
	result := resp.Result
	if x.op == a2awire.OpListTasks {
		// The agent sees one gateway for every caller: whatever it
		// answers, only the context the caller owns leaves.
		if result, err = a2awire.FilterTasks(result, upstreamContext); err != nil {
			return nil, f.malformed(ctx, c, err)
		}
	}
	out, facts, err := a2awire.RewriteResult(x.version, x.op, result, codec.wrap)
	if err != nil {
		return nil, f.malformed(ctx, c, err)
	}
	res.Body = out
	res.Task = taskOf(c, facts, res.Task)
	res.Task.Listed = facts.Tasks
	return res, nil
}

// stream forwards a request answered with events: each is rewritten and
// relayed to the caller at once, except the last — a message, a task or
// status update that ends the stream, or an error — which stops reading
// and becomes the result, for the endpoint to write after the audit
// record.
func (f *Forwarder) stream(ctx context.Context, r upstream.Resolver, c *pipeline.Call, x *exchange, codec idCodec, req request) (*pipeline.Result, error) {
	start := time.Now()
	task := &pipeline.Task{ID: c.Target.Item}
	var final, failure json.RawMessage
	err := f.Pool.Stream(ctx, r, req, func(resp *a2awire.Response) error {
		if resp.Error != nil {
			failure = relayedError(resp.Error)
			return errStop
		}
		out, facts, err := a2awire.RewriteResult(x.version, x.op, resp.Result, codec.wrap)
		if err != nil {
			return err
		}
		task = taskOf(c, facts, task)
		if facts.Final {
			final = out
			return errStop
		}
		msg, err := a2awire.NewResult(x.callerID, out)
		if err != nil {
			return err
		}
		if c.Relay.Notify != nil {
			if err := c.Relay.Notify(msg); err != nil {
				return errCallerGone
			}
		}
		task.Events++
		task.EventBytes += int64(len(msg))
		return nil
	})
	switch {
	case errors.Is(err, errCallerGone):
		return nil, errCallerGone
	case errors.Is(err, a2awire.ErrShape), errors.Is(err, errLongID):
		return nil, f.malformed(ctx, c, err)
	case err != nil:
		return nil, err
	}
	res := &pipeline.Result{Body: final, UpstreamLatency: time.Since(start), Task: task}
	if failure != nil {
		res.Failure, res.IsError = failure, true
	}
	return res, nil
}

// errCallerGone ends a stream whose caller left.
var errCallerGone = errors.New("the caller's stream has ended")

// taskOf updates prev with what facts say.
func taskOf(c *pipeline.Call, facts a2awire.Facts, prev *pipeline.Task) *pipeline.Task {
	t := *prev
	if facts.TaskID != "" {
		t.ID = facts.TaskID
	}
	if facts.ContextID != "" {
		t.ContextID = facts.ContextID
	}
	if facts.State != "" {
		t.State = facts.State
	}
	return &t
}

// malformed logs an agent answer the gateway cannot relay and returns what
// the caller sees.
func (f *Forwarder) malformed(ctx context.Context, c *pipeline.Call, err error) error {
	f.Logger.WarnContext(ctx, "an A2A agent's answer cannot be relayed", slog.String("upstream", c.Target.Upstream),
		slog.String("method", c.Method), slog.Any("error", err))
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "upstream %q is unavailable: its answer is not a valid A2A response", c.Target.Upstream)
}

// maxRelayedMessage bounds an agent's error message relayed to a caller.
const maxRelayedMessage = 512

// relayedError is the agent's JSON-RPC error as the caller sees it: its
// code and (bounded) message; its data, which may name the agent's own
// ids, stays behind.
func relayedError(e *a2awire.Error) json.RawMessage {
	msg := e.Message
	if len(msg) > maxRelayedMessage {
		msg = msg[:maxRelayedMessage]
	}
	b, _ := json.Marshal(a2awire.Error{Code: e.Code, Message: msg})
	return b
}
