package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

// maxListed bounds the items a list page fetches (pages of the API's
// largest size).
const (
	listPageSize = 1000
	maxListed    = 10 * listPageSize
)

// listAll pages through a list call, up to maxListed items; more reports
// whether some were left out.
func listAll[T any](ctx context.Context, call func(ctx context.Context, token string) ([]T, string, error)) (items []T, more bool, err error) {
	tok := ""
	seen := map[string]bool{}
	for {
		page, next, err := call(ctx, tok)
		if err != nil {
			return nil, false, err
		}
		items = append(items, page...)
		if next == "" {
			return items, false, nil
		}
		if len(items) >= maxListed || seen[next] {
			return items, true, nil
		}
		seen[next] = true
		tok = next
	}
}

// notices are the messages a write's redirect may ask a page to show, by
// code: a page never echoes text from the URL.
var notices = map[string]string{
	"frozen":         "The emergency brake is on: every data plane refuses mutating calls once it has the change.",
	"unfrozen":       "The emergency brake is off.",
	"agent-disabled": "The agent is disabled.",
	"agent-enabled":  "The agent is enabled.",
	"rollout":        "The rollout action was applied.",
}

// canProcedures names the API procedures behind the view's writes, for
// userView.Can.
var canProcedures = map[string]string{
	"freeze":        adminv1connect.DataplaneServiceSetFreezeProcedure,
	"agent-disable": adminv1connect.AgentServiceSetAgentDisabledProcedure,
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("done")] }

// clusterData is the cluster page's content.
type clusterData struct {
	Status     *adminv1.GetClusterStatusResponse
	Dataplanes *adminv1.ListDataplanesResponse
}

func (h *Handler) clusterPage(req *request) error {
	cs, err := h.api.Cluster.GetClusterStatus(req.ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		return err
	}
	dps, err := h.api.Dataplane.ListDataplanes(req.ctx, connect.NewRequest(&adminv1.ListDataplanesRequest{}))
	if err != nil {
		return err
	}
	h.render(req.w, req.r, &req.user, http.StatusOK, "cluster", page{
		Title: "Cluster and data planes", Nav: "cluster", Notice: notice(req.r),
		Data: clusterData{Status: cs.Msg, Dataplanes: dps.Msg},
	})
	return nil
}

// agentsData is the agents page's content.
type agentsData struct {
	Agents []*configv1.Agent
	More   bool
}

