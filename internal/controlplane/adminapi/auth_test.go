package adminapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

const refused = "the token was refused"

// listAgents calls ListAgents with a raw Authorization header value
// (omitted when empty).
func (n *node) listAgents(t *testing.T, authorization string) error {
	r := connect.NewRequest(&adminv1.ListAgentsRequest{})
	if authorization != "" {
		r.Header().Set("Authorization", authorization)
	}
	_, err := n.agents.ListAgents(ctx(t), r)
	return err
}

func TestAuthentication(t *testing.T) {
	n := startNode(t)
	unknown, err := credential.New(credential.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	revoked, revokedID := n.newToken(t, configv1.Role_ROLE_ADMIN, time.Hour)
	if err := n.listAgents(t, "Bearer "+revoked); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	if _, err := n.tokens.RevokeToken(ctx(t), req(n.admin, &adminv1.RevokeTokenRequest{Id: revokedID})); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// The bootstrap token's id with a wrong secret.
	adminID, ok := credential.Parse(credential.AdminToken, n.admin)
	if !ok {
		t.Fatalf("bootstrap token %q does not parse", n.admin)
	}
	forged := "pct_" + adminID + "_" + strings.Repeat("A", 43)

	tests := []struct {
		name          string
		authorization string
	}{
		{name: "missing"},
		{name: "empty bearer", authorization: "Bearer "},
		{name: "other scheme", authorization: "Basic " + n.admin},
		{name: "no scheme", authorization: n.admin},
		{name: "malformed", authorization: "Bearer not-a-token"},
		{name: "wrong kind", authorization: "Bearer " + strings.Replace(n.admin, "pct_", "pck_", 1)},
		{name: "overlong", authorization: "Bearer " + n.admin + strings.Repeat("x", 200)},
		{name: "unknown", authorization: "Bearer " + unknown.Text},
		{name: "wrong secret for a known id", authorization: "Bearer " + forged},
		{name: "revoked", authorization: "Bearer " + revoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, n.listAgents(t, tt.authorization), connect.CodeUnauthenticated, refused)
		})
	}

	t.Run("expired", func(t *testing.T) {
		res, err := n.tokens.CreateToken(ctx(t), req(n.admin, &adminv1.CreateTokenRequest{Role: configv1.Role_ROLE_AUDITOR, Ttl: durationpb.New(time.Second)}))
		if err != nil {
			t.Fatal(err)
		}
		auth := "Bearer " + res.Msg.GetSecret()
		expire := res.Msg.GetToken().GetExpireTime().AsTime()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			err := n.listAgents(t, auth)
			if err == nil {
				if time.Now().After(expire.Add(time.Second)) {
					t.Fatalf("token accepted more than a second after it expired at %v", expire)
				}
			} else {
				wantCode(t, err, connect.CodeUnauthenticated, refused)
				if time.Now().Before(expire) {
					t.Fatalf("token refused before it expired at %v", expire)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("token still accepted after the deadline")
			}
			<-tick.C
		}
	})
}

func TestRoles(t *testing.T) {
	n := startNode(t)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	operator, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	agent := func(name string) *adminv1.CreateAgentRequest {
		return &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}}}
	}
	createAgent := func(tok, name string) error {
		_, err := n.agents.CreateAgent(ctx(t), req(tok, agent(name)))
		return err
	}
	createToken := func(tok string) error {
		_, err := n.tokens.CreateToken(ctx(t), req(tok, &adminv1.CreateTokenRequest{Role: configv1.Role_ROLE_AUDITOR, Ttl: durationpb.New(time.Hour)}))
		return err
	}
	listAgents := func(tok string) error { return n.listAgents(t, "Bearer "+tok) }
	listTokens := func(tok string) error {
		_, err := n.tokens.ListTokens(ctx(t), req(tok, &adminv1.ListTokensRequest{}))
		return err
	}
	saveBackup := func(tok string) error {
		s, err := n.backups.SaveBackup(ctx(t), req(tok, &adminv1.SaveBackupRequest{}))
		if err != nil {
			return err
		}
		defer s.Close()
		for s.Receive() {
		}
		return s.Err()
	}
	tests := []struct {
		name string
		call func() error
		// want is empty for success, else the PermissionDenied message.
		want string
	}{
		{name: "auditor reads", call: func() error { return listAgents(auditor) }},
		{name: "auditor creates an agent", call: func() error { return createAgent(auditor, "by-auditor") }, want: "token lacks role operator (it has auditor)"},
		{name: "auditor lists tokens", call: func() error { return listTokens(auditor) }, want: "token lacks role admin (it has auditor)"},
		{name: "operator creates an agent", call: func() error { return createAgent(operator, "by-operator") }},
		{name: "operator creates a token", call: func() error { return createToken(operator) }, want: "token lacks role admin (it has operator)"},
		{name: "operator saves a backup", call: func() error { return saveBackup(operator) }, want: "token lacks role admin (it has operator)"},
		{name: "admin creates a token", call: func() error { return createToken(n.admin) }},
		{name: "admin saves a backup", call: func() error { return saveBackup(n.admin) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantCode(t, err, connect.CodePermissionDenied, tt.want)
		})
	}
	for _, name := range []string{"by-auditor"} {
		_, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: name}))
		wantCode(t, err, connect.CodeNotFound)
	}
}

// TestUnmountedProcedure: a path no service serves is not found, and never
// reaches a handler unauthenticated.
func TestUnmountedProcedure(t *testing.T) {
	n := startNode(t)
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, n.base+"/portcullis.admin.v1.AgentService/DropEverything", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+n.admin)
	resp, err := n.hc.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
}
