package adminapi

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"google.golang.org/protobuf/proto"
)

// MaxSecretBytes bounds a secret's plaintext.
const MaxSecretBytes = 64 << 10

// SetSecret implements SecretService. The value is sealed here, before it
// is proposed, so the replicated log, snapshots and backups only ever hold
// ciphertext.
//
// A new secret needs its hosts (see package secretbind for the trust
// model); an existing one keeps its binding when none is given. Any change
// of an existing secret's binding needs the admin role: an operator could
// otherwise move a secret they cannot read to a host they control. The
// state machine holds the same rule; checking here first gives the clear
// error.
func (a *API) SetSecret(ctx context.Context, req *connect.Request[adminv1.SetSecretRequest]) (*connect.Response[adminv1.SetSecretResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("name", m.GetName()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if n := len(m.GetValue()); n == 0 || n > MaxSecretBytes {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("value must be 1 byte to %d bytes", MaxSecretBytes))
	}
	hosts, err := secretbind.Normalize(m.GetHosts())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("hosts: %w", err))
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	mode := fsmv1.WriteMode_WRITE_MODE_UPSERT
	_, exists := st.Get(resource.Secret, m.GetName())
	switch {
	case len(hosts) == 0 && !exists:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"a new secret needs the hosts it may be sent to (for example --hosts api.github.com); the gateway sends %q to no other host", m.GetName()))
	case len(hosts) == 0:
		// A new value under the existing binding.
		mode = fsmv1.WriteMode_WRITE_MODE_UPDATE
	case exists && callerFrom(ctx).role != admin:
		if cur, _ := st.SecretHosts(m.GetName()); !slices.Equal(cur, hosts) {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
				"secret %q may be sent to %s; changing that needs an admin token (gwctl secret bind). To replace only the value, leave out the hosts",
				m.GetName(), secretbind.Describe(cur)))
		}
	}
	sealed, err := a.cfg.Sealer.Seal(m.GetValue(), resource.SecretAAD(m.GetName()))
	if err != nil {
		return nil, edge.Internal(ctx, a.log, "seal the secret", err)
	}
	s := &configv1.Secret{
		Meta:       &configv1.ResourceMeta{Name: m.GetName(), Owner: m.GetOwner(), Description: m.GetDescription(), Labels: m.GetLabels()},
		Ciphertext: sealed,
		Size:       int64(len(m.GetValue())),
		Hosts:      hosts,
	}
	r, err := a.put(ctx, req.Header(), "SecretService.SetSecret", resource.Wrap(s), mode, m.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetSecretResponse{Secret: a.publicSecret(ctx, r.GetSecret())}), nil
}

// BindSecret implements SecretService: a new binding, the same value.
// Admin only (auth.go); the write is recorded in the admin log and the
// control plane's audit chain like every other.
func (a *API) BindSecret(ctx context.Context, req *connect.Request[adminv1.BindSecretRequest]) (*connect.Response[adminv1.BindSecretResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("name", m.GetName()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	hosts, err := secretbind.Normalize(m.GetHosts())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("hosts: %w", err))
	}
	if len(hosts) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("hosts: at least one host is required"))
	}
	r, err := a.modify(ctx, req.Header(), "SecretService.BindSecret", resource.Secret, m.GetName(), func(r *fsmv1.Resource) error {
		if want := m.GetExpectedRevision(); want != 0 && resource.Meta(r).GetRevision() != want {
			return connect.NewError(connect.CodeAborted, fmt.Errorf("secret %q is at revision %d, not %d: it changed since you read it", m.GetName(), resource.Meta(r).GetRevision(), want))
		}
		r.GetSecret().Hosts = hosts
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.BindSecretResponse{Secret: a.publicSecret(ctx, r.GetSecret())}), nil
}

// GetSecret implements SecretService (metadata only).
func (a *API) GetSecret(ctx context.Context, req *connect.Request[adminv1.GetSecretRequest]) (*connect.Response[adminv1.GetSecretResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.Secret, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetSecretResponse{Secret: a.publicSecret(ctx, r.GetSecret())}), nil
}

// ListSecrets implements SecretService (metadata only).
func (a *API) ListSecrets(ctx context.Context, req *connect.Request[adminv1.ListSecretsRequest]) (*connect.Response[adminv1.ListSecretsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Secret, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListSecretsResponse{NextPageToken: next}
	st, err := a.cfg.Store.State(ctx, false)
	if err != nil {
		st = nil
	}
	for _, r := range items {
		out.Secrets = append(out.Secrets, publicSecretIn(st, r.GetSecret()))
	}
	return resp(out), nil
}

// DeleteSecret implements SecretService.
func (a *API) DeleteSecret(ctx context.Context, req *connect.Request[adminv1.DeleteSecretRequest]) (*connect.Response[adminv1.DeleteSecretResponse], error) {
	if err := a.remove(ctx, req.Header(), "SecretService.DeleteSecret", resource.Secret, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteSecretResponse{}), nil
}

// publicSecret is publicSecretIn against this node's local state, which
// is at least as new as any state the caller read the secret from.
func (a *API) publicSecret(ctx context.Context, s *configv1.Secret) *configv1.Secret {
	st, err := a.cfg.Store.State(ctx, false)
	if err != nil {
		return publicSecretIn(nil, s)
	}
	return publicSecretIn(st, s)
}

// publicSecretIn strips the sealed value and, for a secret without hosts of
// its own, says where it may go in st.
func publicSecretIn(st *state.State, s *configv1.Secret) *configv1.Secret {
	out := proto.Clone(s).(*configv1.Secret)
	out.Ciphertext = nil
	out.ImplicitHosts = nil
	if st != nil && len(out.GetHosts()) == 0 {
		out.ImplicitHosts, _ = st.SecretHosts(out.GetMeta().GetName())
	}
	return out
}

// checkSecretUse refuses an upstream that would send its credential's
// secret (or a token obtained with it) to a host the secret is not bound
// to. For a secret with hosts the state machine holds the same rule; for
// one without (written before bindings existed) this is where its implicit
// binding — the hosts of the upstreams that use it now — is held, since
// the state machine cannot (see package state).
func (a *API) checkSecretUse(ctx context.Context, u *configv1.Upstream) error {
	use, ok := secretbind.UseOf(u)
	if !ok {
		return nil
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return a.storeError(ctx, err)
	}
	if _, ok := st.Get(resource.Secret, use.Secret); !ok {
		return nil // the state machine says it does not exist
	}
	hosts, implicit := st.SecretHosts(use.Secret)
	out := secretbind.Outside(hosts, use)
	switch {
	case out == "":
		return nil
	case !implicit:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"secret %q may be sent only to %s, and upstream %q would send it to %s; use a secret meant for that host, or have an admin bind this one to it (gwctl secret bind %s --hosts …)",
			use.Secret, secretbind.Describe(hosts), u.GetMeta().GetName(), secretbind.HostOf(out), use.Secret))
	default:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"secret %q has no hosts of its own (it was stored before secrets were bound to hosts), so it goes only where upstreams already send it: %s; upstream %q would send it to %s. An admin must bind it first (gwctl secret bind %s --hosts …)",
			use.Secret, secretbind.Describe(hosts), u.GetMeta().GetName(), secretbind.HostOf(out), use.Secret))
	}
}
