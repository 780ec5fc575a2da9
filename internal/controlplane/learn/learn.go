// Package learn is the audit consumer that teaches learned lists: every
// allowed and successful call of a list's tool adds the value of the
// list's argument to the set of the caller's scope (see
// config.v1.ListLearning). It also seeds a list from stored history when
// asked to: exactly the values the calls in scope that the consumer has
// already read would have taught.
//
// What counts as a successful call, from its audit record: a call (not a
// list or a session operation) that policy allowed ("allow"), that ended
// "ok", and whose upstream reported no tool error. Denied, refused and
// failed calls teach nothing. The argument is read from the record's
// arguments_json, so a list cannot learn an argument the data planes
// redact from audit records (--audit-redact), and a value that was
// redacted as a detected secret is never learned.
package learn

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Name is the consumer's name (its cursor's).
const Name = "learn"

// Consumer teaches learned lists.
type Consumer struct{}

var _ auditconsumer.Consumer = Consumer{}

// Name implements auditconsumer.Consumer.
func (Consumer) Name() string { return Name }

// Pending implements auditconsumer.Consumer: a list waits to be seeded.
func (Consumer) Pending(st *state.State) bool {
	pending := false
	st.Each(resource.ListLearning, func(r *fsmv1.Resource) bool {
		pending = !r.GetListLearning().GetSeeded()
		return !pending
	})
	return pending
}

// Consume implements auditconsumer.Consumer.
func (Consumer) Consume(ctx context.Context, b *auditconsumer.Batch) error {
	ls := learnings(b.State)
	changes := newChanges()
	for _, l := range ls {
		if l.def.GetSeeded() {
			continue
		}
		if l.tool != nil {
			if err := seed(ctx, b, l, changes); err != nil {
				return fmt.Errorf("seed learned list %q from history: %w", l.def.GetMeta().GetName(), err)
			}
		}
		// A list whose tool is not pinned has no history to learn from.
		b.Out.Seeded = append(b.Out.Seeded, &fsmv1.SeededLearning{List: l.def.GetMeta().GetName(), Generation: l.def.GetGeneration()})
	}
	for _, r := range b.Records {
		for _, l := range ls {
			if scope, v, ok := l.teaches(b.State, r); ok {
				changes.add(l, scope, v, RecordID(r))
			}
		}
	}
	if changes.overflow && len(b.Records) > 1 {
		return auditconsumer.ErrBatchTooLarge
	}
	b.Out.Learned = append(b.Out.Learned, changes.list()...)
	return nil
}

// RecordID names an audit record: "<dataplane>/<sequence>".
func RecordID(r *auditv1.Record) string {
	return fmt.Sprintf("%s/%d", r.GetDataplane(), r.GetSequence())
}

// learning is a list's learning and the call it learns from.
type learning struct {
	def *configv1.ListLearning
	// tool selects the records of the tool, however they name it (nil:
	// the tool is not pinned).
	tool *auditstore.ToolFilter
	path []string
	// known holds the values already learned, by scope.
	known map[string]map[string]bool
}

// learnings lists the learnings of st. One whose tool is not pinned (any
// more) has no upstream: no call teaches it.
func learnings(st *state.State) []*learning {
	var out []*learning
	st.Each(resource.ListLearning, func(r *fsmv1.Resource) bool {
		def := r.GetListLearning()
		tool, _ := Records(st, def.GetTool())
		l := &learning{def: def, tool: tool, path: resource.ArgumentPath(def.GetArgument()), known: map[string]map[string]bool{}}
		for _, s := range def.GetSets() {
			m := make(map[string]bool, len(s.GetValues()))
			for _, v := range s.GetValues() {
				m[v] = true
			}
			l.known[s.GetScope()] = m
		}
		out = append(out, l)
		return true
	})
	return out
}

// Tool finds the pinned tool whose action name is action: its upstream and
// its name there.
func Tool(st *state.State, action string) (upstream, tool string, ok bool) {
	st.Each(resource.ToolPin, func(r *fsmv1.Resource) bool {
		p := r.GetToolPin()
		u, found := st.Get(resource.Upstream, p.GetUpstream())
		if found && cedarschema.ActionName(resource.EffectivePrefix(u.GetUpstream()), p.GetTool()) == action {
			upstream, tool, ok = p.GetUpstream(), p.GetTool(), true
			return false
		}
		return true
	})
	return upstream, tool, ok
}

// Records selects the audit records of the pinned tool whose action name
// is action: records name it by that name, or (records written before
// they kept both names) by its upstream's own name for it.
func Records(st *state.State, action string) (*auditstore.ToolFilter, bool) {
	up, tool, ok := Tool(st, action)
	if !ok {
		return nil, false
	}
	return &auditstore.ToolFilter{Name: action, Upstream: up, Own: tool}, true
}

