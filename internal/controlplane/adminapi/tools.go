package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/toolcompat"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// PinTool implements ToolService: it appends an approved version, hashed by
// toolpin.Hash (the data planes compare upstreams' live definitions with
// the same function), and makes it the default unless keep_default asks
// otherwise. Approving a definition and class the pin already has as a
// version appends nothing: that version becomes the default (or, with
// keep_default, nothing changes). Versions in use (the default, assigned
// ones) are never dropped to keep the pin within its bound.
func (a *API) PinTool(ctx context.Context, req *connect.Request[adminv1.PinToolRequest]) (*connect.Response[adminv1.PinToolResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("upstream", m.GetUpstream()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := resource.ValidateToolName("tool", m.GetTool()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if len(m.GetDefinition()) > resource.MaxToolDefinition {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("definition: at most %d bytes", resource.MaxToolDefinition))
	}
	if m.GetClass() == configv1.ToolClass_TOOL_CLASS_UNSPECIFIED {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("class is required: read-only, idempotent or mutating"))
	}
	name := resource.ToolPinName(m.GetUpstream(), m.GetTool())
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	// An A2A upstream's one pin is its agent card, hashed whole; an MCP
	// upstream's pins are tools. A missing upstream is the state
	// machine's to refuse.
	kind := configv1.PinKind_PIN_KIND_UNSPECIFIED
	if u, ok := st.Get(resource.Upstream, m.GetUpstream()); ok && u.GetUpstream().GetProtocol() == configv1.Protocol_PROTOCOL_A2A {
		kind = configv1.PinKind_PIN_KIND_AGENT_CARD
	}
	var hash string
	var schema []byte
	if kind == configv1.PinKind_PIN_KIND_AGENT_CARD {
		if m.GetTool() != toolpin.AgentCardTool {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("upstream %q speaks A2A: its only pin is its agent card, tool %q", m.GetUpstream(), toolpin.AgentCardTool))
		}
		if hash, err = toolpin.HashCard(m.GetDefinition()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("definition: %w", err))
		}
	} else {
		if hash, schema, err = toolpin.Hash(m.GetDefinition()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("definition: %w", err))
		}
		if named := toolpin.Name(m.GetDefinition()); named != "" && named != m.GetTool() {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("definition names tool %q, not %q", named, m.GetTool()))
		}
	}
	pin := &configv1.ToolPin{Meta: &configv1.ResourceMeta{Name: name}, Upstream: m.GetUpstream(), Tool: m.GetTool(), Kind: kind}
	mode, rev := fsmv1.WriteMode_WRITE_MODE_CREATE, uint64(0)
	if cur, ok := st.Get(resource.ToolPin, name); ok {
		pin = proto.Clone(cur.GetToolPin()).(*configv1.ToolPin)
		pin.Kind = kind
		mode, rev = fsmv1.WriteMode_WRITE_MODE_UPDATE, pin.GetMeta().GetRevision()
		if want := m.GetExpectedRevision(); want != 0 && want != rev {
			return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("tool pin %q is at revision %d, not %d", name, rev, want))
		}
		if same := sameVersion(pin, hash, m.GetClass()); same != nil {
			def := resource.ActiveVersion(pin)
			if m.GetKeepDefault() || def.GetVersion() == same.GetVersion() {
				return resp(&adminv1.PinToolResponse{Pin: pin}), nil
			}
			pin.ActiveVersion = same.GetVersion()
			return a.putPin(ctx, req.Header(), pin, mode, rev, same)
		}
	}
	var last int64
	for _, v := range pin.GetVersions() {
		last = max(last, v.GetVersion())
	}
	added := &configv1.ToolVersion{
		Version:        last + 1,
		DefinitionHash: hash,
		Definition:     m.GetDefinition(),
		InputSchema:    schema,
		Class:          m.GetClass(),
		ApproveTime:    timestamppb.New(a.cfg.Now()),
		ApprovedBy:     callerFrom(ctx).tokenID,
	}
	first := len(pin.GetVersions()) == 0
	pin.Versions = append(pin.Versions, added)
	if !m.GetKeepDefault() || first {
		pin.ActiveVersion = added.GetVersion()
	} else if pin.GetActiveVersion() == 0 {
		// The default was "the newest": keep the version it was.
		pin.ActiveVersion = last
	}
	if err := trimVersions(pin); err != nil {
		return nil, err
	}
	return a.putPin(ctx, req.Header(), pin, mode, rev, added)
}