func (h *Handler) agentsPage(req *request) error {
	agents, more, err := listAll(req.ctx, func(ctx context.Context, tok string) ([]*configv1.Agent, string, error) {
		res, err := h.api.Agent.ListAgents(ctx, connect.NewRequest(&adminv1.ListAgentsRequest{PageSize: listPageSize, PageToken: tok}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetAgents(), res.Msg.GetNextPageToken(), nil
	})
	if err != nil {
		return err
	}
	h.render(req.w, req.r, &req.user, http.StatusOK, "agents", page{
		Title: "Agents", Nav: "agents", Notice: notice(req.r), Data: agentsData{Agents: agents, More: more},
	})
	return nil
}

// pinRow is one tool pin as the upstreams page shows it.
type pinRow struct {
	Pin    *configv1.ToolPin
	Action string
	Active *configv1.ToolVersion
	// Quarantined lists the data planes that quarantined the active
	// version because the upstream's definition drifted from it.
	Quarantined []string
	// Drift says how: "changed" or "gone".
	Drift string
	// Assigned are the assignments of other versions to teams and agents
	// ("team canary: v2"); Deprecations the deprecated versions and
	// where they stand ("v1: sunset 2026-01-31 00:00:00Z").
	Assigned, Deprecations []string
}

// upstreamsData is the upstreams page's content.
type upstreamsData struct {
	Upstreams []*configv1.Upstream
	Pins      []pinRow
	More      bool
	// Quarantines counts quarantined pins.
	Quarantines int
	// StatusErr is set when data-plane statuses (and so quarantines)
	// could not be read.
	StatusErr string
}

func (h *Handler) upstreamsPage(req *request) error {
	ups, more1, err := h.upstreams(req.ctx)
	if err != nil {
		return err
	}
	pins, more2, err := h.pins(req.ctx)
	if err != nil {
		return err
	}
	d := upstreamsData{Upstreams: ups, More: more1 || more2}
	prefix := map[string]string{}
	for _, u := range ups {
		prefix[u.GetMeta().GetName()] = resource.EffectivePrefix(u)
	}
	type drift struct {
		dps  []string
		gone bool
	}
	q := map[string]*drift{}
	dps, err := h.api.Dataplane.ListDataplanes(req.ctx, connect.NewRequest(&adminv1.ListDataplanesRequest{}))
	if err != nil {
		d.StatusErr = connect.CodeOf(err).String()
	} else {
		for _, dp := range dps.Msg.GetDataplanes() {
			for _, t := range dp.GetQuarantined() {
				key := quarantineKey(t)
				if q[key] == nil {
					q[key] = &drift{}
				}
				q[key].dps = append(q[key].dps, dp.GetName())
				q[key].gone = q[key].gone || t.GetLiveHash() == ""
			}
		}
	}
	for _, p := range pins {
		row := pinRow{Pin: p, Action: cedarschema.ActionName(prefix[p.GetUpstream()], p.GetTool()), Active: resource.ActiveVersion(p)}
		row.Assigned, row.Deprecations = versionNotes(p, h.cfg.Now())
		// A report about an older pinned version is out of date.
		if dr := q[p.GetUpstream()+"/"+p.GetTool()+"@"+row.Active.GetDefinitionHash()]; dr != nil {
			row.Quarantined = dr.dps
			row.Drift = "changed"
			if dr.gone {
				row.Drift = "gone"
			}
			d.Quarantines++
		}
		d.Pins = append(d.Pins, row)
	}
	h.render(req.w, req.r, &req.user, http.StatusOK, "upstreams", page{Title: "Upstreams and tool pins", Nav: "upstreams", Data: d})
	return nil
}

// versionNotes describes who is assigned which version of p, and the
// deprecated versions against their sunsets at now.
func versionNotes(p *configv1.ToolPin, now time.Time) (assigned, deprecations []string) {
	for _, a := range p.GetAssignments() {
		who := "team " + a.GetTeam()
		if a.GetAgent() != "" {
			who = "agent " + a.GetAgent()
		}
		assigned = append(assigned, fmt.Sprintf("%s: v%d", who, a.GetVersion()))
	}
	for _, v := range p.GetVersions() {
		if !toolversion.Deprecated(v) {
			continue
		}
		state := "sunset"
		if toolversion.Retired(v, now) {
			state = "retired"
		}
		deprecations = append(deprecations, fmt.Sprintf("v%d: %s %s", v.GetVersion(), state, v.GetSunsetTime().AsTime().UTC().Format("2006-01-02 15:04:05Z")))
	}
	return assigned, deprecations
}

func quarantineKey(t *configsyncv1.QuarantinedTool) string {
	return t.GetUpstream() + "/" + t.GetTool() + "@" + t.GetPinnedHash()
}

func (h *Handler) upstreams(ctx context.Context) ([]*configv1.Upstream, bool, error) {
	return listAll(ctx, func(ctx context.Context, tok string) ([]*configv1.Upstream, string, error) {
		res, err := h.api.Upstream.ListUpstreams(ctx, connect.NewRequest(&adminv1.ListUpstreamsRequest{PageSize: listPageSize, PageToken: tok}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetUpstreams(), res.Msg.GetNextPageToken(), nil
	})
}

func (h *Handler) pins(ctx context.Context) ([]*configv1.ToolPin, bool, error) {
	return listAll(ctx, func(ctx context.Context, tok string) ([]*configv1.ToolPin, string, error) {
		res, err := h.api.Tool.ListToolPins(ctx, connect.NewRequest(&adminv1.ListToolPinsRequest{PageSize: listPageSize, PageToken: tok}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetPins(), res.Msg.GetNextPageToken(), nil
	})
}

// policySet is one policy set with what the history hook says of it.
type policySet struct {
	Set     *configv1.PolicySet
	History *HistoryView
	// HistoryErr is set when the hook failed for this set.
	HistoryErr string
}

// policiesData is the policies page's content.
type policiesData struct {
	Sets []policySet
	More bool
	// HasHistory says whether the history hook is there at all.
	HasHistory bool
}

func (h *Handler) policiesPage(req *request) error {
	sets, more, err := listAll(req.ctx, func(ctx context.Context, tok string) ([]*configv1.PolicySet, string, error) {
		res, err := h.api.Policy.ListPolicySets(ctx, connect.NewRequest(&adminv1.ListPolicySetsRequest{PageSize: listPageSize, PageToken: tok}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetPolicySets(), res.Msg.GetNextPageToken(), nil
	})
	if err != nil {
		return err
	}
	d := policiesData{More: more, HasHistory: h.cfg.History != nil}
	for _, s := range sets {
		ps := policySet{Set: s}
		if h.cfg.History != nil {
			hv, err := h.cfg.History.PolicyHistory(req.ctx, h.api, s.GetMeta().GetName())
			if err != nil {
				ps.HistoryErr = err.Error()
				var ce *connect.Error
				if errors.As(err, &ce) {
					ps.HistoryErr = ce.Message()
				}
			}
			ps.History = hv
		}
		d.Sets = append(d.Sets, ps)
	}
	h.render(req.w, req.r, &req.user, http.StatusOK, "policies", page{Title: "Policy sets", Nav: "policies", Notice: notice(req.r), Data: d})
	return nil
}

// accessData is the access page's content.
type accessData struct {
	// Actions are the tool actions of the configuration, for the form.
	Actions []string
	// The question asked: the fields of "gwctl access who-can" and
	// "gwctl access check".
	Tool, User, Groups, Agent, Arguments string
	Degraded                             bool
	// The answer, when a question was asked.
	Asked  bool
	Answer *adminv1.WhoCanResponse
	// Check is the decision on one call, when an agent was given.
	Check *adminv1.CheckResponse
	// Problem is why the question could not be answered.
	Problem string
}

// maxGroups bounds the groups a question names.
const maxGroups = 64

func (h *Handler) accessPage(req *request) error {
	q := req.r.URL.Query()
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	d := accessData{
		Tool: get("tool"), User: get("user"), Groups: get("groups"), Agent: get("agent"), Arguments: get("arguments"),
		Degraded: q.Get("degraded") == "on",
	}
	ups, _, err := h.upstreams(req.ctx)
	if err != nil {
		return err
	}
	pins, _, err := h.pins(req.ctx)
	if err != nil {
		return err
	}
	prefix := map[string]string{}
	for _, u := range ups {
		prefix[u.GetMeta().GetName()] = resource.EffectivePrefix(u)
	}
	for _, p := range pins {
		d.Actions = append(d.Actions, cedarschema.ActionName(prefix[p.GetUpstream()], p.GetTool()))
	}
	slices.Sort(d.Actions)
	status := http.StatusOK
	if d.Tool != "" {
		if err := h.ask(req, &d); err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) || (ce.Code() != connect.CodeNotFound && ce.Code() != connect.CodeInvalidArgument) {
				return err
			}
			// A question about something that does not exist, or asked
			// wrongly: answer on the form.
			d.Problem, d.Asked, status = ce.Message(), false, http.StatusBadRequest
		}
	}
	title := "Who can call a tool?"
	if d.Tool != "" {
		title = "Who can call " + d.Tool + "?"
	}
	h.render(req.w, req.r, &req.user, status, "access", page{Title: title, Nav: "access", Data: d})
	return nil
}

// ask answers the access page's question: who can call the tool, and the
// decision on one agent's call when an agent is named.
func (h *Handler) ask(req *request, d *accessData) error {
	var u *adminv1.AccessUser
	if d.User != "" {
		source, name, ok := strings.Cut(d.User, "/")
		if !ok || source == "" || name == "" {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("the user must be SOURCE/NAME: the identity source that verifies the user's token, a slash, and the user claim's value"))
		}
		u = &adminv1.AccessUser{Source: source, Name: name}
		for _, g := range strings.Split(d.Groups, ",") {
			if g = strings.TrimSpace(g); g != "" && len(u.Groups) < maxGroups {
				u.Groups = append(u.Groups, g)
			}
		}
	} else if d.Groups != "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("groups need a user"))
	}
	res := &adminv1.AccessResource{Type: "Tool", Id: d.Tool}
	who, err := h.api.Access.WhoCan(req.ctx, connect.NewRequest(&adminv1.WhoCanRequest{Resource: res, User: u, Degraded: d.Degraded}))
	if err != nil {
		return err
	}
	d.Asked, d.Answer = true, who.Msg
	if d.Agent == "" {
		return nil
	}
	chk, err := h.api.Access.Check(req.ctx, connect.NewRequest(&adminv1.CheckRequest{
		Agent: d.Agent, User: u, Resource: res, ArgumentsJson: d.Arguments, Degraded: d.Degraded,
	}))
	if err != nil {
		return err
	}
	d.Check = chk.Msg
	return nil
}
