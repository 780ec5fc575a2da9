package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
)

// DiscoverTimeout bounds one DiscoverUpstream: connecting, every tools/list
// page and nothing else.
const DiscoverTimeout = 20 * time.Second

// discoverMaxResponse bounds one message from the upstream when it sets no
// limit of its own (the data planes' default).
const discoverMaxResponse = 8 << 20

// DiscoverUpstream implements UpstreamService: the control plane connects
// to the upstream as a data plane would (its URL under the egress policy,
// its own credential opened from the sealed secret, no redirects), lists
// its tools and compares each with the active pin by toolpin.Hash.
func (a *API) DiscoverUpstream(ctx context.Context, req *connect.Request[adminv1.DiscoverUpstreamRequest]) (*connect.Response[adminv1.DiscoverUpstreamResponse], error) {
	name := req.Msg.GetName()
	if err := resource.ValidateName("name", name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	r, ok := st.Get(resource.Upstream, name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("upstream %q does not exist", name))
	}
	u := r.GetUpstream()
	switch u.GetProtocol() {
	case configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED:
	default:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q does not speak MCP", name))
	}
	if err := a.checkEgress(ctx, "url", u.GetUrl(), u.GetAllowLinkLocal()); err != nil {
		return nil, err
	}
	header, value, err := a.upstreamCredential(st, u)
	if err != nil {
		return nil, err
	}
	var oauth *oauthcc.Config
	if o := u.GetCredential().GetOauthClientCredentials(); o != nil {
		if err := a.checkEgress(ctx, "credential.oauth_client_credentials.token_url", o.GetTokenUrl(), u.GetAllowLinkLocal()); err != nil {
			return nil, err
		}
		oauth = &oauthcc.Config{TokenURL: o.GetTokenUrl(), ClientID: o.GetClientId(), ClientSecret: value,
			Scopes: o.GetScopes(), Audience: o.GetAudience()}
		header, value = "", ""
	}
	maxResponse := u.GetLimits().GetMaxResponseBytes()
	if maxResponse <= 0 {
		maxResponse = discoverMaxResponse
	}
	client, err := mcpclient.New(mcpclient.Config{
		URL: u.GetUrl(), HTTP: a.discoverHTTP(u.GetAllowLinkLocal(), header, value, oauth),
		Name: "portcullis-controlplane", Version: "discover", Era: discoverEra(u.GetMcpEra()),
		MaxMessageBytes: int(min(maxResponse, 1<<30)),
	})
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("upstream %q: %w", name, err))
	}
	lctx, cancel := context.WithTimeout(ctx, DiscoverTimeout)
	defer cancel()
	defs, err := client.ListTools(lctx)
	closeCtx, closeCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer closeCancel()
	_ = client.Close(closeCtx) // ending a legacy session is best effort
	if err != nil {
		a.log.WarnContext(ctx, "discover: upstream tools/list failed", "upstream", name, "err", err)
		code := connect.CodeUnavailable
		if lctx.Err() != nil && ctx.Err() == nil {
			code = connect.CodeDeadlineExceeded
		}
		return nil, connect.NewError(code, fmt.Errorf("upstream %q: %w", name, err))
	}
	tools, err := compareTools(st, u, defs)
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q: %w", name, err))
	}
	return resp(&adminv1.DiscoverUpstreamResponse{Tools: tools}), nil
}

// compareTools compares the live definitions with u's pins: every listed
// tool in the upstream's order, then the pins it no longer lists.
func compareTools(st *state.State, u *configv1.Upstream, defs []json.RawMessage) ([]*adminv1.DiscoveredTool, error) {
	name, prefix := u.GetMeta().GetName(), resource.EffectivePrefix(u)
	pins := map[string]*configv1.ToolPin{}
	var order []string
	st.Each(resource.ToolPin, func(r *fsmv1.Resource) bool {
		if p := r.GetToolPin(); p.GetUpstream() == name {
			pins[p.GetTool()] = p
			order = append(order, p.GetTool())
		}
		return true
	})
	var out []*adminv1.DiscoveredTool
	seen := map[string]bool{}
	for _, def := range defs {
		hash, _, err := toolpin.Hash(def)
		tool := toolpin.Name(def)
		if err != nil || tool == "" {
			return nil, fmt.Errorf("tools/list returned a tool that is not a JSON object with a name")
		}
		if seen[tool] {
			return nil, fmt.Errorf("tools/list returned tool %q twice", tool)
		}
		seen[tool] = true
		d := &adminv1.DiscoveredTool{
			Name: tool, Action: cedarschema.ActionName(prefix, tool), LiveHash: hash,
			Definition: def, SuggestedClass: toolpin.SuggestClass(def), Status: adminv1.DiscoveryStatus_DISCOVERY_STATUS_NEW,
		}
		if v := resource.ActiveVersion(pins[tool]); v != nil {
			d.PinnedHash, d.PinnedVersion, d.PinnedClass = v.GetDefinitionHash(), v.GetVersion(), v.GetClass()
			d.Status = adminv1.DiscoveryStatus_DISCOVERY_STATUS_CHANGED
			if v.GetDefinitionHash() == hash {
				d.Status = adminv1.DiscoveryStatus_DISCOVERY_STATUS_PINNED
			}
		}
		out = append(out, d)
	}
	for _, tool := range order {
		if seen[tool] {
			continue
		}
		v := resource.ActiveVersion(pins[tool])
		out = append(out, &adminv1.DiscoveredTool{
			Name: tool, Action: cedarschema.ActionName(prefix, tool), Status: adminv1.DiscoveryStatus_DISCOVERY_STATUS_MISSING,
			PinnedHash: v.GetDefinitionHash(), PinnedVersion: v.GetVersion(), PinnedClass: v.GetClass(),
		})
	}
	return out, nil
}