// putPin writes a pin changed by PinTool and warns about the versions in
// use that the approved version would break.
func (a *API) putPin(ctx context.Context, h http.Header, pin *configv1.ToolPin, mode fsmv1.WriteMode, rev uint64, approved *configv1.ToolVersion) (*connect.Response[adminv1.PinToolResponse], error) {
	r, err := a.put(ctx, h, "ToolService.PinTool", resource.Wrap(pin), mode, rev)
	if err != nil {
		return nil, err
	}
	out := r.GetToolPin()
	return resp(&adminv1.PinToolResponse{Pin: out, Warnings: breakingWarnings(out, approved)}), nil
}

// sameVersion returns the version of pin with this definition hash and
// class, nil for none.
func sameVersion(pin *configv1.ToolPin, hash string, class configv1.ToolClass) *configv1.ToolVersion {
	for _, v := range pin.GetVersions() {
		if v.GetDefinitionHash() == hash && v.GetClass() == class {
			return v
		}
	}
	return nil
}

// trimVersions drops the oldest versions beyond resource.MaxToolVersions
// that no agent can be served, and refuses when the versions in use alone
// are too many.
func trimVersions(pin *configv1.ToolPin) error {
	inUse := map[int64]bool{}
	for _, v := range toolversion.InUse(pin) {
		inUse[v.GetVersion()] = true
	}
	for len(pin.Versions) > resource.MaxToolVersions {
		i := slices.IndexFunc(pin.Versions, func(v *configv1.ToolVersion) bool { return !inUse[v.GetVersion()] })
		if i < 0 {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"tool pin %q keeps at most %d versions and all of them are in use (the default or assigned); move callers to fewer versions first (gwctl tool assign, gwctl tool set-default)",
				resource.Name(resource.Wrap(pin)), resource.MaxToolVersions))
		}
		pin.Versions = slices.Delete(pin.Versions, i, i+1)
	}
	return nil
}

// breakingWarnings names the versions in use (other than approved) that
// approved is not compatible with: once the upstream serves approved,
// their callers are refused.
func breakingWarnings(pin *configv1.ToolPin, approved *configv1.ToolVersion) []string {
	var out []string
	for _, v := range toolversion.InUse(pin) {
		if v.GetVersion() == approved.GetVersion() || v.GetDefinitionHash() == approved.GetDefinitionHash() {
			continue
		}
		rep := toolcompat.Check(toolcompat.Side{Label: versionLabel(v.GetVersion()), Definition: v.GetDefinition()},
			toolcompat.Side{Label: versionLabel(approved.GetVersion()), Definition: approved.GetDefinition()})
		if !rep.Verdict.Breaks() {
			continue
		}
		w := fmt.Sprintf("version %d (%s) is %s with version %d", v.GetVersion(), describeUsers(pin, v.GetVersion()), rep.Verdict, approved.GetVersion())
		if b := rep.Breaking(); len(b) > 0 {
			w += ": " + b[0].String()
		}
		out = append(out, w+"; while the upstream serves version "+fmt.Sprint(approved.GetVersion())+", its callers are refused (tool_version_incompatible)")
	}
	return out
}

// GetToolPin implements ToolService.
func (a *API) GetToolPin(ctx context.Context, req *connect.Request[adminv1.GetToolPinRequest]) (*connect.Response[adminv1.GetToolPinResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.ToolPin, resource.ToolPinName(req.Msg.GetUpstream(), req.Msg.GetTool()))
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetToolPinResponse{Pin: r.GetToolPin()}), nil
}

// ListToolPins implements ToolService.
func (a *API) ListToolPins(ctx context.Context, req *connect.Request[adminv1.ListToolPinsRequest]) (*connect.Response[adminv1.ListToolPinsResponse], error) {
	n, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := decodePageToken(req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListToolPinsResponse{}
	for {
		items, next := st.List(resource.ToolPin, after, n)
		for _, r := range items {
			if u := req.Msg.GetUpstream(); u == "" || r.GetToolPin().GetUpstream() == u {
				out.Pins = append(out.Pins, r.GetToolPin())
			}
			after = resource.Name(r)
			if len(out.Pins) == n {
				if next != "" || r != items[len(items)-1] {
					out.NextPageToken = encodePageToken(after)
				}
				return resp(out), nil
			}
		}
		if next == "" {
			return resp(out), nil
		}
	}
}

// DeleteToolPin implements ToolService.
func (a *API) DeleteToolPin(ctx context.Context, req *connect.Request[adminv1.DeleteToolPinRequest]) (*connect.Response[adminv1.DeleteToolPinResponse], error) {
	name := resource.ToolPinName(req.Msg.GetUpstream(), req.Msg.GetTool())
	if err := a.remove(ctx, req.Header(), "ToolService.DeleteToolPin", resource.ToolPin, name, req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteToolPinResponse{}), nil
}
