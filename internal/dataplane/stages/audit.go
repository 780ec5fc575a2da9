package stages

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditredact"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// AuditWriter records audit records. Write returns nil only once the
// record is recorded; it must be safe for concurrent use. The data plane's
// audit.Writer satisfies it.
type AuditWriter interface {
	Write(ctx context.Context, r *auditv1.Record) error
}

// Audit writes one audit record for every operation that passes through
// it, whatever happened after it: allowed, denied, refused or failed. It
// fails closed: when the record cannot be written the call fails with
// audit_unavailable and any upstream result is withheld. It comes right
// after Authenticate, so every operation of an identified agent is
// recorded, refusals by later stages included.
//
// The record is written after the upstream answered, so a mutating call
// whose record fails was still executed upstream; the caller is told the
// call failed.
type Audit struct {
	Writer AuditWriter
	// Dataplane names this data plane in records.
	Dataplane string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Redactor turns the call's arguments into the record's
	// arguments_json; nil still removes detected secrets.
	Redactor *auditredact.Redactor
	// FailOpen answers calls whose record could not be written (the
	// record is lost; OnLost is told). The default, false, fails closed:
	// such a call's result is withheld with reason audit_unavailable.
	FailOpen bool
	// OnLost, when set, is called for every record that could not be
	// written (both modes), e.g. to count them.
	OnLost func(err error)
}

var _ pipeline.Stage = Audit{}

// errPanicked stands for a later stage that panicked.
var errPanicked = errors.New("a later stage panicked")

// Name implements pipeline.Stage.
func (Audit) Name() string { return "audit" }

// Handle implements pipeline.Stage.
func (a Audit) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	start := c.Start
	if start.IsZero() {
		start = a.now()
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// A panic below: record the call, then let the panic go on.
		if p := recover(); p != nil {
			_ = a.write(ctx, a.record(c, start, nil, errPanicked))
			panic(p)
		}
	}()
	res, err := next(ctx, c)
	returned = true
	if werr := a.write(ctx, a.record(c, start, res, err)); werr != nil {
		if a.OnLost != nil {
			a.OnLost(werr)
		}
		if !a.FailOpen {
			return nil, pipeline.Refuse(pipeline.ReasonAuditUnavailable,
				"the call could not be recorded in the audit log, so its result is withheld; retry later")
		}
	}
	return res, err
}

// write records r. The caller going away must not lose the record, so the
// write ignores the call's cancellation.
func (a Audit) write(ctx context.Context, r *auditv1.Record) error {
	if a.Writer == nil {
		return errors.New("audit: no writer")
	}
	return a.Writer.Write(context.WithoutCancel(ctx), r)
}

func (a Audit) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// record describes a finished operation.
func (a Audit) record(c *pipeline.Call, start time.Time, res *pipeline.Result, err error) *auditv1.Record {
	m := new(recordMessages)
	m.time.Seconds, m.time.Nanos = start.Unix(), int32(start.Nanosecond()) // timestamppb.New(start)
	setDuration(&m.latency, a.now().Sub(start))
	r := &m.record
	*r = auditv1.Record{
		Time:       &m.time,
		Dataplane:  a.Dataplane,
		Kind:       eventKind(c.Op),
		Operation:  string(c.Op),
		TargetKind: string(c.Target.Kind),
		Protocol:   c.Protocol,
		Method:     c.Method,
		Upstream:   c.Target.Upstream,
		// The name agents use ("<prefix>__<tool>", a namespaced URI), as
		// tools/list, Cedar and gwctl access name it; what the caller asked
		// for when it never resolved. The upstream's own name beside it.
		Tool:      truncate(c.Target.Name, maxTargetName),
		TargetOwn: truncate(c.Target.Own, maxTargetName),
		Mode:      pipeline.ModeName(c.Mode),
		Policies:  slices.Clone(c.Decision.Policies),
		Latency:   &m.latency,
		// Shared and never modified, like Policies' source.
		PolicyVersions: c.Decision.Versions,
	}
	if ro, note := c.Rollout, c.RolloutNote; ro != nil && note != nil {
		r.Rollout = &auditv1.RolloutCall{Id: ro.ID(), Stage: ro.Stage(), Candidate: note.Candidate}
		if s := note.Shadow; s != nil {
			sd := &auditv1.ShadowDecision{Decision: "deny", Policies: slices.Clone(s.Policies), Candidate: note.ShadowIsCandidate}
			if s.Allowed {
				sd.Decision = "allow"
			}
			for i, e := range s.Errors {
				if i == maxErrorsShown {
					break
				}
				sd.Errors = append(sd.Errors, truncate(e, maxDetail/maxErrorsShown))
			}
			r.Rollout.Shadow = sd
		}
	}
	if l := c.Limited; l != nil {
		r.RateLimits, r.RateLimitShadow = l.Limits, l.Shadow
	}
	r.ShadowBudgets = c.ShadowBudgets
	if c.Agent != nil {
		r.Agent = c.Agent.GetMeta().GetName()
		r.Team = c.Agent.GetTeam()
	}
	if t := c.Target.Tool; c.Target.Kind == pipeline.KindTool && c.Op == pipeline.OpCall && t.Version != 0 {
		// The version the call was validated against (Gate resolved it).
		r.ToolVersion = t.Version
		r.ToolDeprecated = t.Deprecation != nil && !t.Deprecation.Retired(start)
	}
	if c.Config != nil {
		r.SnapshotVersion = c.Config.Version()
	}
	if c.SourceIP.IsValid() {
		r.SourceIp = c.SourceIP.String()
	}
	if c.User != nil {
		r.User = c.User.Source + "/" + c.User.Name
	}
	if c.Op != pipeline.OpList && c.Op != pipeline.OpSession && c.Payload == nil {
		decoded, _ := c.DecodedArguments()
		r.ArgumentsJson = a.Redactor.Arguments(c.Arguments, decoded)
	}
	if c.Payload != nil {
		// Content the record keeps by size and hash only (a prompt).
		sum := sha256.Sum256(c.Payload)
		r.Content = &auditv1.ContentDigest{RequestBytes: int64(len(c.Payload)), RequestSha256: sum[:]}
	}
	if c.Target.Kind == pipeline.KindAgent {
		r.Detail = &auditv1.Record_Task{Task: taskDetail(c, res)}
	}
	if res != nil {
		setDuration(&m.upstreamLatency, res.UpstreamLatency)
		r.UpstreamLatency = &m.upstreamLatency
		r.UpstreamError = res.IsError
		r.ResponseBytes = int64(len(res.Body) + len(res.Failure))
		if res.Task != nil {
			r.ResponseBytes += res.Task.EventBytes
		}
		if c.Op == pipeline.OpList {
			r.Detail = &auditv1.Record_List{List: &auditv1.ListDetail{Items: uint32(min(res.Items, 1<<31))}}
		}
		if u := res.Usage; u != nil {
			r.Usage = &auditv1.Usage{
				InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens, CacheWriteTokens: u.CacheWriteTokens,
				OutputTokens: u.OutputTokens, ReasoningTokens: u.ReasoningTokens,
				CostNanos: u.Cost, Priced: u.Priced, Estimated: u.Estimated, Model: truncate(u.Model, maxEcho),
			}
		}
		if d := res.Content; d != nil {
			if r.Content == nil {
				r.Content = &auditv1.ContentDigest{}
			}
			r.Content.ResponseBytes, r.Content.ResponseSha256 = d.Bytes, d.SHA256
		}
	}
	for _, f := range c.Findings {
		r.Findings = append(r.Findings, &auditv1.Finding{
			Detector: f.Detector, Kind: f.Kind, Rule: f.Rule, Mode: f.Mode, Side: f.Side, Location: f.Location, Action: f.Action,
		})
	}
	r.FindingsOmitted = uint32(min(c.FindingsOmitted, 1<<31))
	r.Outcome = "ok"
	if err != nil {
		refusal := pipeline.AsRefusal(err)
		r.Reason = string(refusal.Reason)
		r.Outcome = "error"
		if refusedByGateway(refusal.Reason) {
			r.Outcome = "refused"
		}
	}
	switch {
	case c.Decision.Allowed:
		r.Decision = "allow"
	case r.Reason == string(pipeline.ReasonDenied):
		r.Decision = "deny"
	}
	return r
}