// upstreamCredential opens the secret of u's credential: the header to
// send and its value ("" for none).
func (a *API) upstreamCredential(st *state.State, u *configv1.Upstream) (header, value string, err error) {
	var secret string
	switch k := u.GetCredential().GetKind().(type) {
	case nil:
		return "", "", nil
	case *configv1.UpstreamCredential_Bearer:
		header, secret = "Authorization", k.Bearer.GetSecret()
	case *configv1.UpstreamCredential_Header:
		header, secret = k.Header.GetHeader(), k.Header.GetSecret()
	case *configv1.UpstreamCredential_OauthClientCredentials:
		// The value is the client secret; DiscoverUpstream trades it for
		// a token.
		header, secret = "Authorization", k.OauthClientCredentials.GetClientSecret()
	default:
		return "", "", connect.NewError(connect.CodeFailedPrecondition, errors.New("the upstream's credential kind is unknown"))
	}
	r, ok := st.Get(resource.Secret, secret)
	if !ok {
		return "", "", connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the upstream's credential secret %q does not exist", secret))
	}
	v, err := a.cfg.Sealer.Open(r.GetSecret().GetCiphertext(), resource.SecretAAD(secret))
	if err != nil {
		a.log.Error("discover: cannot open a secret", "secret", secret, "err", err)
		return "", "", connect.NewError(connect.CodeInternal, fmt.Errorf("the upstream's credential secret %q cannot be opened", secret))
	}
	value = string(v)
	if _, ok := u.GetCredential().GetKind().(*configv1.UpstreamCredential_Bearer); ok {
		value = "Bearer " + value
	}
	return header, value, nil
}

// discoverHTTP is the HTTP client of one discovery: dialed under the
// egress policy (re-checked at dial time against DNS rebinding), no proxy,
// no redirects (they would carry the credential elsewhere), the
// credential header on every request.
func (a *API) discoverHTTP(allowLinkLocal bool, header, value string, oauth *oauthcc.Config) *http.Client {
	pol := a.cfg.Egress
	pol.AllowLinkLocal = pol.AllowLinkLocal || allowLinkLocal
	d := &net.Dialer{Timeout: 10 * time.Second, ControlContext: pol.DialControlContext}
	base := &http.Transport{
		Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, DisableKeepAlives: true,
	}
	var rt http.RoundTripper = base
	switch {
	case oauth != nil:
		rt = credentialRoundTripper{base: base, header: "Authorization", dynamic: oauthcc.NewSource(*oauth, base).Authorization}
	case header != "":
		rt = credentialRoundTripper{base: base, header: header, value: value}
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// credentialRoundTripper sets the upstream's credential header.
type credentialRoundTripper struct {
	base          http.RoundTripper
	header, value string
	// dynamic, when set, gives the value per request (an OAuth token).
	dynamic func() (string, error)
}

func (c credentialRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	v := c.value
	if c.dynamic != nil {
		var err error
		if v, err = c.dynamic(); err != nil {
			if r.Body != nil {
				_ = r.Body.Close()
			}
			return nil, err
		}
	}
	r = r.Clone(r.Context())
	r.Header.Set(c.header, v)
	return c.base.RoundTrip(r)
}

func discoverEra(e configv1.McpEra) mcpclient.Era {
	switch e {
	case configv1.McpEra_MCP_ERA_LEGACY:
		return mcpclient.EraLegacy
	case configv1.McpEra_MCP_ERA_MODERN:
		return mcpclient.EraModern
	}
	return mcpclient.EraAuto
}
