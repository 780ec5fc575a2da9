package webui_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	"github.com/portcullis-gw/portcullis/internal/controlplane/webui"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// rollouts is a PolicyHistory as the rollout work will write one: it
// reads through the view's clients (here, the set's current version) and
// remembers the actions it was asked to carry out.
type rollouts struct {
	mu      sync.Mutex
	actions []string
}

func (r *rollouts) PolicyHistory(ctx context.Context, c *webui.Clients, set string) (*webui.HistoryView, error) {
	res, err := c.Policy.GetPolicySet(ctx, connect.NewRequest(&adminv1.GetPolicySetRequest{Name: set}))
	if err != nil {
		return nil, err
	}
	v := res.Msg.GetPolicySet().GetVersion()
	return &webui.HistoryView{
		Versions: []webui.PolicyVersion{{Version: v, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), By: "op-token", Active: true, Diff: "+permit(...)"}},
		Rollout: &webui.RolloutView{Version: v + 1, Stage: "canary", Share: "10%", Differences: 3, Actions: []webui.RolloutAction{
			{Name: "abort", Label: "Abort the rollout", Procedure: adminv1connect.DataplaneServiceSetFreezeProcedure},
			{Name: "rollback", Label: "Roll back", Version: "1", Procedure: adminv1connect.DataplaneServiceSetFreezeProcedure},
		}},
	}, nil
}

func (r *rollouts) RolloutAction(_ context.Context, _ *webui.Clients, set, action, version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions = append(r.actions, set+" "+action+" "+version)
	return nil
}

// signIns records sign-ins instead of the admin log.
type signIns struct{}

func (signIns) RecordSignIn(context.Context, tokenauth.Token, netip.Addr) error { return nil }

// TestPolicyHistorySeam: a PolicyHistory fills the policies page's
// history and rollout section, and its buttons reach RolloutAction with
// the set, action and version, behind the same checks as every write.
func TestPolicyHistorySeam(t *testing.T) {
	n := cptest.Start(t, cptest.Options{})
	pol := adminv1connect.NewPolicyServiceClient(n.HTTPClient, n.URL, connect.WithInterceptors(bearer(n.AdminToken)))
	if _, err := pol.ApplyPolicySet(context.Background(), connect.NewRequest(&adminv1.ApplyPolicySetRequest{
		Name: "ops", Source: `permit(principal in Team::"ops", action in Action::"call_tool", resource);` + "\n",
	})); err != nil {
		t.Fatal(err)
	}
	hook := &rollouts{}
	node := n.Server.Node()
	h, err := webui.New(webui.Config{
		API: n.Server.Handler(), Tokens: node, Auth: tokenauth.NewAuthenticator(node, nil), Recorder: signIns{},
		Key: bytes.Repeat([]byte{7}, 32), Writes: true, History: hook,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	view := &cptest.Node{URL: srv.URL, HTTPClient: srv.Client()}
	a := newAgent(t, view)
	_, op := newToken(t, n, configv1.Role_ROLE_OPERATOR, time.Hour)
	wantRedirect(t, "sign-in", a.signIn(op), "/ui/cluster")

	wantStatus(t, "policies page", a.get("/ui/policies"), http.StatusOK,
		"Rolling out version 2: stage <strong>canary</strong> (10%), 3 decision difference(s)",
		`<input type="hidden" name="action" value="rollback">`, "Abort the rollout", "permit(...)</pre>", "2026-01-02 03:04:05Z")
	csrf := a.csrf("/ui/policies")
	wantStatus(t, "rollback without the CSRF token", a.post("/ui/policies/rollout", url.Values{"set": {"ops"}, "action": {"rollback"}}, srv.URL), http.StatusForbidden)
	wantRedirect(t, "rollback", a.post("/ui/policies/rollout", url.Values{"set": {"ops"}, "action": {"rollback"}, "version": {"1"}, "csrf": {csrf}}, srv.URL), "/ui/policies?done=rollout")
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.actions) != 1 || hook.actions[0] != "ops rollback 1" {
		t.Fatalf("RolloutAction calls %q, want one rollback of ops to 1", hook.actions)
	}
}
