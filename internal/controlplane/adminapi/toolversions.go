package adminapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/toolcompat"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

// This file is the part of ToolService that moves callers between
// versions of a tool: assignments, the default, deprecations, and the
// compatibility check they are held to.

// AssignToolVersion implements ToolService: it puts a team or an agent on
// a version, after checking that the version is compatible with the
// definition the upstream serves now; version 0 removes the assignment.
func (a *API) AssignToolVersion(ctx context.Context, req *connect.Request[adminv1.AssignToolVersionRequest]) (*connect.Response[adminv1.AssignToolVersionResponse], error) {
	m := req.Msg
	if err := validatePinKey(m.GetUpstream(), m.GetTool()); err != nil {
		return nil, err
	}
	who, err := assignee(m.GetTeam(), m.GetAgent())
	if err != nil {
		return nil, err
	}
	st, pin, err := a.currentPin(ctx, m.GetUpstream(), m.GetTool())
	if err != nil {
		return nil, err
	}
	if m.GetAgent() != "" && m.GetVersion() != 0 {
		if _, ok := st.Get(resource.Agent, m.GetAgent()); !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("agent %q does not exist", m.GetAgent()))
		}
	}
	if m.GetVersion() == 0 && !slices.ContainsFunc(pin.GetAssignments(), func(x *configv1.ToolAssignment) bool {
		return x.GetTeam() == m.GetTeam() && x.GetAgent() == m.GetAgent()
	}) {
		return resp(&adminv1.AssignToolVersionResponse{Pin: pin}), nil // nothing to remove
	}
	var compat *adminv1.ToolCompatibility
	var live liveDef
	if m.GetVersion() != 0 {
		v, err := a.servable(pin, m.GetVersion())
		if err != nil {
			return nil, err
		}
		if live, err = a.liveDefinition(ctx, st, pin); err != nil {
			return nil, err
		}
		if compat, err = heldToLive(pin, v, live); err != nil {
			return nil, err
		}
	}
	name := resource.ToolPinName(m.GetUpstream(), m.GetTool())
	r, err := a.modify(ctx, req.Header(), "ToolService.AssignToolVersion", resource.ToolPin, name, func(r *fsmv1.Resource) error {
		p := r.GetToolPin()
		if err := checkRevision(name, p, m.GetExpectedRevision()); err != nil {
			return err
		}
		kept := p.Assignments[:0]
		for _, x := range p.GetAssignments() {
			if x.GetTeam() != m.GetTeam() || x.GetAgent() != m.GetAgent() {
				kept = append(kept, x)
			}
		}
		p.Assignments = kept
		if m.GetVersion() == 0 {
			return nil
		}
		// The pin may have changed since the check: check again, against
		// the same live definition.
		v, err := a.servable(p, m.GetVersion())
		if err != nil {
			return err
		}
		if _, err := heldToLive(p, v, live); err != nil {
			return err
		}
		p.Assignments = append(p.Assignments, &configv1.ToolAssignment{
			Version: m.GetVersion(), Team: m.GetTeam(), Agent: m.GetAgent(),
			AssignTime: timestamppb.New(a.cfg.Now()), AssignedBy: callerFrom(ctx).tokenID,
		})
		return nil
	})
	if err != nil {
		return nil, explainPinWrite(err, who)
	}
	return resp(&adminv1.AssignToolVersionResponse{Pin: r.GetToolPin(), Compatibility: compat}), nil
}

// SetDefaultToolVersion implements ToolService: it makes a version the
// default after the same compatibility check as an assignment.
func (a *API) SetDefaultToolVersion(ctx context.Context, req *connect.Request[adminv1.SetDefaultToolVersionRequest]) (*connect.Response[adminv1.SetDefaultToolVersionResponse], error) {
	m := req.Msg
	if err := validatePinKey(m.GetUpstream(), m.GetTool()); err != nil {
		return nil, err
	}
	st, pin, err := a.currentPin(ctx, m.GetUpstream(), m.GetTool())
	if err != nil {
		return nil, err
	}
	v, err := a.servable(pin, m.GetVersion())
	if err != nil {
		return nil, err
	}
	live, err := a.liveDefinition(ctx, st, pin)
	if err != nil {
		return nil, err
	}
	compat, err := heldToLive(pin, v, live)
	if err != nil {
		return nil, err
	}
	name := resource.ToolPinName(m.GetUpstream(), m.GetTool())
	r, err := a.modify(ctx, req.Header(), "ToolService.SetDefaultToolVersion", resource.ToolPin, name, func(r *fsmv1.Resource) error {
		p := r.GetToolPin()
		if err := checkRevision(name, p, m.GetExpectedRevision()); err != nil {
			return err
		}
		v, err := a.servable(p, m.GetVersion())
		if err != nil {
			return err
		}
		if _, err := heldToLive(p, v, live); err != nil {
			return err
		}
		p.ActiveVersion = m.GetVersion()
		return nil
	})
	if err != nil {
		return nil, explainPinWrite(err, "the default")
	}
	return resp(&adminv1.SetDefaultToolVersionResponse{Pin: r.GetToolPin(), Compatibility: compat}), nil
}

