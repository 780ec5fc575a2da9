package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/excerpt"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
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
	u, cred, maxResponse, err := a.discoverTarget(ctx, st, name)
	if err != nil {
		return nil, err
	}
	if u.GetProtocol() == configv1.Protocol_PROTOCOL_A2A {
		return a.discoverCard(ctx, st, u, cred, min(maxResponse, limits.ToolDefinition))
	}
	defs, err := a.listTools(ctx, u, cred, maxResponse)
	if err != nil {
		return nil, err
	}
	tools, err := compareTools(st, u, defs)
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q: %w", name, err))
	}
	return resp(&adminv1.DiscoverUpstreamResponse{Tools: tools}), nil
}

// liveTools connects to the MCP upstream name as a data plane would and
// lists its tools' definitions, each as the upstream sent it. Its errors
// are Connect errors, safe for the caller.
func (a *API) liveTools(ctx context.Context, st *state.State, name string) (*configv1.Upstream, []json.RawMessage, error) {
	u, cred, maxResponse, err := a.discoverTarget(ctx, st, name)
	if err != nil {
		return nil, nil, err
	}
	if u.GetProtocol() == configv1.Protocol_PROTOCOL_A2A {
		return nil, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q is an A2A agent: it has an agent card, not tools", name))
	}
	defs, err := a.listTools(ctx, u, cred, maxResponse)
	if err != nil {
		return nil, nil, err
	}
	return u, defs, nil
}

// discoverTarget resolves the upstream name for discovery: an MCP or A2A
// upstream whose URL the egress policy allows, its credential opened, and
// the bound of one message from it. Its errors are Connect errors.
func (a *API) discoverTarget(ctx context.Context, st *state.State, name string) (*configv1.Upstream, upstreamCred, int64, error) {
	r, ok := st.Get(resource.Upstream, name)
	if !ok {
		return nil, upstreamCred{}, 0, connect.NewError(connect.CodeNotFound, fmt.Errorf("upstream %q does not exist", name))
	}
	u := r.GetUpstream()
	switch u.GetProtocol() {
	case configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED, configv1.Protocol_PROTOCOL_A2A:
	default:
		return nil, upstreamCred{}, 0, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q speaks neither MCP nor A2A", name))
	}
	if err := a.checkEgress(ctx, "url", u.GetUrl(), u.GetAllowLinkLocal()); err != nil {
		return nil, upstreamCred{}, 0, err
	}
	cred, err := a.upstreamCredential(st, u)
	if err != nil {
		return nil, upstreamCred{}, 0, err
	}
	if o := u.GetCredential().GetOauthClientCredentials(); o != nil {
		if err := a.checkEgress(ctx, "credential.oauth_client_credentials.token_url", o.GetTokenUrl(), u.GetAllowLinkLocal()); err != nil {
			return nil, upstreamCred{}, 0, err
		}
		cred.oauth = &oauthcc.Config{TokenURL: o.GetTokenUrl(), ClientID: o.GetClientId(), ClientSecret: cred.value,
			Scopes: o.GetScopes(), Audience: o.GetAudience(), Hosts: cred.hosts}
	}
	maxResponse := u.GetLimits().GetMaxResponseBytes()
	if maxResponse <= 0 {
		maxResponse = discoverMaxResponse
	}
	return u, cred, maxResponse, nil
}