// Successful reports whether a record is an allowed call that succeeded.
func Successful(r *auditv1.Record) bool {
	switch r.GetKind() {
	case auditv1.EventKind_EVENT_KIND_CALL, auditv1.EventKind_EVENT_KIND_UNSPECIFIED:
	default:
		return false
	}
	return (r.GetOperation() == "" || r.GetOperation() == "call") && r.GetDecision() == "allow" &&
		r.GetOutcome() == "ok" && !r.GetUpstreamError()
}

// teaches returns the scope and value a record teaches l, if any.
func (l *learning) teaches(st *state.State, r *auditv1.Record) (scope, value string, ok bool) {
	if l.tool == nil || r.GetUpstream() != l.tool.Upstream || !l.tool.Matches(r) || !Successful(r) {
		return "", "", false
	}
	scope = ScopeOfRecord(st, l.def.GetScope(), r)
	if scope == "" {
		return "", "", false
	}
	value, ok = Argument(r.GetArgumentsJson(), l.path)
	return scope, value, ok
}

// ScopeOfRecord is the scope a record's call belongs to under a learning's
// scope kind: its agent's, its agent's team's (as the state knows the
// agent now), or the global one. Empty when it has none.
func ScopeOfRecord(st *state.State, kind configv1.LearningScope, r *auditv1.Record) string {
	team := ""
	if kind == configv1.LearningScope_LEARNING_SCOPE_TEAM {
		if a, ok := st.Get(resource.Agent, r.GetAgent()); ok {
			team = a.GetAgent().GetTeam()
		}
	}
	return resource.ScopeOf(kind, r.GetAgent(), team)
}

// Argument reads the string at path in a record's arguments. It refuses
// what an audit record altered: a redacted value ("[REDACTED…]") and
// arguments that are not JSON (cut, or replaced as invalid).
func Argument(argumentsJSON string, path []string) (string, bool) {
	if argumentsJSON == "" || len(path) == 0 {
		return "", false
	}
	var v any
	if err := json.Unmarshal([]byte(argumentsJSON), &v); err != nil {
		return "", false
	}
	for _, name := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[name]; !ok {
			return "", false
		}
	}
	s, ok := v.(string)
	if !ok || strings.HasPrefix(s, "[REDACTED") || s == "" || len(s) > limits.ListValue || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}

// seed adds to changes what the stored calls of l's tool that the cursor
// has consumed, from l's seed_from on, teach l.
func seed(ctx context.Context, b *auditconsumer.Batch, l *learning, changes *changes) error {
	f := auditstore.Filter{From: l.def.GetSeedFrom().AsTime(), Upstream: l.tool.Upstream, Tool: l.tool, Decision: "allow", Outcome: "ok"}
	token := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, next, err := b.Audit.Query(f, token, 1000)
		if err != nil {
			return err
		}
		for _, r := range recs {
			n, ok := b.Cursor[r.GetDataplane()]
			if !ok || r.GetSequence() >= n {
				continue // not consumed yet: the live batches teach it
			}
			if scope, v, ok := l.teaches(b.State, r); ok {
				changes.add(l, scope, v, RecordID(r))
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// changes collects a batch's new values, once each, by list and scope.
type changes struct {
	byKey map[[2]string]*fsmv1.LearnedChange
	order [][2]string
	total int
	// overflow is set when a value did not fit one command (see
	// limits.ConsumeBatch and limits.LearnedValues) and was left out.
	overflow bool
}

func newChanges() *changes { return &changes{byKey: map[[2]string]*fsmv1.LearnedChange{}} }

// add notes that value was learned in scope of l, unless l knows it or the
// batch has it already.
func (c *changes) add(l *learning, scope, value, recordID string) {
	if l.known[scope][value] {
		return
	}
	key := [2]string{l.def.GetMeta().GetName(), scope}
	if c.total >= limits.LearnedValues || (c.byKey[key] == nil && len(c.order) >= limits.ConsumeBatch) {
		c.overflow = true
		return
	}
	if l.known[scope] == nil {
		l.known[scope] = map[string]bool{}
	}
	l.known[scope][value] = true
	ch := c.byKey[key]
	if ch == nil {
		ch = &fsmv1.LearnedChange{List: key[0], Scope: scope, Generation: l.def.GetGeneration()}
		c.byKey[key] = ch
		c.order = append(c.order, key)
	}
	ch.Add = append(ch.Add, &fsmv1.LearnedValue{Value: value, RecordId: recordID})
	c.total++
}

// list returns the changes sorted by list and scope.
func (c *changes) list() []*fsmv1.LearnedChange {
	keys := slices.Clone(c.order)
	slices.SortFunc(keys, func(a, b [2]string) int {
		if a[0] != b[0] {
			return strings.Compare(a[0], b[0])
		}
		return strings.Compare(a[1], b[1])
	})
	out := make([]*fsmv1.LearnedChange, 0, len(keys))
	for _, k := range keys {
		out = append(out, c.byKey[k])
	}
	return out
}