// DeprecateToolVersion implements ToolService: it records when a version
// was deprecated and its sunset, or cancels its deprecation.
func (a *API) DeprecateToolVersion(ctx context.Context, req *connect.Request[adminv1.DeprecateToolVersionRequest]) (*connect.Response[adminv1.DeprecateToolVersionResponse], error) {
	m := req.Msg
	if err := validatePinKey(m.GetUpstream(), m.GetTool()); err != nil {
		return nil, err
	}
	now := a.cfg.Now()
	switch {
	case m.GetCancel() && (m.GetSunsetTime() != nil || m.GetMessage() != ""):
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("cancel takes no sunset time or message"))
	case m.GetCancel():
	case m.GetSunsetTime() == nil || !m.GetSunsetTime().IsValid():
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("sunset_time is required: when calls on the version stop being served"))
	case !m.GetSunsetTime().AsTime().After(now):
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("sunset_time %s is not in the future", m.GetSunsetTime().AsTime().UTC().Format("2006-01-02T15:04:05Z")))
	case len(m.GetMessage()) > limits.DeprecationMessage:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("message: at most %d bytes", limits.DeprecationMessage))
	}
	name := resource.ToolPinName(m.GetUpstream(), m.GetTool())
	var replacement int64
	r, err := a.modify(ctx, req.Header(), "ToolService.DeprecateToolVersion", resource.ToolPin, name, func(r *fsmv1.Resource) error {
		p := r.GetToolPin()
		if err := checkRevision(name, p, m.GetExpectedRevision()); err != nil {
			return err
		}
		v := toolversion.Find(p, m.GetVersion())
		if v == nil {
			return noVersion(p, m.GetVersion())
		}
		if m.GetCancel() {
			v.DeprecateTime, v.SunsetTime, v.DeprecationMessage = nil, nil, ""
			return nil
		}
		if v.GetDeprecateTime() == nil {
			v.DeprecateTime = timestamppb.New(now)
		}
		v.SunsetTime, v.DeprecationMessage = m.GetSunsetTime(), m.GetMessage()
		replacement = toolversion.Replacement(p, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.DeprecateToolVersionResponse{Pin: r.GetToolPin(), Replacement: replacement}), nil
}

// DiffToolVersions implements ToolService.
func (a *API) DiffToolVersions(ctx context.Context, req *connect.Request[adminv1.DiffToolVersionsRequest]) (*connect.Response[adminv1.DiffToolVersionsResponse], error) {
	m := req.Msg
	if err := validatePinKey(m.GetUpstream(), m.GetTool()); err != nil {
		return nil, err
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	r, ok := st.Get(resource.ToolPin, resource.ToolPinName(m.GetUpstream(), m.GetTool()))
	if !ok {
		return nil, noPin(m.GetUpstream(), m.GetTool())
	}
	pin := r.GetToolPin()
	from := toolversion.Find(pin, m.GetFromVersion())
	if from == nil {
		return nil, noVersion(pin, m.GetFromVersion())
	}
	if m.GetToVersion() == 0 {
		live, err := a.liveDefinition(ctx, st, pin)
		if err != nil {
			return nil, err
		}
		compat, _ := compare(pin, from, live)
		return resp(&adminv1.DiffToolVersionsResponse{Compatibility: compat}), nil
	}
	to := toolversion.Find(pin, m.GetToVersion())
	if to == nil {
		return nil, noVersion(pin, m.GetToVersion())
	}
	rep := toolcompat.Check(toolcompat.Side{Label: versionLabel(from.GetVersion()), Definition: from.GetDefinition()},
		toolcompat.Side{Label: versionLabel(to.GetVersion()), Definition: to.GetDefinition()})
	return resp(&adminv1.DiffToolVersionsResponse{Compatibility: compatibilityOf(rep, versionLabel(from.GetVersion()), versionLabel(to.GetVersion()))}), nil
}

// liveDef is a tool's definition as its upstream serves it now.
type liveDef struct {
	definition []byte
	hash       string
}

// liveDefinition asks the pin's upstream for the tool's definition now.
// An upstream that cannot be reached, or that no longer lists the tool,
// is FAILED_PRECONDITION: without the live definition no compatibility
// can be checked.
func (a *API) liveDefinition(ctx context.Context, st *state.State, pin *configv1.ToolPin) (liveDef, error) {
	_, defs, err := a.liveTools(ctx, st, pin.GetUpstream())
	if err != nil {
		if connect.CodeOf(err) == connect.CodeFailedPrecondition {
			var ce *connect.Error
			if errors.As(err, &ce) {
				return liveDef{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
					"the compatibility of the version with what the upstream serves cannot be checked: %s; retry when the upstream answers", ce.Message()))
			}
		}
		return liveDef{}, err
	}
	for _, d := range defs {
		if toolpin.Name(d) != pin.GetTool() {
			continue
		}
		hash, _, err := toolpin.Hash(d)
		if err != nil {
			return liveDef{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q lists tool %q with a definition that cannot be read: %w", pin.GetUpstream(), pin.GetTool(), err))
		}
		return liveDef{definition: d, hash: hash}, nil
	}
	return liveDef{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
		"upstream %q no longer lists tool %q, so no version can be checked against it (gwctl upstream discover %s)", pin.GetUpstream(), pin.GetTool(), pin.GetUpstream()))
}

// compare checks v against the live definition.
func compare(pin *configv1.ToolPin, v *configv1.ToolVersion, live liveDef) (*adminv1.ToolCompatibility, toolcompat.Report) {
	label := "the live definition"
	match := versionWithHash(pin, live.hash)
	if match != nil {
		label += " (" + versionLabel(match.GetVersion()) + ")"
	} else {
		label += " (" + toolpin.Short(live.hash) + ", not approved)"
	}
	rep := toolcompat.Report{Verdict: toolcompat.Compatible}
	if v.GetDefinitionHash() != live.hash {
		rep = toolcompat.Check(toolcompat.Side{Label: versionLabel(v.GetVersion()), Definition: v.GetDefinition()},
			toolcompat.Side{Label: label, Definition: live.definition})
	}
	out := compatibilityOf(rep, versionLabel(v.GetVersion()), label)
	out.LiveHash = live.hash
	out.LiveVersion = match.GetVersion()
	return out, rep
}

// heldToLive refuses v for callers when it is not compatible with the
// live definition, listing the breaking differences.
func heldToLive(pin *configv1.ToolPin, v *configv1.ToolVersion, live liveDef) (*adminv1.ToolCompatibility, error) {
	out, rep := compare(pin, v, live)
	if !rep.Verdict.Breaks() {
		return out, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version %d of %s/%s is %s with %s, so its callers would be refused:", v.GetVersion(), pin.GetUpstream(), pin.GetTool(), rep.Verdict, out.GetToLabel())
	breaking := rep.Breaking()
	const shown = 10
	for i, d := range breaking {
		if i == shown {
			fmt.Fprintf(&b, "\n  … and %d more", len(breaking)-shown+rep.Omitted)
			break
		}
		b.WriteString("\n  - ")
		b.WriteString(d.String())
	}
	fmt.Fprintf(&b, "\nchoose a compatible version (gwctl tool diff --upstream %s --tool %s %d live)", pin.GetUpstream(), pin.GetTool(), v.GetVersion())
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(b.String()))
}

// compatibilityOf is the API form of a report.
func compatibilityOf(rep toolcompat.Report, from, to string) *adminv1.ToolCompatibility {
	out := &adminv1.ToolCompatibility{FromLabel: from, ToLabel: to, Omitted: int32(min(rep.Omitted, 1<<30))}
	switch rep.Verdict {
	case toolcompat.Compatible:
		out.Verdict = adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_COMPATIBLE
	case toolcompat.Incompatible:
		out.Verdict = adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_INCOMPATIBLE
	default:
		out.Verdict = adminv1.CompatibilityVerdict_COMPATIBILITY_VERDICT_UNKNOWN
	}
	for _, d := range rep.Differences {
		e := adminv1.DifferenceEffect_DIFFERENCE_EFFECT_SAFE
		switch d.Effect {
		case toolcompat.Breaking:
			e = adminv1.DifferenceEffect_DIFFERENCE_EFFECT_BREAKING
		case toolcompat.Undecided:
			e = adminv1.DifferenceEffect_DIFFERENCE_EFFECT_UNDECIDED
		}
		out.Differences = append(out.Differences, &adminv1.ToolDifference{Schema: d.Schema, Path: d.Path, Effect: e, Text: d.Text})
	}
	return out
}

// servable returns version n of pin for callers: it exists and is not
// retired.
func (a *API) servable(pin *configv1.ToolPin, n int64) (*configv1.ToolVersion, error) {
	v := toolversion.Find(pin, n)
	if v == nil {
		return nil, noVersion(pin, n)
	}
	if toolversion.Retired(v, a.cfg.Now()) {
		msg := fmt.Sprintf("version %d of %s/%s was retired at %s", n, pin.GetUpstream(), pin.GetTool(), v.GetSunsetTime().AsTime().UTC().Format("2006-01-02T15:04:05Z"))
		if r := toolversion.Replacement(pin, v); r != 0 {
			msg += fmt.Sprintf("; use version %d", r)
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
	}
	return v, nil
}

// currentPin reads the pin linearizably.
func (a *API) currentPin(ctx context.Context, upstream, tool string) (*state.State, *configv1.ToolPin, error) {
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, nil, a.storeError(ctx, err)
	}
	r, ok := st.Get(resource.ToolPin, resource.ToolPinName(upstream, tool))
	if !ok {
		return nil, nil, noPin(upstream, tool)
	}
	return st, r.GetToolPin(), nil
}

func validatePinKey(upstream, tool string) error {
	if err := resource.ValidateName("upstream", upstream); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := resource.ValidateToolName("tool", tool); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return nil
}

// assignee checks that exactly one of team and agent is named and returns
// how errors name it.
func assignee(team, agent string) (string, error) {
	switch {
	case (team == "") == (agent == ""):
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("name exactly one of team and agent"))
	case team != "":
		if err := resource.ValidateName("team", team); err != nil {
			return "", connect.NewError(connect.CodeInvalidArgument, err)
		}
		return "team " + team, nil
	}
	if err := resource.ValidateName("agent", agent); err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return "agent " + agent, nil
}