// listTools lists the tools of the MCP upstream u with its credential.
func (a *API) listTools(ctx context.Context, u *configv1.Upstream, cred upstreamCred, maxResponse int64) ([]json.RawMessage, error) {
	name := u.GetMeta().GetName()
	client, err := mcpclient.New(mcpclient.Config{
		URL: u.GetUrl(), HTTP: a.discoverHTTP(u.GetAllowLinkLocal(), cred),
		Name: "portcullis-controlplane", Version: "discover", Era: discoverEra(u.GetMcpEra()),
		MaxMessageBytes: int(min(maxResponse, 1<<30)), Hide: []string{cred.value, strings.TrimPrefix(cred.value, "Bearer ")},
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
		if ctx.Err() != nil {
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		}
		return nil, a.upstreamFailure(ctx, name, lctx.Err() != nil, cred, err)
	}
	return defs, nil
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
			// Any approved version the upstream serves is no drift (data
			// planes agree): it is reported as that version.
			if m := versionWithHash(pins[tool], hash); m != nil {
				d.PinnedHash, d.PinnedVersion, d.PinnedClass = m.GetDefinitionHash(), m.GetVersion(), m.GetClass()
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

// discoverCard fetches an A2A upstream's agent card (from the origin of its
// URL, at its card path, with its own credential) and compares it with the
// card pin: one DiscoveredTool named toolpin.AgentCardTool. The card must
// fit in maxBytes.
func (a *API) discoverCard(ctx context.Context, st *state.State, u *configv1.Upstream, cred upstreamCred, maxBytes int64) (*connect.Response[adminv1.DiscoverUpstreamResponse], error) {
	name := u.GetMeta().GetName()
	loc, err := a2awire.CardLocation(u.GetUrl(), u.GetA2ACardPath())
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q: %w", name, err))
	}
	lctx, cancel := context.WithTimeout(ctx, DiscoverTimeout)
	defer cancel()
	card, err := fetchCard(lctx, a.discoverHTTP(u.GetAllowLinkLocal(), cred), loc, maxBytes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		}
		return nil, a.upstreamFailure(ctx, name, lctx.Err() != nil, cred, err)
	}
	hash, err := toolpin.HashCard(card)
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q: its agent card at %s: %w", name, loc, err))
	}
	d := &adminv1.DiscoveredTool{
		Name: toolpin.AgentCardTool, Action: name, LiveHash: hash, Definition: card,
		// A card says nothing trustworthy about what an agent's messages
		// do: the safe suggestion.
		SuggestedClass: configv1.ToolClass_TOOL_CLASS_MUTATING, Status: adminv1.DiscoveryStatus_DISCOVERY_STATUS_NEW,
	}
	if r, ok := st.Get(resource.ToolPin, resource.ToolPinName(name, toolpin.AgentCardTool)); ok {
		if v := resource.ActiveVersion(r.GetToolPin()); v != nil {
			d.PinnedHash, d.PinnedVersion, d.PinnedClass = v.GetDefinitionHash(), v.GetVersion(), v.GetClass()
			d.Status = adminv1.DiscoveryStatus_DISCOVERY_STATUS_CHANGED
			if v.GetDefinitionHash() == hash {
				d.Status = adminv1.DiscoveryStatus_DISCOVERY_STATUS_PINNED
			}
		}
	}
	return resp(&adminv1.DiscoverUpstreamResponse{Tools: []*adminv1.DiscoveredTool{d}}), nil
}

// fetchCard GETs an agent card of at most maxBytes.
func fetchCard(ctx context.Context, hc *http.Client, loc string, maxBytes int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered HTTP %d", loc, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("the agent card at %s is larger than %d bytes", loc, maxBytes)
	}
	return body, nil
}

// upstreamCred is what one discovery attaches to its requests.
type upstreamCred struct {
	// header and value are sent on every request to the upstream; header
	// is "" for none. For an OAuth grant, value is the client secret and
	// oauth is set: the header then carries the token instead.
	header, value string
	oauth         *oauthcc.Config
	// secret is the secret's name; hosts are the hosts it may be sent to.
	secret string
	hosts  []string
}