// recordMessages is an audit record and the messages it always or often
// points to, made in one allocation rather than four.
type recordMessages struct {
	record                   auditv1.Record
	time                     timestamppb.Timestamp
	latency, upstreamLatency durationpb.Duration
}

// setDuration sets dst to d as durationpb.New(d) makes it.
func setDuration(dst *durationpb.Duration, d time.Duration) {
	nanos := d.Nanoseconds()
	secs := nanos / 1e9
	dst.Seconds, dst.Nanos = secs, int32(nanos-secs*1e9)
}

// maxTargetName bounds the target names a record keeps: a caller's name
// for a target that never resolved is its own text.
const maxTargetName = 256

// taskDetail describes an operation on a remote agent: the task the
// caller named, what the result said of it, and the sizes.
func taskDetail(c *pipeline.Call, res *pipeline.Result) *auditv1.TaskDetail {
	d := &auditv1.TaskDetail{TaskId: truncate(c.Target.Item, maxEcho)}
	if m := c.Message; m != nil {
		d.Skill, d.MessageBytes, d.MetadataBytes = truncate(m.Skill, maxEcho), m.Bytes, m.MetadataBytes
	}
	if res == nil || res.Task == nil {
		return d
	}
	t := res.Task
	if t.ID != "" {
		d.TaskId = truncate(t.ID, maxEcho)
	}
	d.ContextId, d.State = truncate(t.ContextID, maxEcho), truncate(t.State, maxEcho)
	d.Events, d.EventBytes = uint32(min(t.Events, 1<<31)), t.EventBytes
	d.Tasks = uint32(min(t.Listed, 1<<31))
	return d
}

// eventKind is the record kind of an operation.
func eventKind(op pipeline.Operation) auditv1.EventKind {
	switch op {
	case pipeline.OpList:
		return auditv1.EventKind_EVENT_KIND_LIST
	case pipeline.OpSession:
		return auditv1.EventKind_EVENT_KIND_SESSION
	}
	return auditv1.EventKind_EVENT_KIND_CALL
}

// refusedByGateway reports whether a reason is the gateway declining the
// call (outcome "refused") rather than failing it (outcome "error").
func refusedByGateway(r pipeline.Reason) bool {
	switch r {
	case pipeline.ReasonUnauthenticated, pipeline.ReasonDenied, pipeline.ReasonDegraded,
		pipeline.ReasonFrozen, pipeline.ReasonStale, pipeline.ReasonNoConfig,
		pipeline.ReasonUnknownTool, pipeline.ReasonUnknownTask, pipeline.ReasonInvalidArguments, pipeline.ReasonOriginNotAllowed,
		pipeline.ReasonUnknownModel, pipeline.ReasonBudgetExhausted, pipeline.ReasonUnpriced, pipeline.ReasonLimitExceeded,
		pipeline.ReasonRateLimited, pipeline.ReasonToolVersionRetired, pipeline.ReasonToolVersionIncompatible,
		pipeline.ReasonInspectionBlocked:
		return true
	}
	return false
}
