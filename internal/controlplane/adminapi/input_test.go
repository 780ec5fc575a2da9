package adminapi_test

import (
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// withUnknown appends an unknown varint field to a marshalled message.
func withUnknown(b []byte) []byte {
	b = protowire.AppendTag(b, 4242, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnknownFieldsRefused(t *testing.T) {
	n := startNode(t)
	agentBytes := func(name string) []byte {
		return mustMarshal(t, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}})
	}
	// createAgent wraps agent bytes as CreateAgentRequest.agent (field 1).
	createAgent := func(agent []byte) []byte {
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendBytes(b, agent)
	}
	tests := []struct {
		name        string
		agent       string
		contentType string
		body        []byte
		// fragment is expected in the refusal; empty means the call succeeds.
		fragment string
	}{
		{name: "JSON control", agent: "json-ok", contentType: "application/json", body: []byte(`{"agent":{"meta":{"name":"json-ok"}},"noApiKey":true}`)},
		{name: "JSON unknown top-level field", agent: "json-top", contentType: "application/json", body: []byte(`{"agent":{"meta":{"name":"json-top"}},"bogusField":true}`), fragment: "bogusField"},
		{name: "JSON unknown nested field", agent: "json-nested", contentType: "application/json", body: []byte(`{"agent":{"meta":{"name":"json-nested","nmae":"x"}}}`), fragment: "nmae"},
		{name: "JSON misspelt field", agent: "json-typo", contentType: "application/json", body: []byte(`{"agent":{"meta":{"name":"json-typo"}},"no_api_kye":true}`), fragment: "no_api_kye"},
		{name: "proto control", agent: "bin-ok", contentType: "application/proto", body: createAgent(agentBytes("bin-ok"))},
		{name: "proto unknown top-level field", agent: "bin-top", contentType: "application/proto", body: withUnknown(createAgent(agentBytes("bin-top"))), fragment: "fields this server does not know"},
		{name: "proto unknown nested field", agent: "bin-nested", contentType: "application/proto", body: createAgent(withUnknown(agentBytes("bin-nested"))), fragment: "fields this server does not know"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n.post(t, adminv1connect.AgentServiceCreateAgentProcedure, tt.contentType, n.admin, tt.body)
			t.Logf("%d %s: %s", r.status, r.code, r.message)
			_, getErr := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: tt.agent}))
			if tt.fragment == "" {
				if r.status != http.StatusOK || getErr != nil {
					t.Fatalf("control request: status %d %s %s; get: %v", r.status, r.code, r.message, getErr)
				}
				return
			}
			if r.status != http.StatusBadRequest || r.code != "invalid_argument" || !strings.Contains(r.message, tt.fragment) {
				t.Fatalf("got %d %s %q, want 400 invalid_argument mentioning %q", r.status, r.code, r.message, tt.fragment)
			}
			wantCode(t, getErr, connect.CodeNotFound)
		})
	}
}

func TestNames(t *testing.T) {
	n := startNode(t)
	t.Run("duplicate agent", func(t *testing.T) {
		create := func() error {
			_, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "dup-bot"}}}))
			return err
		}
		if err := create(); err != nil {
			t.Fatal(err)
		}
		wantCode(t, create(), connect.CodeAlreadyExists, `agent "dup-bot" already exists`)
	})
	t.Run("duplicate upstream", func(t *testing.T) {
		create := func() error {
			_, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
				Meta: &configv1.ResourceMeta{Name: "dup-up"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/",
			}}))
			return err
		}
		if err := create(); err != nil {
			t.Fatal(err)
		}
		wantCode(t, create(), connect.CodeAlreadyExists, `upstream "dup-up" already exists`)
	})

	bad := []string{"", "Bad_Name", "UPPER", "-lead", "trail-", "dots.not.ok", "sp ace", "ünï", strings.Repeat("a", 64)}
	calls := []struct {
		name string
		call func(name string) error
	}{
		{name: "agent", call: func(name string) error {
			_, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}}}))
			return err
		}},
		{name: "upstream", call: func(name string) error {
			_, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
				Meta: &configv1.ResourceMeta{Name: name}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/",
			}}))
			return err
		}},
		{name: "secret", call: func(name string) error {
			_, err := n.secrets.SetSecret(ctx(t), req(n.admin, &adminv1.SetSecretRequest{Name: name, Value: []byte("v")}))
			return err
		}},
		{name: "policy set", call: func(name string) error {
			_, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: name, Source: permitAll}))
			return err
		}},
		{name: "identity source", call: func(name string) error {
			_, err := n.identities.CreateIdentitySource(ctx(t), req(n.admin, &adminv1.CreateIdentitySourceRequest{IdentitySource: jwtIssuer(name)}))
			return err
		}},
		{name: "agent team", call: func(name string) error {
			_, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "team-bot"}, Team: name + "!"}}))
			return err
		}},
	}
	for _, c := range calls {
		for _, name := range bad {
			t.Run(c.name+" "+name, func(t *testing.T) {
				wantCode(t, c.call(name), connect.CodeInvalidArgument, "is not a valid name")
			})
		}
	}
}

func jwtIssuer(name string) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: &configv1.ResourceMeta{Name: name},
		Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: &configv1.JwtIssuer{
			Issuer: "https://idp.example.com", Jwks: []byte(`{"keys":[]}`), Audiences: []string{"portcullis"}, Use: configv1.JwtUse_JWT_USE_AGENTS,
		}},
	}
}

func TestConsistencyHeader(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name  string
		value string
		code  connect.Code // 0: success
	}{
		{name: "absent"},
		{name: "local", value: "local"},
		{name: "linearizable", value: "linearizable"},
		{name: "unknown value", value: "strong", code: connect.CodeInvalidArgument},
		{name: "wrong case", value: "Linearizable", code: connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "read-" + strings.ReplaceAll(tt.name, " ", "-")
			if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}}})); err != nil {
				t.Fatal(err)
			}
			var hdr []string
			if tt.value != "" {
				hdr = []string{"Portcullis-Consistency", tt.value}
			}
			got, err := n.agents.GetAgent(ctx(t), req(n.admin, &adminv1.GetAgentRequest{Name: name}, hdr...))
			_, listErr := n.agents.ListAgents(ctx(t), req(n.admin, &adminv1.ListAgentsRequest{}, hdr...))
			if tt.code != 0 {
				wantCode(t, err, tt.code, "Portcullis-Consistency must be local or linearizable")
				wantCode(t, listErr, tt.code, "Portcullis-Consistency must be local or linearizable")
				return
			}
			if err != nil || listErr != nil {
				t.Fatalf("get: %v; list: %v", err, listErr)
			}
			if got.Msg.GetAgent().GetMeta().GetName() != name {
				t.Fatalf("read %v, want agent %s", got.Msg.GetAgent(), name)
			}
		})
	}
}
