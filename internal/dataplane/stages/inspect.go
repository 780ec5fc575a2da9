package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Inspect runs the configuration's runtime inspection rules (package
// inspect) on both sides of a call:
//
//   - the request, before Authorize: what a call sends (a tool call's
//     arguments, a message to a remote agent) is scanned; the names of
//     enforced findings become call.PolicyFindings, which the policy
//     engine reads as context.findings, and a blocking rule refuses the
//     call (inspection_blocked);
//   - the response of every operation the upstream answers (a call, a
//     read, a get, a query of tasks, a cancel, a subscription): every
//     frame relayed before the result is scanned as it passes (with a
//     carry-over window, so a match split across frames is found),
//     redacted or masked, or ends the stream with a refusal; a rule with
//     hold-back keeps frames until the whole answer is inspected. The
//     result is scanned, checked against row and size ceilings and
//     classifiers, redacted or masked, or withheld with a refusal,
//     audited as blocked after the upstream answered.
//
// Every finding is recorded in call.Findings for the audit record. What a
// message carries comes from call.Content, the protocol's view of its own
// encoding; the stage never parses a protocol.
type Inspect struct {
	// Classifier asks classifier services; nil: every classifier rule
	// finds classifier.unavailable.
	Classifier *inspect.ClassifierClient
}

var _ pipeline.Stage = Inspect{}

// Name implements pipeline.Stage.
func (Inspect) Name() string { return "inspect" }

// errStreamEnded is what a relayed message gets once inspection ended the
// stream (or the call is over).
var errStreamEnded = errors.New("runtime inspection ended the stream")

// Handle implements pipeline.Stage.
func (s Inspect) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Config == nil {
		return next(ctx, c)
	}
	rs := c.Config.Inspection()
	if rs.Empty() {
		return next(ctx, c)
	}
	target := inspect.Target{Upstream: c.Target.Upstream, Tool: c.Target.Own, Team: c.Agent.GetTeam()}
	rec := &recorder{}
	defer func() { c.Findings, c.FindingsOmitted = rec.result() }()
	content := c.Content
	if content == nil {
		content = jsonContent{}
	}
	if c.Op == pipeline.OpCall {
		if rules := rs.For(inspect.Request, target); len(rules) > 0 {
			if err := s.request(ctx, c, rs, rules, content, rec); err != nil {
				return nil, err
			}
		}
	}
	if !upstreamAnswers(c.Op) {
		return next(ctx, c)
	}
	rules := rs.For(inspect.Response, target)
	if len(rules) == 0 {
		return next(ctx, c)
	}
	return s.response(ctx, c, rs, rules, content, rec, next)
}

// upstreamAnswers reports whether an operation's answer comes from the
// upstream, so that response rules inspect it: everything but lists and
// session requests, which the gateway answers itself.
func upstreamAnswers(op pipeline.Operation) bool {
	switch op {
	case pipeline.OpList, pipeline.OpSession, pipeline.OpUnsubscribe:
		return false
	}
	return true
}

// classifierCall describes c to classifiers.
func classifierCall(c *pipeline.Call, side inspect.Side) inspect.Call {
	return inspect.Call{Side: side, Protocol: c.Protocol, Operation: string(c.Op), Upstream: c.Target.Upstream, Target: c.Target.Own}
}

// classify asks the rules' classifiers about parts.
func (s Inspect) classify(ctx context.Context, c *pipeline.Call, rs *inspect.Ruleset, rules []*inspect.Rule, side inspect.Side, parts []inspect.Part) []inspect.Finding {
	if !slices.ContainsFunc(rules, func(r *inspect.Rule) bool { return r.Classifier != nil }) {
		return nil
	}
	if s.Classifier == nil {
		var out []inspect.Finding
		for _, r := range rules {
			if r.Classifier != nil {
				a := inspect.Flag
				if r.Classifier.FailClosed {
					a = inspect.Block
				}
				out = append(out, inspect.Finding{Rule: r, Detector: "classifier", Kind: "unavailable", Action: a, Location: side.String() + ": no classifier client"})
			}
		}
		return out
	}
	return s.Classifier.Classify(ctx, rules, rs.Egress(), classifierCall(c, side), parts)
}

// request inspects a call's arguments and returns the refusal of a
// blocking rule, if any.
func (s Inspect) request(ctx context.Context, c *pipeline.Call, rs *inspect.Ruleset, rules []*inspect.Rule, content pipeline.Content, rec *recorder) error {
	parts, err := content.Parts(pipeline.PayloadArguments, c.Arguments)
	if err != nil {
		// Arguments the protocol cannot read: their bytes are text.
		parts = []inspect.Part{{Where: "arguments", Text: string(c.Arguments)}}
	}
	out := inspect.Scan(rules, parts, inspect.Options{})
	findings := append(out.Findings, s.classify(ctx, c, rs, rules, inspect.Request, parts)...)
	rec.add("request", findings)
	c.PolicyFindings = inspect.PolicyNames(findings)
	return refusal(findings, "the arguments", "the call was not made")
}

