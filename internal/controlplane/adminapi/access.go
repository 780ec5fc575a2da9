package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
)

// Bounds of a Check's findings (context.findings).
const (
	maxCheckFindings = 64
	maxFindingName   = 128
)

// Limits on an access question, beyond the request size.
const (
	maxAccessGroups    = 256
	maxAccessNameBytes = 1024
)

// GetAuthorizationSnapshot implements AccessService: the configuration
// authorization reads, with nothing secret (see
// configsync.AuthorizationSnapshot).
func (a *API) GetAuthorizationSnapshot(ctx context.Context, req *connect.Request[adminv1.GetAuthorizationSnapshotRequest]) (*connect.Response[adminv1.GetAuthorizationSnapshotResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetAuthorizationSnapshotResponse{Snapshot: configsync.AuthorizationSnapshot(st)}), nil
}

// Check implements AccessService: the decision a data plane of the read
// state's configuration version makes, explained.
func (a *API) Check(ctx context.Context, req *connect.Request[adminv1.CheckRequest]) (*connect.Response[adminv1.CheckResponse], error) {
	m := req.Msg
	user, err := accessUser(m.GetUser())
	if err != nil {
		return nil, err
	}
	resource, err := accessResource(m.GetResource())
	if err != nil {
		return nil, err
	}
	if len(m.GetFindings()) > maxCheckFindings {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("findings: at most %d", maxCheckFindings))
	}
	for _, f := range m.GetFindings() {
		if f == "" || len(f) > maxFindingName {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("findings: each is 1-%d bytes", maxFindingName))
		}
	}
	c := authz.Context{Protocol: m.GetProtocol(), Degraded: m.GetDegraded(), Findings: m.GetFindings()}
	if m.GetTime() != nil {
		if err := m.GetTime().CheckValid(); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("time: %w", err))
		}
		c.Time = m.GetTime().AsTime()
	}
	if s := m.GetSourceIp(); s != "" {
		if c.SourceIP, err = netip.ParseAddr(s); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("source_ip must be an IPv4 or IPv6 address"))
		}
	}
	if err := checkLengths(map[string]string{"agent": m.GetAgent(), "action": m.GetAction(), "protocol": m.GetProtocol()}); err != nil {
		return nil, err
	}
	q := &authz.Request{
		Agent:     m.GetAgent(),
		User:      user,
		Action:    m.GetAction(),
		Resource:  resource,
		Arguments: []byte(m.GetArgumentsJson()),
		Context:   c.WithDefaults(a.cfg.Now()),
	}
	eng, err := a.engine(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	ex, err := eng.Explain(ctx, q)
	if err != nil {
		return nil, accessError(err)
	}
	out := &adminv1.CheckResponse{
		Allowed:          ex.Decision.Allowed,
		Errors:           ex.Decision.Errors,
		InvalidArguments: ex.Decision.InvalidArguments,
		ConfigVersion:    ex.Version,
	}
	for _, p := range ex.Policies {
		out.Policies = append(out.Policies, &adminv1.PolicyRef{Id: p.ID, Effect: p.Effect, File: p.File, Line: int32(p.Line), Column: int32(p.Column)}) //nolint:gosec // positions in a policy source bounded by the request size
	}
	return resp(out), nil
}

// WhoCan implements AccessService: the enabled agents that could be
// permitted some call of the action on the resource.
func (a *API) WhoCan(ctx context.Context, req *connect.Request[adminv1.WhoCanRequest]) (*connect.Response[adminv1.WhoCanResponse], error) {
	m := req.Msg
	user, err := accessUser(m.GetUser())
	if err != nil {
		return nil, err
	}
	resource, err := accessResource(m.GetResource())
	if err != nil {
		return nil, err
	}
	if err := checkLengths(map[string]string{"action": m.GetAction()}); err != nil {
		return nil, err
	}
	eng, err := a.engine(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	agents, err := eng.WhoCan(ctx, &authz.Request{
		User:     user,
		Action:   m.GetAction(),
		Resource: resource,
		Context:  authz.Context{Degraded: m.GetDegraded()},
	})
	if err != nil {
		return nil, accessError(err)
	}
	return resp(&adminv1.WhoCanResponse{Agents: agents, ConfigVersion: eng.Version()}), nil
}

// engine returns the policy engine of the state a read sees (see
// access.Engines).
func (a *API) engine(ctx context.Context, h http.Header) (*authz.Engine, error) {
	st, err := a.read(ctx, h)
	if err != nil {
		return nil, err
	}
	eng, err := a.engines.For(st)
	if err != nil {
		// The control plane validates every write against the same rules,
		// so this is a bug, not a caller's mistake: details go to the log.
		a.log.ErrorContext(ctx, "the configuration does not compile for authorization", "config_version", st.ConfigVersion(), "error", err)
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("configuration version %d could not be compiled for authorization; the control plane's log says why", st.ConfigVersion()))
	}
	return eng, nil
}

// accessError maps an access question the engine refuses to a Connect
// error: names that do not exist are NOT_FOUND (never a deny), malformed
// questions INVALID_ARGUMENT.
func accessError(err error) error {
	switch {
	case errors.Is(err, authz.ErrUnknownAgent), errors.Is(err, authz.ErrUnknownResource):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, authz.ErrInvalidRequest):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeInternal, errors.New("the question could not be answered"))
}

// accessUser converts a question's user; nil when none is given.
func accessUser(u *adminv1.AccessUser) (*authz.User, error) {
	if u == nil {
		return nil, nil
	}
	if u.GetSource() == "" || u.GetName() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("user needs a source (the identity source that verifies the token) and a name (the user claim's value)"))
	}
	if n := len(u.GetGroups()); n > maxAccessGroups {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("user has %d groups; the limit is %d", n, maxAccessGroups))
	}
	if err := checkLengths(map[string]string{"user.source": u.GetSource(), "user.name": u.GetName(), "user.email": u.GetEmail()}); err != nil {
		return nil, err
	}
	for _, g := range u.GetGroups() {
		if err := checkLengths(map[string]string{"user.groups": g}); err != nil {
			return nil, err
		}
	}
	return &authz.User{Source: u.GetSource(), Name: u.GetName(), Email: u.GetEmail(), Groups: u.GetGroups()}, nil
}

// accessResource converts a question's resource; an empty type is a tool.
func accessResource(r *adminv1.AccessResource) (authz.Resource, error) {
	if r.GetId() == "" {
		return authz.Resource{}, connect.NewError(connect.CodeInvalidArgument, errors.New("resource.id is required: for a tool, its action name <prefix>__<tool>"))
	}
	if err := checkLengths(map[string]string{"resource.type": r.GetType(), "resource.id": r.GetId()}); err != nil {
		return authz.Resource{}, err
	}
	typ := authz.ResourceType(r.GetType())
	if typ == "" {
		typ = authz.ResourceTool
	}
	return authz.Resource{Type: typ, ID: r.GetId()}, nil
}

// checkLengths refuses a field longer than any name the gateway holds.
func checkLengths(fields map[string]string) error {
	for name, v := range fields {
		if len(v) > maxAccessNameBytes {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is %d bytes; the limit is %d", name, len(v), maxAccessNameBytes))
		}
	}
	return nil
}
