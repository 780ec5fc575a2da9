package edge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// emptyStore is a store that holds no token at all.
type emptyStore struct{}

func (emptyStore) Apply(context.Context, *fsmv1.Command) (*fsmv1.Result, error) { return nil, nil }
func (emptyStore) State(context.Context, bool) (*state.State, error)            { return state.New(), nil }
func (emptyStore) Changed() <-chan struct{}                                     { return nil }

// dataplanes answers ListDataplanes and SetFreeze with the caller's token
// id in the reason, so the test sees whom the handler was told it serves.
type dataplanes struct {
	adminv1connect.UnimplementedDataplaneServiceHandler
}

func (dataplanes) SetFreeze(ctx context.Context, _ *connect.Request[adminv1.SetFreezeRequest]) (*connect.Response[adminv1.SetFreezeResponse], error) {
	tok, _ := tokenauth.FromContext(ctx)
	return connect.NewResponse(&adminv1.SetFreezeResponse{ConfigVersion: uint64(len(tok.ID))}), nil
}

func (dataplanes) ListDataplanes(ctx context.Context, _ *connect.Request[adminv1.ListDataplanesRequest]) (*connect.Response[adminv1.ListDataplanesResponse], error) {
	tok, _ := tokenauth.FromContext(ctx)
	return connect.NewResponse(&adminv1.ListDataplanesResponse{FreezeReason: tok.ID}), nil
}

// inProcess hands requests to a handler with ctx's values, as the web view
// does.
type inProcess struct {
	h   http.Handler
	ctx context.Context
}

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r.WithContext(p.ctx))
	return rec.Result(), nil
}

// TestGateVerifiedInProcess: a request carrying a token the process
// verified (edge.WithVerified) skips the Authorization header but not the
// procedure's role; a request without one needs the header.
func TestGateVerifiedInProcess(t *testing.T) {
	rules := edge.Rules{
		adminv1connect.DataplaneServiceListDataplanesProcedure: {Role: configv1.Role_ROLE_AUDITOR, MaxBytes: 1 << 10},
		adminv1connect.DataplaneServiceSetFreezeProcedure:      {Role: configv1.Role_ROLE_OPERATOR, MaxBytes: 1 << 10},
	}
	gate := edge.NewGate(tokenauth.NewAuthenticator(emptyStore{}, nil), rules, nil)
	_, h := gate.Mount(edge.Service(adminv1connect.NewDataplaneServiceHandler, adminv1connect.DataplaneServiceHandler(dataplanes{})))

	auditor := tokenauth.Token{ID: "a1a1a1a1a1a1a1a1", Role: configv1.Role_ROLE_AUDITOR}
	operator := tokenauth.Token{ID: "0b0b0b0b0b0b0b0b", Role: configv1.Role_ROLE_OPERATOR}
	tests := []struct {
		name     string
		ctx      context.Context
		write    bool
		wantCode connect.Code // 0: success
	}{
		{"auditor reads", edge.WithVerified(context.Background(), auditor), false, 0},
		{"auditor writes", edge.WithVerified(context.Background(), auditor), true, connect.CodePermissionDenied},
		{"operator writes", edge.WithVerified(context.Background(), operator), true, 0},
		{"no verified token and no header", context.Background(), false, connect.CodeUnauthenticated},
		{"a token without an id is not verified", edge.WithVerified(context.Background(), tokenauth.Token{Role: configv1.Role_ROLE_ADMIN}), false, connect.CodeUnauthenticated},
		{"a token in the handler's context is not a verified caller", tokenauth.NewContext(context.Background(), operator), true, connect.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := adminv1connect.NewDataplaneServiceClient(&http.Client{Transport: inProcess{h, tt.ctx}}, "http://in-process")
			var err error
			var got string
			if tt.write {
				var res *connect.Response[adminv1.SetFreezeResponse]
				if res, err = c.SetFreeze(context.Background(), connect.NewRequest(&adminv1.SetFreezeRequest{})); err == nil && res.Msg.GetConfigVersion() != 16 {
					t.Errorf("the handler saw a token id of %d characters, want the verified one's", res.Msg.GetConfigVersion())
				}
			} else {
				var res *connect.Response[adminv1.ListDataplanesResponse]
				if res, err = c.ListDataplanes(context.Background(), connect.NewRequest(&adminv1.ListDataplanesRequest{})); err == nil {
					got = res.Msg.GetFreezeReason()
				}
			}
			if code := connect.CodeOf(err); err != nil && code != tt.wantCode || err == nil && tt.wantCode != 0 {
				t.Fatalf("err = %v, want code %v", err, tt.wantCode)
			}
			if err == nil && !tt.write && got != auditor.ID {
				t.Errorf("the handler saw token %q, want %q", got, auditor.ID)
			}
		})
	}
}