func checkRevision(name string, p *configv1.ToolPin, want uint64) error {
	if rev := p.GetMeta().GetRevision(); want != 0 && want != rev {
		return connect.NewError(connect.CodeAborted, fmt.Errorf("tool pin %q is at revision %d, not %d", name, rev, want))
	}
	return nil
}

// explainPinWrite adds who the write was for to a refusal by the state
// machine (a policy the new typing of the arguments would break).
func explainPinWrite(err error, who string) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeFailedPrecondition && strings.Contains(ce.Message(), "policy set") {
		return connect.NewError(ce.Code(), fmt.Errorf("the versions in use would type the tool's arguments so that an enabled policy breaks (putting %s on this version makes a property optional or untyped): %s", who, ce.Message()))
	}
	return err
}

func noPin(upstream, tool string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("tool pin %q does not exist; approve the tool first (gwctl tool approve --upstream %s --tool %s)",
		resource.ToolPinName(upstream, tool), upstream, tool))
}

func noVersion(pin *configv1.ToolPin, n int64) error {
	var have []string
	for _, v := range pin.GetVersions() {
		have = append(have, fmt.Sprint(v.GetVersion()))
	}
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("tool pin %q has no version %d (it has %s)",
		resource.Name(resource.Wrap(pin)), n, strings.Join(have, ", ")))
}

func versionLabel(n int64) string { return fmt.Sprintf("version %d", n) }

// versionWithHash returns the version of pin whose definition hashes to
// hash, the newest when several do; nil for none.
func versionWithHash(pin *configv1.ToolPin, hash string) *configv1.ToolVersion {
	var out *configv1.ToolVersion
	for _, v := range pin.GetVersions() {
		if v.GetDefinitionHash() == hash && (out == nil || v.GetVersion() > out.GetVersion()) {
			out = v
		}
	}
	return out
}

// describeUsers says who is on version n: "the default", "team payments",
// "2 assignments".
func describeUsers(pin *configv1.ToolPin, n int64) string {
	as, isDefault := toolversion.Users(pin, n)
	var parts []string
	if isDefault {
		parts = append(parts, "the default")
	}
	switch {
	case len(as) == 1 && as[0].GetTeam() != "":
		parts = append(parts, "team "+as[0].GetTeam())
	case len(as) == 1:
		parts = append(parts, "agent "+as[0].GetAgent())
	case len(as) > 1:
		parts = append(parts, fmt.Sprintf("%d assignments", len(as)))
	}
	return strings.Join(parts, ", ")
}
