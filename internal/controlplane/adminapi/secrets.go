package adminapi

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// MaxSecretBytes bounds a secret's plaintext.
const MaxSecretBytes = 64 << 10

// SetSecret implements SecretService. The value is sealed here, before it
// is proposed, so the replicated log, snapshots and backups only ever hold
// ciphertext.
func (a *API) SetSecret(ctx context.Context, req *connect.Request[adminv1.SetSecretRequest]) (*connect.Response[adminv1.SetSecretResponse], error) {
	m := req.Msg
	if err := resource.ValidateName("name", m.GetName()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if n := len(m.GetValue()); n == 0 || n > MaxSecretBytes {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("value must be 1 byte to %d bytes", MaxSecretBytes))
	}
	sealed, err := a.cfg.Sealer.Seal(m.GetValue(), resource.SecretAAD(m.GetName()))
	if err != nil {
		return nil, edge.Internal(ctx, a.log, "seal the secret", err)
	}
	s := &configv1.Secret{
		Meta:       &configv1.ResourceMeta{Name: m.GetName(), Owner: m.GetOwner(), Description: m.GetDescription(), Labels: m.GetLabels()},
		Ciphertext: sealed,
		Size:       int64(len(m.GetValue())),
	}
	r, err := a.put(ctx, req.Header(), "SecretService.SetSecret", resource.Wrap(s), fsmv1.WriteMode_WRITE_MODE_UPSERT, m.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetSecretResponse{Secret: publicSecret(r.GetSecret())}), nil
}

// GetSecret implements SecretService (metadata only).
func (a *API) GetSecret(ctx context.Context, req *connect.Request[adminv1.GetSecretRequest]) (*connect.Response[adminv1.GetSecretResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.Secret, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetSecretResponse{Secret: publicSecret(r.GetSecret())}), nil
}

// ListSecrets implements SecretService (metadata only).
func (a *API) ListSecrets(ctx context.Context, req *connect.Request[adminv1.ListSecretsRequest]) (*connect.Response[adminv1.ListSecretsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Secret, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListSecretsResponse{NextPageToken: next}
	for _, r := range items {
		out.Secrets = append(out.Secrets, publicSecret(r.GetSecret()))
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
