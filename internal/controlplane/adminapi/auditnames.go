package adminapi

import (
	"fmt"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// Audit queries name tools either way: as agents see them ("--tool
// bank__get_balance", the name in tools/list, Cedar and gwctl access) or
// as their upstream does ("--upstream bank --tool get_balance"). The query
// resolves the name against the current upstreams and pins, so that it
// finds records of both shapes (records written before target_own carry
// the upstream's own name in tool).
//
// A name that is neither pinned now nor an upstream now may still belong
// to a tool that existed once: such a query runs, and when nothing in the
// whole store names the tool or upstream, the query is refused (NOT_FOUND)
// rather than answered with an empty result, which a compliance query
// would read as "no calls".

// auditTarget is what a query's --tool and --upstream select.
type auditTarget struct {
	tool     *auditstore.ToolFilter
	upstream string
	// known: the names are current (a pinned tool, a registered
	// upstream), so an empty result means no calls.
	known bool
}

// resolveAuditTarget resolves a query's tool and upstream names against
// st.
func resolveAuditTarget(st *state.State, upstream, tool string) (auditTarget, error) {
	prefixes := map[string]string{}
	st.Each(resource.Upstream, func(r *fsmv1.Resource) bool {
		prefixes[resource.Name(r)] = resource.EffectivePrefix(r.GetUpstream())
		return true
	})
	visible := func(up, own string) string {
		if p := prefixes[up]; p != "" {
			return p + "__" + own
		}
		return own
	}
	// byVisible finds the pin agents call name.
	byVisible := func(name string) (up, own string, ok bool) {
		st.Each(resource.ToolPin, func(r *fsmv1.Resource) bool {
			p := r.GetToolPin()
			if visible(p.GetUpstream(), p.GetTool()) == name {
				up, own, ok = p.GetUpstream(), p.GetTool(), true
				return false
			}
			return true
		})
		return up, own, ok
	}
	pinned := func(up, own string) bool {
		_, ok := st.Get(resource.ToolPin, resource.ToolPinName(up, own))
		return ok
	}

	if tool == "" {
		_, ok := prefixes[upstream]
		return auditTarget{upstream: upstream, known: ok}, nil
	}
	if upstream == "" {
		if up, own, ok := byVisible(tool); ok {
			return auditTarget{tool: &auditstore.ToolFilter{Name: tool, Upstream: up, Own: own}, known: true}, nil
		}
		return auditTarget{tool: &auditstore.ToolFilter{Name: tool}}, nil
	}
	own := tool
	if !pinned(upstream, tool) {
		if up, o, ok := byVisible(tool); ok {
			if up != upstream {
				return auditTarget{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
					"tool %q belongs to upstream %q, not %q; drop --upstream, or name the tool as %q knows it",
					truncate(tool, 128), up, truncate(upstream, 128), truncate(upstream, 128)))
			}
			own = o // the agents' name, given with its upstream
		}
	}
	f := &auditstore.ToolFilter{Upstream: upstream, Own: own}
	if _, registered := prefixes[upstream]; registered {
		f.Name = visible(upstream, own)
	}
	return auditTarget{tool: f, upstream: upstream, known: pinned(upstream, own)}, nil
}

// errUnknownAuditTarget refuses a query for a tool or upstream that is not
// registered now and that no stored record names.
func errUnknownAuditTarget(upstream, tool string) error {
	if tool == "" {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf(
			"no upstream %q is registered and no audit record names it; list upstreams with 'gwctl upstream list'", truncate(upstream, 128)))
	}
	what := fmt.Sprintf("tool %q", truncate(tool, 128))
	if upstream != "" {
		what = fmt.Sprintf("tool %q of upstream %q", truncate(tool, 128), truncate(upstream, 128))
	}
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(
		"no %s is pinned and no audit record names it; list tools with 'gwctl tool list' and query by the name agents use (--tool <prefix>__<tool>) or by the upstream's (--upstream UPSTREAM --tool TOOL)", what))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
