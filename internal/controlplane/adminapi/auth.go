package adminapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	c "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	ac "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"golang.org/x/time/rate"
)

const (
	auditor  = configv1.Role_ROLE_AUDITOR
	operator = configv1.Role_ROLE_OPERATOR
	admin    = configv1.Role_ROLE_ADMIN
)

// requiredRole is the minimum role of every procedure. A procedure missing
// here is refused: default deny.
var requiredRole = map[string]configv1.Role{
	c.AgentServiceCreateAgentProcedure:                   operator,
	c.AgentServiceGetAgentProcedure:                      auditor,
	c.AgentServiceListAgentsProcedure:                    auditor,
	c.AgentServiceUpdateAgentProcedure:                   operator,
	c.AgentServiceSetAgentDisabledProcedure:              operator,
	c.AgentServiceDeleteAgentProcedure:                   operator,
	c.AgentServiceRotateAgentKeyProcedure:                operator,
	c.UpstreamServiceCreateUpstreamProcedure:             operator,
	c.UpstreamServiceGetUpstreamProcedure:                auditor,
	c.UpstreamServiceListUpstreamsProcedure:              auditor,
	c.UpstreamServiceUpdateUpstreamProcedure:             operator,
	c.UpstreamServiceDeleteUpstreamProcedure:             operator,
	c.UpstreamServiceDiscoverUpstreamProcedure:           operator,
	c.ValueListServiceCreateValueListProcedure:           operator,
	c.ValueListServiceGetValueListProcedure:              auditor,
	c.ValueListServiceListValueListsProcedure:            auditor,
	c.ValueListServiceUpdateValueListProcedure:           operator,
	c.ValueListServiceDeleteValueListProcedure:           operator,
	c.ValueListServiceAddValuesProcedure:                 operator,
	c.ValueListServiceRemoveValuesProcedure:              operator,
	c.ToolServicePinToolProcedure:                        operator,
	c.ToolServiceGetToolPinProcedure:                     auditor,
	c.ToolServiceListToolPinsProcedure:                   auditor,
	c.ToolServiceDeleteToolPinProcedure:                  operator,
	c.PolicyServiceApplyPolicySetProcedure:               operator,
	c.PolicyServiceGetPolicySetProcedure:                 auditor,
	c.PolicyServiceListPolicySetsProcedure:               auditor,
	c.PolicyServiceDeletePolicySetProcedure:              operator,
	c.PolicyServiceGetCedarSchemaProcedure:               auditor,
	c.IdentitySourceServiceCreateIdentitySourceProcedure: operator,
	c.IdentitySourceServiceGetIdentitySourceProcedure:    auditor,
	c.IdentitySourceServiceListIdentitySourcesProcedure:  auditor,
	c.IdentitySourceServiceUpdateIdentitySourceProcedure: operator,
	c.IdentitySourceServiceDeleteIdentitySourceProcedure: operator,
	c.SecretServiceSetSecretProcedure:                    operator,
	c.SecretServiceBindSecretProcedure:                   admin,
	c.SecretServiceGetSecretProcedure:                    auditor,
	c.SecretServiceListSecretsProcedure:                  auditor,
	c.SecretServiceDeleteSecretProcedure:                 operator,
	c.TokenServiceCreateTokenProcedure:                   admin,
	c.TokenServiceListTokensProcedure:                    admin,
	c.TokenServiceRevokeTokenProcedure:                   admin,
	c.ClusterServiceGetClusterStatusProcedure:            auditor,
	c.ClusterServiceIssueNodeCertificateProcedure:        admin,
	c.ClusterServiceAddNodeProcedure:                     admin,
	c.ClusterServiceRemoveNodeProcedure:                  admin,
	c.BackupServiceSaveBackupProcedure:                   admin,
	c.BackupServiceRestoreBackupProcedure:                admin,
	c.AdminLogServiceListAdminEventsProcedure:            auditor,
	c.DataplaneServiceCreateJoinCredentialProcedure:      admin,
	c.DataplaneServiceRevokeJoinCredentialProcedure:      admin,
	c.DataplaneServiceListDataplanesProcedure:            auditor,
	c.DataplaneServiceSetFreezeProcedure:                 operator,
	c.AccessServiceGetAuthorizationSnapshotProcedure:     auditor,
	ac.AuditServiceUploadStateProcedure:                  configv1.Role_ROLE_DATAPLANE,
	ac.AuditServiceUploadProcedure:                       configv1.Role_ROLE_DATAPLANE,
	ac.AuditServiceQueryProcedure:                        auditor,
	ac.AuditServiceVerifyProcedure:                       auditor,
	ac.AuditServiceAttestProcedure:                       auditor,
	ac.AuditServiceGetPublicKeyProcedure:                 auditor,
}

