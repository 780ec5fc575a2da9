package adminapi_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

const requestIDHeader = "Portcullis-Request-Id"

func TestRequestIDDedup(t *testing.T) {
	n := startNode(t)
	operator, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	create := func(token, requestID string) (*connect.Response[adminv1.CreateAgentResponse], error) {
		return n.agents.CreateAgent(ctx(t), req(token, &adminv1.CreateAgentRequest{
			Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "retry-bot", Description: "created once"}},
		}, requestIDHeader, requestID))
	}
	first, err := create(n.admin, "create-retry-bot-1")
	if err != nil {
		t.Fatal(err)
	}
	rev := first.Msg.GetAgent().GetMeta().GetRevision()

	t.Run("same request id", func(t *testing.T) {
		again, err := create(n.admin, "create-retry-bot-1")
		if err != nil {
			t.Fatalf("retry with the same request id: %v", err)
		}
		if !proto.Equal(again.Msg.GetAgent(), first.Msg.GetAgent()) {
			t.Fatalf("retry returned %v, want the first agent %v", again.Msg.GetAgent(), first.Msg.GetAgent())
		}
		got, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: "retry-bot"}))
		if err != nil {
			t.Fatal(err)
		}
		if r := got.Msg.GetAgent().GetMeta().GetRevision(); r != rev {
			t.Fatalf("revision after the retry = %d, want %d", r, rev)
		}
	})
	t.Run("other request id", func(t *testing.T) {
		_, err := create(n.admin, "create-retry-bot-2")
		wantCode(t, err, connect.CodeAlreadyExists, `agent "retry-bot" already exists`)
	})
	t.Run("same request id from another token", func(t *testing.T) {
		_, err := create(operator, "create-retry-bot-1")
		wantCode(t, err, connect.CodeAlreadyExists, `agent "retry-bot" already exists`)
	})
	t.Run("no request id", func(t *testing.T) {
		_, err := create(n.admin, "")
		wantCode(t, err, connect.CodeAlreadyExists, `agent "retry-bot" already exists`)
	})
	t.Run("malformed request id", func(t *testing.T) {
		_, err := create(n.admin, "not valid!")
		wantCode(t, err, connect.CodeInvalidArgument, requestIDHeader)
	})
	t.Run("retried delete", func(t *testing.T) {
		del := func() error {
			_, err := n.agents.DeleteAgent(ctx(t), req(n.admin, &adminv1.DeleteAgentRequest{Name: "retry-bot"}, requestIDHeader, "delete-retry-bot"))
			return err
		}
		if err := del(); err != nil {
			t.Fatal(err)
		}
		if err := del(); err != nil {
			t.Fatalf("retried delete: %v, want the first success again", err)
		}
	})
}

// TestRetriedCreateReturnsUsableSecret retries a create whose response was
// lost: the API key or token in the retry's response must be the one that
// was stored, or the client holds a credential that can never work.
func TestRetriedCreateReturnsUsableSecret(t *testing.T) {
	n := startNode(t)
	t.Run("agent API key", func(t *testing.T) {
		create := func() *adminv1.CreateAgentResponse {
			res, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{
				Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "keyed-bot"}},
			}, requestIDHeader, "create-keyed-bot"))
			if err != nil {
				t.Fatal(err)
			}
			return res.Msg
		}
		create()
		retry := create()
		id, ok := credential.Parse(credential.APIKey, retry.GetApiKey())
		if !ok || len(retry.GetAgent().GetApiKeys()) != 1 || retry.GetAgent().GetApiKeys()[0].GetId() != id {
			t.Fatalf("retry returned API key %q (id %q) for an agent whose stored key id is %v", retry.GetApiKey(), id, retry.GetAgent().GetApiKeys())
		}
	})
	t.Run("admin token", func(t *testing.T) {
		create := func() *adminv1.CreateTokenResponse {
			res, err := n.tokens.CreateToken(ctx(t), req(n.admin, &adminv1.CreateTokenRequest{
				Role: configv1.Role_ROLE_AUDITOR, Ttl: durationpb.New(time.Hour),
			}, requestIDHeader, "create-auditor-token"))
			if err != nil {
				t.Fatal(err)
			}
			return res.Msg
		}
		create()
		retry := create()
		if err := n.listAgents(t, "Bearer "+retry.GetSecret()); err != nil {
			t.Fatalf("the token returned by the retry does not work: %v", err)
		}
	})
}

