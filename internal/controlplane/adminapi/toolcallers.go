package adminapi

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Bounds of one ListToolCallers.
const (
	// DefaultCallersSince is how far back ListToolCallers looks unless
	// asked otherwise.
	DefaultCallersSince = 30 * 24 * time.Hour
	// maxCallerRecords bounds the call records one ListToolCallers reads;
	// the answer says when it stopped there.
	maxCallerRecords = 5_000_000
	// maxCallers bounds the (version, agent) pairs it counts.
	maxCallers = 10_000
	// callersPage is how many records it reads at a time.
	callersPage = 1000
)

// retiredReason is the refusal reason of a call on a retired version
// (pipeline.ReasonToolVersionRetired on the data plane).
const retiredReason = "tool_version_retired"

// ListToolCallers implements ToolService: it counts the calls of the
// tool per version and agent in this node's audit store, so an operator
// knows whom to move before a version's sunset.
func (a *API) ListToolCallers(ctx context.Context, req *connect.Request[adminv1.ListToolCallersRequest]) (*connect.Response[adminv1.ListToolCallersResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := validatePinKey(m.GetUpstream(), m.GetTool()); err != nil {
		return nil, err
	}
	if m.GetVersion() < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("version must not be negative"))
	}
	since := a.cfg.Now().Add(-DefaultCallersSince)
	if s := m.GetSince(); s != nil {
		if !s.IsValid() {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("since is not a valid time"))
		}
		since = s.AsTime()
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	target, err := resolveAuditTarget(st, m.GetUpstream(), m.GetTool())
	if err != nil {
		return nil, err
	}
	type key struct {
		version int64
		agent   string
	}
	counts := map[key]*adminv1.ToolCaller{}
	out := &adminv1.ListToolCallersResponse{}
	f := auditstore.Filter{From: since, Tool: target.tool, Upstream: target.upstream}
	tok := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, connect.NewError(connect.CodeCanceled, err)
		}
		recs, next, err := as.Query(f, tok, callersPage)
		if err != nil {
			a.log.ErrorContext(ctx, "tool callers", "err", err)
			return nil, connect.NewError(connect.CodeInternal, errors.New("reading the audit store failed; see the node's log"))
		}
		for _, r := range recs {
			if !isToolCall(r) || r.GetAgent() == "" {
				continue
			}
			out.Records++
			if m.GetVersion() != 0 && r.GetToolVersion() != m.GetVersion() {
				continue
			}
			k := key{r.GetToolVersion(), r.GetAgent()}
			c := counts[k]
			if c == nil {
				if len(counts) == maxCallers {
					out.Truncated = true
					continue
				}
				c = &adminv1.ToolCaller{Version: k.version, Agent: k.agent}
				counts[k] = c
			}
			c.Calls++
			if r.GetReason() == retiredReason {
				c.Retired++
			}
			if t := r.GetTime(); c.LastCall == nil || t.AsTime().After(c.LastCall.AsTime()) {
				c.LastCall = timestamppb.New(t.AsTime())
			}
		}
		if next == "" {
			break
		}
		if out.Records >= maxCallerRecords {
			out.Truncated = true
			break
		}
		tok = next
	}
	for _, c := range counts {
		out.Callers = append(out.Callers, c)
	}
	slices.SortFunc(out.Callers, func(x, y *adminv1.ToolCaller) int {
		return cmp.Or(cmp.Compare(x.GetVersion(), y.GetVersion()), cmp.Compare(x.GetAgent(), y.GetAgent()))
	})
	return resp(out), nil
}

// isToolCall reports whether r records a call of a tool (records written
// before kinds and target kinds existed are calls of tools).
func isToolCall(r *auditv1.Record) bool {
	switch r.GetKind() {
	case auditv1.EventKind_EVENT_KIND_CALL, auditv1.EventKind_EVENT_KIND_UNSPECIFIED:
	default:
		return false
	}
	return r.GetTargetKind() == "" || r.GetTargetKind() == "tool"
}