// RoleName is the lower-case name users type ("operator").
func RoleName(r configv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// allows reports whether a token of role have may call a procedure needing
// role need. Admin ⊃ operator ⊃ auditor; dataplane stands apart.
func allows(have, need configv1.Role) bool {
	if have == configv1.Role_ROLE_DATAPLANE || need == configv1.Role_ROLE_DATAPLANE {
		return have == need
	}
	return have >= need && need != configv1.Role_ROLE_UNSPECIFIED
}

// caller is the authenticated identity of a request.
type caller struct {
	tokenID string
	role    configv1.Role
	// dataplane is the data plane a dataplane-role token belongs to.
	dataplane string
}

func (c caller) actor() *configv1.Actor {
	return &configv1.Actor{TokenId: c.tokenID, Role: c.role}
}

type callerKey struct{}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// authInterceptor authenticates the bearer token against the replicated
// token records and checks the procedure's role.
type authInterceptor struct {
	api *API
	// recheck bounds how often an unknown token triggers a linearizable
	// re-read (a Raft barrier, which writes the log): unauthenticated
	// callers must not be able to make the cluster write at will.
	recheck *rate.Limiter
}

func newAuthInterceptor(a *API) *authInterceptor {
	return &authInterceptor{api: a, recheck: a.recheck}
}

func (i *authInterceptor) authenticate(ctx context.Context, procedure, authz string) (context.Context, error) {
	need, ok := requiredRole[procedure]
	if !ok {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not available through the admin API", procedure))
	}
	text, id, ok := tokenauth.ID(authz)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, tokenauth.ErrRefused)
	}
	st, err := i.api.cfg.Store.State(ctx, false)
	if err != nil {
		return nil, storeError(err)
	}
	tok, err := tokenauth.Verify(st, text, id, i.api.cfg.Now())
	if err != nil {
		// This node may not have seen the token yet (created a moment ago
		// through another node, or this node restarted and is replaying its
		// log): look again after catching up with the leader. If it cannot
		// catch up now, it cannot tell, and says so instead of refusing.
		if !i.recheck.Allow() {
			i.api.log.WarnContext(ctx, "admin call refused: bad token (re-check budget spent)", "procedure", procedure, "token_id", id)
			return nil, connect.NewError(connect.CodeUnauthenticated, err)
		}
		fresh, ferr := i.api.cfg.Store.State(ctx, true)
		if ferr != nil {
			i.api.log.WarnContext(ctx, "admin call: cannot verify token while catching up", "procedure", procedure, "token_id", id, "err", ferr)
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("this node cannot verify the token right now (it is catching up with the cluster); retry, or use another node"))
		}
		tok, err = tokenauth.Verify(fresh, text, id, i.api.cfg.Now())
	}
	if err != nil {
		i.api.log.WarnContext(ctx, "admin call refused: bad token", "procedure", procedure, "token_id", id)
		return nil, connect.NewError(connect.CodeUnauthenticated, err)
	}
	if !allows(tok.GetRole(), need) {
		i.api.log.WarnContext(ctx, "admin call refused: role", "procedure", procedure, "token_id", id, "role", RoleName(tok.GetRole()))
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("token lacks role %s (it has %s)", RoleName(need), RoleName(tok.GetRole())))
	}
	return context.WithValue(ctx, callerKey{}, caller{tokenID: id, role: tok.GetRole(), dataplane: tok.GetDataplane()}), nil
}

func (i *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