func TestSecretsNeverReturned(t *testing.T) {
	n := startNode(t)
	plaintext := []byte("pl41n-T3XT-value-0451")
	needles := map[string]string{
		"plaintext":           string(plaintext),
		"plaintext as base64": base64.StdEncoding.EncodeToString(plaintext),
		"plaintext as b64url": base64.RawURLEncoding.EncodeToString(plaintext),
		"ciphertext field":    `"ciphertext"`,
		"sha256 field":        `"sha256"`,
	}
	noNeedles := func(t *testing.T, what string, body []byte, extra map[string]string) {
		t.Helper()
		for name, needle := range needles {
			if bytes.Contains(body, []byte(needle)) {
				t.Errorf("%s response contains the %s: %s", what, name, body)
			}
		}
		for name, needle := range extra {
			if bytes.Contains(body, []byte(needle)) {
				t.Errorf("%s response contains the %s: %s", what, name, body)
			}
		}
	}

	t.Run("secret", func(t *testing.T) {
		set := n.postJSON(t, adminv1connect.SecretServiceSetSecretProcedure, n.admin,
			`{"name":"gh-token","hosts":["api.github.com"],"value":"`+base64.StdEncoding.EncodeToString(plaintext)+`"}`)
		if !bytes.Contains(set, []byte(`"size":"21"`)) {
			t.Errorf("SetSecret response lacks the size: %s", set)
		}
		noNeedles(t, "SetSecret", set, nil)
		noNeedles(t, "GetSecret", n.postJSON(t, adminv1connect.SecretServiceGetSecretProcedure, n.admin, `{"name":"gh-token"}`), nil)
		noNeedles(t, "ListSecrets", n.postJSON(t, adminv1connect.SecretServiceListSecretsProcedure, n.admin, `{}`), nil)

		// The backup holds the secret sealed, never in the clear.
		s, err := n.backups.SaveBackup(ctx(t), req(n.admin, &adminv1.SaveBackupRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var backup []byte
		for s.Receive() {
			backup = append(backup, s.Msg().GetChunk()...)
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if len(backup) == 0 || bytes.Contains(backup, plaintext) {
			t.Fatalf("backup of %d bytes holds the plaintext (or is empty)", len(backup))
		}
	})

	t.Run("agent API key", func(t *testing.T) {
		created := n.postJSON(t, adminv1connect.AgentServiceCreateAgentProcedure, n.admin, `{"agent":{"meta":{"name":"keyed-bot"}}}`)
		res := &adminv1.CreateAgentResponse{}
		if err := protojson.Unmarshal(created, res); err != nil {
			t.Fatal(err)
		}
		key := res.GetApiKey()
		id, ok := credential.Parse(credential.APIKey, key)
		if !ok || len(res.GetAgent().GetApiKeys()) != 1 || res.GetAgent().GetApiKeys()[0].GetId() != id {
			t.Fatalf("CreateAgent returned key %q for stored keys %v", key, res.GetAgent().GetApiKeys())
		}
		if len(res.GetAgent().GetApiKeys()[0].GetSha256()) != 0 || bytes.Contains(created, []byte(`"sha256"`)) {
			t.Errorf("CreateAgent returned the key digest: %s", created)
		}
		keyNeedle := map[string]string{"API key": key}
		noNeedles(t, "GetAgent", n.postJSON(t, adminv1connect.AgentServiceGetAgentProcedure, n.admin, `{"name":"keyed-bot"}`), keyNeedle)
		noNeedles(t, "ListAgents", n.postJSON(t, adminv1connect.AgentServiceListAgentsProcedure, n.admin, `{}`), keyNeedle)
		noNeedles(t, "UpdateAgent", n.postJSON(t, adminv1connect.AgentServiceUpdateAgentProcedure, n.admin, `{"agent":{"meta":{"name":"keyed-bot","description":"changed"}}}`), keyNeedle)
		noNeedles(t, "SetAgentDisabled", n.postJSON(t, adminv1connect.AgentServiceSetAgentDisabledProcedure, n.admin, `{"name":"keyed-bot","disabled":true}`), keyNeedle)
		got := n.postJSON(t, adminv1connect.AgentServiceGetAgentProcedure, n.admin, `{"name":"keyed-bot"}`)
		if !bytes.Contains(got, []byte(id)) {
			t.Errorf("GetAgent lost the key id %s: %s", id, got)
		}
	})

	t.Run("admin tokens", func(t *testing.T) {
		text, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
		noNeedles(t, "ListTokens", n.postJSON(t, adminv1connect.TokenServiceListTokensProcedure, n.admin, `{}`),
			map[string]string{"token text": text, "bootstrap token text": n.admin})
	})
}

func TestUpstreamEgress(t *testing.T) {
	n := startNode(t)
	upstream := func(name, url string, allowLinkLocal bool) *configv1.Upstream {
		return &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: name}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: url, AllowLinkLocal: allowLinkLocal}
	}
	oauth := upstream("oauth-meta", "http://10.0.0.7/mcp", false)
	oauth.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{OauthClientCredentials: &configv1.OAuthClientCredentials{
		TokenUrl: "http://169.254.169.254/token", ClientId: "c", ClientSecret: "oauth-secret",
	}}}
	tests := []struct {
		name      string
		upstream  *configv1.Upstream
		fragments []string // nil: accepted
	}{
		{name: "cloud metadata", upstream: upstream("meta", "http://169.254.169.254/", false), fragments: []string{"169.254.169.254", "metadata", "--allow-link-local"}},
		{name: "cloud metadata allowed", upstream: upstream("meta-ok", "http://169.254.169.254/", true)},
		{name: "link-local", upstream: upstream("ll", "http://169.254.10.1:8080/mcp", false), fragments: []string{"link-local"}},
		{name: "IPv6 link-local", upstream: upstream("ll6", "http://[fe80::1]/mcp", false), fragments: []string{"link-local"}},
		{name: "IPv4-mapped metadata", upstream: upstream("mapped", "http://[::ffff:169.254.169.254]/", false), fragments: []string{"metadata"}},
		{name: "metadata host name", upstream: upstream("gcp", "http://metadata.google.internal/computeMetadata/v1/", false), fragments: []string{"metadata host name"}},
		{name: "numeric host", upstream: upstream("num", "http://2852039166/", false), fragments: []string{"not a canonical IP address"}},
		{name: "unspecified address", upstream: upstream("zero", "http://0.0.0.0:8080/", false), fragments: []string{"unspecified"}},
		{name: "file URL", upstream: upstream("file", "file:///etc/passwd", false), fragments: []string{`scheme must be http or https, not "file"`}},
		{name: "user info", upstream: upstream("userinfo", "https://user:pw@10.0.0.1/", false), fragments: []string{"user info"}},
		{name: "OAuth token URL at the metadata address", upstream: oauth, fragments: []string{"token_url", "169.254.169.254"}},
		{name: "private address", upstream: upstream("private", "http://10.0.0.5:8080/mcp", false)},
		{name: "loopback", upstream: upstream("local", "http://127.0.0.1:9/mcp", false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: tt.upstream}))
			_, getErr := n.upstreams.GetUpstream(ctx(t), req(n.admin, &adminv1.GetUpstreamRequest{Name: tt.upstream.GetMeta().GetName()}))
			if tt.fragments == nil {
				if err != nil || getErr != nil {
					t.Fatalf("create: %v; get: %v", err, getErr)
				}
				return
			}
			wantCode(t, err, connect.CodeInvalidArgument, tt.fragments...)
			wantCode(t, getErr, connect.CodeNotFound)
		})
	}
	t.Run("update to the metadata address", func(t *testing.T) {
		got, err := n.upstreams.GetUpstream(ctx(t), req(n.admin, &adminv1.GetUpstreamRequest{Name: "private"}))
		if err != nil {
			t.Fatal(err)
		}
		u := proto.Clone(got.Msg.GetUpstream()).(*configv1.Upstream)
		u.Url = "http://169.254.169.254/latest/meta-data/"
		_, err = n.upstreams.UpdateUpstream(ctx(t), req(n.admin, &adminv1.UpdateUpstreamRequest{Upstream: u}))
		wantCode(t, err, connect.CodeInvalidArgument, "metadata")
		after, err := n.upstreams.GetUpstream(ctx(t), req(n.admin, &adminv1.GetUpstreamRequest{Name: "private"}))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(after.Msg.GetUpstream().GetUrl(), "http://10.0.0.5") {
			t.Fatalf("URL after the refused update = %s", after.Msg.GetUpstream().GetUrl())
		}
	})
}