// upstreamCredential opens the secret of u's credential, after checking
// that u sends it only to hosts it is bound to (an upstream written before
// the binding changed may not).
func (a *API) upstreamCredential(st *state.State, u *configv1.Upstream) (upstreamCred, error) {
	use, ok := secretbind.UseOf(u)
	if !ok {
		if u.GetCredential().GetKind() != nil {
			return upstreamCred{}, connect.NewError(connect.CodeFailedPrecondition, errors.New("the upstream's credential kind is unknown"))
		}
		return upstreamCred{}, nil
	}
	c := upstreamCred{header: "Authorization", secret: use.Secret}
	if h := u.GetCredential().GetHeader(); h != nil {
		c.header = h.GetHeader()
	}
	r, ok := st.Get(resource.Secret, use.Secret)
	if !ok {
		return upstreamCred{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the upstream's credential secret %q does not exist", use.Secret))
	}
	c.hosts, _ = st.SecretHosts(use.Secret)
	if out := secretbind.Outside(c.hosts, use); out != "" {
		return upstreamCred{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"secret %q may be sent only to %s, not to %s: nothing was sent; an admin can bind it to that host (gwctl secret bind %s --hosts …)",
			use.Secret, secretbind.Describe(c.hosts), secretbind.HostOf(out), use.Secret))
	}
	v, err := a.cfg.Sealer.Open(r.GetSecret().GetCiphertext(), resource.SecretAAD(use.Secret))
	if err != nil {
		a.log.Error("discover: cannot open a secret", "secret", use.Secret, "err", err)
		return upstreamCred{}, connect.NewError(connect.CodeInternal, fmt.Errorf("the upstream's credential secret %q cannot be opened", use.Secret))
	}
	c.value = string(v)
	if u.GetCredential().GetBearer() != nil {
		c.value = "Bearer " + c.value
	}
	return c, nil
}

// upstreamFailure is the error of a discovery the upstream failed: code
// FAILED_PRECONDITION, never UNAVAILABLE or DEADLINE_EXCEEDED, which
// clients (gwctl among them) take for a failing control-plane node and
// retry elsewhere, calling the failing upstream again each time. The
// message quotes the failure only as a short, sanitised excerpt, with the
// credential masked: what an upstream answers is not the operator's to
// read in full (it may be an internal service, or echo the credential).
func (a *API) upstreamFailure(ctx context.Context, name string, timedOut bool, c upstreamCred, err error) error {
	a.log.WarnContext(ctx, "discover: upstream tools/list failed", "upstream", name,
		"err", excerpt.Text(err.Error(), 512, c.value, strings.TrimPrefix(c.value, "Bearer ")))
	if timedOut {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"upstream %q did not finish tools/list within %s; check that it is up and answers MCP", name, DiscoverTimeout))
	}
	why := excerpt.Text(err.Error(), 300, c.value, strings.TrimPrefix(c.value, "Bearer "))
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("upstream %q failed: %s", name, why))
}

// discoverHTTP is the HTTP client of one discovery: dialed under the
// egress policy (re-checked at dial time against DNS rebinding), no proxy,
// no redirects (they would carry the credential elsewhere), the
// credential header on every request whose host the secret is bound to.
func (a *API) discoverHTTP(allowLinkLocal bool, c upstreamCred) *http.Client {
	pol := a.cfg.Egress
	pol.AllowLinkLocal = pol.AllowLinkLocal || allowLinkLocal
	d := &net.Dialer{Timeout: 10 * time.Second, ControlContext: pol.DialControlContext}
	base := &http.Transport{
		Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, DisableKeepAlives: true,
	}
	var rt http.RoundTripper = base
	switch {
	case c.oauth != nil:
		rt = credentialRoundTripper{base: base, header: "Authorization", secret: c.secret, hosts: c.hosts, dynamic: oauthcc.NewSource(*c.oauth, base).Authorization}
	case c.header != "":
		rt = credentialRoundTripper{base: base, header: c.header, value: c.value, secret: c.secret, hosts: c.hosts}
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// credentialRoundTripper sets the upstream's credential header on a
// request to a host the secret is bound to, and refuses any other request.
type credentialRoundTripper struct {
	base          http.RoundTripper
	header, value string
	// dynamic, when set, gives the value per request (an OAuth token).
	dynamic func() (string, error)
	secret  string
	hosts   []string
}

func (c credentialRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, err
	}
	if !secretbind.Allows(c.hosts, r.URL) {
		return fail(fmt.Errorf("%w: secret %q may be sent only to %s, not to %s", secretbind.ErrNotBound, c.secret, secretbind.Describe(c.hosts), r.URL.Host))
	}
	v := c.value
	if c.dynamic != nil {
		var err error
		if v, err = c.dynamic(); err != nil {
			return fail(err)
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
