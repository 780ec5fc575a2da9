package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/metrics"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// auth knows one token per role.
type auth struct{ unavailable bool }

func (a auth) Authenticate(_ context.Context, h string) (tokenauth.Token, error) {
	if a.unavailable {
		return tokenauth.Token{}, tokenauth.ErrCannotVerify
	}
	roles := map[string]configv1.Role{
		"Bearer auditor": configv1.Role_ROLE_AUDITOR, "Bearer admin": configv1.Role_ROLE_ADMIN,
		"Bearer dataplane": configv1.Role_ROLE_DATAPLANE,
	}
	if r, ok := roles[h]; ok {
		return tokenauth.Token{ID: "t", Role: r}, nil
	}
	return tokenauth.Token{}, tokenauth.ErrRefused
}

func TestHandler(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m := metrics.New(metrics.Source{
		State: state.New, Leader: func() bool { return true }, Ready: func() bool { return false },
		Dataplanes: func() []*adminv1.DataplaneStatus {
			return []*adminv1.DataplaneStatus{
				{Name: "dp-a", Connected: true, LastSeen: timestamppb.New(now.Add(-3 * time.Second))},
				{Name: "dp-b", ServingEpoch: 0, LastSeen: timestamppb.New(now.Add(-90 * time.Second))},
			}
		},
		Now: func() time.Time { return now },
	})
	for _, tc := range []struct {
		name, authorization string
		unavailable         bool
		want                int
		body                []string
	}{
		{name: "no token", want: http.StatusUnauthorized},
		{name: "an unknown token", authorization: "Bearer nope", want: http.StatusUnauthorized},
		{name: "a data plane's token", authorization: "Bearer dataplane", want: http.StatusForbidden},
		{name: "the node cannot tell", authorization: "Bearer auditor", unavailable: true, want: http.StatusServiceUnavailable},
		{name: "an auditor", authorization: "Bearer auditor", want: http.StatusOK, body: []string{
			"portcullis_controlplane_leader 1", "portcullis_controlplane_ready 0", "portcullis_controlplane_config_version 0",
			`portcullis_controlplane_dataplane_connected{dataplane="dp-a"} 1`, `portcullis_controlplane_dataplane_connected{dataplane="dp-b"} 0`,
			`portcullis_controlplane_dataplane_config_lag{dataplane="dp-a"} 0`,
			`portcullis_controlplane_dataplane_last_seen_seconds{dataplane="dp-a"} 3`,
			`portcullis_controlplane_dataplane_last_seen_seconds{dataplane="dp-b"} 90`,
		}},
		{name: "an admin", authorization: "Bearer admin", want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			m.Handler(auth{unavailable: tc.unavailable}).ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, body)
			}
			if tc.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without a challenge")
			}
			if tc.want != http.StatusOK && strings.Contains(string(body), "portcullis_") {
				t.Errorf("metrics served with status %d", rec.Code)
			}
			for _, line := range tc.body {
				if !strings.Contains(string(body), line+"\n") {
					t.Errorf("no line %q in\n%s", line, body)
				}
			}
			if strings.Contains(string(body), "portcullis_controlplane_rollout_stage{") {
				t.Error("a rollout stage series with no rollout in progress")
			}
		})
	}
	names := m.Names()
	for _, want := range []string{"portcullis_controlplane_rollout_stage", "portcullis_controlplane_rollout_canary_basis_points", "portcullis_controlplane_dataplane_config_lag"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %q lacks %s, which has no series now", names, want)
		}
	}
}

func TestLag(t *testing.T) {
	st := state.New() // version 0, epoch 1
	for _, tc := range []struct {
		name string
		dp   *adminv1.DataplaneStatus
		want uint64
	}{
		{name: "current", dp: &adminv1.DataplaneStatus{ServingVersion: 0, ServingEpoch: 1}, want: 0},
		{name: "an epoch before epochs were reported", dp: &adminv1.DataplaneStatus{ServingVersion: 0}, want: 0},
		{name: "ahead of this node (it lags itself)", dp: &adminv1.DataplaneStatus{ServingVersion: 5, ServingEpoch: 1}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := metrics.Lag(st, tc.dp); got != tc.want {
				t.Errorf("Lag = %d, want %d", got, tc.want)
			}
		})
	}
	next := st.WithNextEpoch(1) // epoch 2
	if got := metrics.Lag(next, &adminv1.DataplaneStatus{ServingVersion: 9, ServingEpoch: 1}); got != 1 {
		t.Errorf("a data plane on epoch 1 against a node on epoch 2: lag %d, want at least 1", got)
	}
}