// refusal is the refusal of the first enforced blocking finding, nil when
// none blocks: inspection_unavailable for a classifier that failed closed,
// inspection_blocked for anything else. what and then word the message.
func refusal(findings []inspect.Finding, what, then string) error {
	for _, f := range findings {
		if f.Rule == nil || !f.Rule.Enforced() || f.Action != inspect.Block {
			continue
		}
		if f.Detector == "classifier" && f.Kind == "unavailable" {
			return pipeline.Refuse(pipeline.ReasonInspectionUnavailable,
				"the classifier of inspection rule %q could not judge %s and the rule fails closed, so %s; retry later", f.Rule.Name, what, then)
		}
		return pipeline.Refuse(pipeline.ReasonInspectionBlocked, "inspection rule %q found %s in %s, so %s",
			f.Rule.Name, foundNames(findings, f.Rule), what, then)
	}
	return nil
}

// foundNames lists what rule found, for a refusal: finding names, never
// what was found.
func foundNames(findings []inspect.Finding, rule *inspect.Rule) string {
	var ns []string
	for _, f := range findings {
		if f.Rule == rule {
			ns = append(ns, f.Name())
		}
	}
	slices.Sort(ns)
	return strings.Join(slices.Compact(ns), ", ")
}

// response runs the call with its relayed frames inspected, then inspects
// the result.
func (s Inspect) response(ctx context.Context, c *pipeline.Call, rs *inspect.Ruleset, rules []*inspect.Rule, content pipeline.Content, rec *recorder, next pipeline.Handler) (*pipeline.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &stream{rules: rules, content: content, rec: rec, cancel: cancel}
	for _, r := range rules {
		if r.Enforced() && r.HoldBack > 0 {
			st.holdBack = max(st.holdBack, r.HoldBack)
		}
	}
	if orig := c.Relay; orig != nil {
		st.orig = orig
		wrapped := *orig
		if orig.Notify != nil {
			wrapped.Notify = st.notify
		}
		if orig.Ask != nil {
			wrapped.Ask = st.ask
		}
		c.Relay = &wrapped
		defer func() { c.Relay = orig }()
	}
	res, err := next(ctx, c)
	ended := st.close()
	if ended != nil {
		return withheld(res), ended
	}
	if err != nil || res == nil || len(res.Body) == 0 {
		st.release()
		return res, err
	}
	parts, perr := content.Parts(pipeline.PayloadResult, res.Body)
	if perr != nil {
		parts = []inspect.Part{{Where: "result", Text: string(res.Body)}}
	}
	out := inspect.Scan(rules, parts, inspect.Options{Rows: true, Bytes: st.bytes + int64(len(res.Body))})
	findings := append(out.Findings, s.classify(ctx, c, rs, rules, inspect.Response, parts)...)
	rec.add("response", findings)
	if len(out.Edits) > 0 && perr == nil {
		body, err := content.Rewrite(pipeline.PayloadResult, res.Body, out.Edits)
		if err != nil {
			findings = append(findings, cannotRedact(out))
		} else {
			res.Body = body
		}
	} else if len(out.Edits) > 0 {
		findings = append(findings, cannotRedact(out))
	}
	if err := refusal(findings, "the answer", "it was withheld"); err != nil {
		return withheld(res), err
	}
	st.release()
	return res, nil
}

// withheld is what the stages before this one learn of an answer
// inspection withheld or a stream it ended: what the upstream took and
// consumed (its latency, a model's usage, which budgets settle on, the
// content's digest, a task's facts), and nothing of what it said.
func withheld(res *pipeline.Result) *pipeline.Result {
	if res == nil {
		return &pipeline.Result{}
	}
	return &pipeline.Result{UpstreamLatency: res.UpstreamLatency, Usage: res.Usage, Content: res.Content, Task: res.Task}
}

// cannotRedact turns an enforced redaction that could not be written into
// the message into a block by the same rule (fail closed), as a finding
// recorded nowhere but in the refusal.
func cannotRedact(out *inspect.Outcome) inspect.Finding {
	for _, f := range out.Findings {
		if f.Rule.Enforced() && (f.Action == inspect.Redact || f.Action == inspect.Mask) {
			return inspect.Finding{Rule: f.Rule, Detector: f.Detector, Kind: f.Kind, Action: inspect.Block}
		}
	}
	return inspect.Finding{}
}

// stream inspects the frames relayed to the caller during one call. It is
// safe for concurrent use; frames pass (or are held) in the order they
// arrive.
type stream struct {
	rules    []*inspect.Rule
	content  pipeline.Content
	rec      *recorder
	cancel   context.CancelFunc
	orig     *pipeline.Relay
	holdBack int64

	mu     sync.Mutex
	carry  inspect.Carry
	frames int
	bytes  int64
	held   [][]byte
	heldN  int64
	sized  map[*inspect.Rule]bool
	closed bool
	ended  error
}

// inspectFrame scans one frame and returns it as it may pass (rewritten),
// or ends the stream.
func (st *stream) inspectFrame(msg []byte) ([]byte, error) {
	if st.closed || st.ended != nil {
		return nil, errStreamEnded
	}
	st.frames++
	st.bytes += int64(len(msg))
	parts, perr := st.content.Parts(pipeline.PayloadFrame, msg)
	if perr != nil {
		parts = []inspect.Part{{Where: "message", Text: string(msg)}}
	}
	out := inspect.Scan(st.rules, parts, inspect.Options{Prefix: fmt.Sprintf("frame %d ", st.frames), Carry: &st.carry, Bytes: st.bytes})
	// A size ceiling is reported once per call, not once per frame past it.
	findings := slices.DeleteFunc(out.Findings, func(f inspect.Finding) bool {
		if f.Detector != "size" {
			return false
		}
		if st.sized[f.Rule] {
			return true
		}
		if st.sized == nil {
			st.sized = map[*inspect.Rule]bool{}
		}
		st.sized[f.Rule] = true
		return false
	})
	st.rec.add("stream", findings)
	if len(out.Edits) > 0 {
		rewritten, err := st.content.Rewrite(pipeline.PayloadFrame, msg, out.Edits)
		if err != nil || perr != nil {
			findings = append(findings, cannotRedact(out))
		} else {
			msg = rewritten
		}
	}
	if err := refusal(findings, "a message streamed before the result", "the stream was ended"); err != nil {
		st.ended = err
		st.cancel()
		return nil, errStreamEnded
	}
	return msg, nil
}

func (st *stream) notify(msg []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	msg, err := st.inspectFrame(msg)
	if err != nil {
		return err
	}
	if st.holdBack > 0 {
		if st.heldN+int64(len(msg)) > st.holdBack {
			st.ended = pipeline.Refuse(pipeline.ReasonInspectionBlocked,
				"the answer streamed more than the %d bytes inspection holds back to inspect it whole, so the stream was ended", st.holdBack)
			st.cancel()
			return errStreamEnded
		}
		st.held = append(st.held, msg)
		st.heldN += int64(len(msg))
		return nil
	}
	return st.orig.Notify(msg)
}

// ask inspects an upstream→caller request; it is never held back (the
// upstream waits for its answer).
func (st *stream) ask(ctx context.Context, msg []byte) (<-chan []byte, error) {
	st.mu.Lock()
	msg, err := st.inspectFrame(msg)
	st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return st.orig.Ask(ctx, msg)
}

// close stops accepting frames and returns the refusal that ended the
// stream, if one did.
func (st *stream) close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	return st.ended
}

// release passes the held frames on, in order.
func (st *stream) release() {
	st.mu.Lock()
	held := st.held
	st.held = nil
	st.mu.Unlock()
	for _, m := range held {
		if st.orig == nil || st.orig.Notify == nil || st.orig.Notify(m) != nil {
			return
		}
	}
}

// recorder collects a call's findings as its audit record keeps them.
// Safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	findings []pipeline.Finding
	omitted  int
}

func (r *recorder) add(side string, fs []inspect.Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fs {
		if len(r.findings) == pipeline.MaxFindings {
			r.omitted++
			continue
		}
		r.findings = append(r.findings, pipeline.Finding{
			Detector: f.Detector, Kind: f.Kind, Rule: f.Rule.Name, Mode: f.Rule.Mode(),
			Side: side, Location: truncate(f.Location, maxDetail), Action: f.Action.String(),
		})
	}
}

func (r *recorder) result() ([]pipeline.Finding, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.findings), r.omitted
}

// jsonContent is the view of a call without a protocol view of its own:
// each message is one JSON document.
type jsonContent struct{}

var jsonWhere = map[pipeline.Payload]string{
	pipeline.PayloadArguments: "arguments", pipeline.PayloadResult: "result", pipeline.PayloadFrame: "message",
}

func (jsonContent) Parts(p pipeline.Payload, msg []byte) ([]inspect.Part, error) {
	if len(msg) == 0 {
		return nil, nil
	}
	return []inspect.Part{{Where: jsonWhere[p], JSON: msg}}, nil
}

func (jsonContent) Rewrite(_ pipeline.Payload, msg []byte, edits []inspect.Edit) ([]byte, error) {
	for _, e := range edits {
		if e.Part != 0 {
			return nil, fmt.Errorf("no part %d", e.Part)
		}
		if e.JSON != nil {
			msg = e.JSON
			continue
		}
		b, err := json.Marshal(e.Text)
		if err != nil {
			return nil, err
		}
		msg = b
	}
	return msg, nil
}
