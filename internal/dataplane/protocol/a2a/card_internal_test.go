package a2a

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

const (
	agentBase = "http://agent.internal:9000"
	gateway   = "https://gw.example/a2a/travel"
)

func sdkCard() *a2a.AgentCard {
	return &a2a.AgentCard{
		Name: "Travel", Description: "Books trips via " + agentBase + "/rpc.", Version: "1",
		DocumentationURL: agentBase + "/docs", IconURL: "https://cdn.example/icon.png",
		Provider: &a2a.AgentProvider{Org: "T", URL: agentBase},
		SupportedInterfaces: []*a2a.AgentInterface{
			{URL: agentBase + "/grpc", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: "1.0"},
			{URL: agentBase + "/rpc", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: "1.0", Tenant: "t1"},
			{URL: agentBase + "/rest", ProtocolBinding: a2a.TransportProtocolHTTPJSON, ProtocolVersion: "1.0"},
		},
		Capabilities:         a2a.AgentCapabilities{Streaming: true, PushNotifications: true},
		SecuritySchemes:      a2a.NamedSecuritySchemes{"own": a2a.APIKeySecurityScheme{Name: "X-Key", Location: "header"}},
		SecurityRequirements: a2a.SecurityRequirementsOptions{{"own": {}}},
		Signatures:           []a2a.AgentCardSignature{{Protected: "p", Signature: "s"}},
		Skills: []a2a.AgentSkill{
			{ID: "search", Name: "s", Description: "d", Tags: []string{}},
			{ID: "book", Name: "b", Description: "d", Tags: []string{}},
		},
	}
}

func TestRewriteCard10(t *testing.T) {
	raw, _ := json.Marshal(sdkCard())
	out, err := rewriteCard(cardView{card: raw, version: a2awire.V10, endpoint: gateway, upstream: agentBase + "/rpc", skills: []string{"book"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "agent.internal") {
		t.Errorf("the agent's address is in %s", out)
	}
	var card a2a.AgentCard
	if err := json.Unmarshal(out, &card); err != nil {
		t.Fatalf("the official SDK cannot read the card: %v\n%s", err, out)
	}
	if len(card.SupportedInterfaces) != 1 || *card.SupportedInterfaces[0] != (a2a.AgentInterface{URL: gateway, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: "1.0", Tenant: "t1"}) {
		t.Errorf("interfaces = %+v", card.SupportedInterfaces)
	}
	if len(card.Skills) != 1 || card.Skills[0].ID != "book" {
		t.Errorf("skills = %+v", card.Skills)
	}
	if card.Capabilities.PushNotifications || !card.Capabilities.ExtendedAgentCard || !card.Capabilities.Streaming {
		t.Errorf("capabilities = %+v", card.Capabilities)
	}
	if _, own := card.SecuritySchemes["own"]; own || card.SecuritySchemes[schemeBearer] == nil || len(card.SecurityRequirements) != 2 {
		t.Errorf("security = %+v %+v", card.SecuritySchemes, card.SecurityRequirements)
	}
	if len(card.Signatures) != 0 || card.DocumentationURL != "" || card.IconURL == "" || card.Description != "" {
		t.Errorf("signatures %v, docs %q, icon %q, description %q", card.Signatures, card.DocumentationURL, card.IconURL, card.Description)
	}
}

// A 0.3 agent served by the SDK's compatibility layer publishes a union of
// both card forms: rewritten, both name the gateway and say 0.3.
func TestRewriteCardUnion03(t *testing.T) {
	c := sdkCard()
	for _, i := range c.SupportedInterfaces {
		i.ProtocolVersion = a2av0.Version
	}
	raw, err := a2av0.NewStaticAgentCardProducer(c).(interface {
		CardJSON(context.Context) ([]byte, error)
	}).CardJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	v, ok := a2awire.CardVersion(m, agentBase+"/rpc")
	if !ok || v != a2awire.V03 {
		t.Fatalf("card version %v, %v", v, ok)
	}
	out, err := rewriteCard(cardView{card: raw, version: v, endpoint: gateway, upstream: agentBase + "/rpc", skills: []string{"search"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "agent.internal") {
		t.Errorf("the agent's address is in %s", out)
	}
	card, err := a2av0.NewAgentCardParser()(out)
	if err != nil {
		t.Fatalf("the SDK's 0.3 parser: %v\n%s", err, out)
	}
	for _, i := range card.SupportedInterfaces {
		if i.URL != gateway || i.ProtocolBinding != a2a.TransportProtocolJSONRPC {
			t.Errorf("interface %+v", i)
		}
	}
	var got map[string]any
	_ = json.Unmarshal(out, &got)
	if got["url"] != gateway || got["preferredTransport"] != "JSONRPC" || got["additionalInterfaces"] != nil || got["supportsAuthenticatedExtendedCard"] != true {
		t.Errorf("0.3 members: url %v, transport %v, additional %v", got["url"], got["preferredTransport"], got["additionalInterfaces"])
	}
	if sec, _ := got["security"].([]any); len(sec) != 2 {
		t.Errorf("0.3 security = %v", got["security"])
	}
}

// A union card of an agent brokered in 1.0 loses its 0.3 members: a 0.3
// client must not be told to call in 0.3.
func TestRewriteCardUnion10(t *testing.T) {
	c := sdkCard()
	c.SupportedInterfaces = append(c.SupportedInterfaces, &a2a.AgentInterface{URL: agentBase + "/v03", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version})
	raw, err := a2av0.NewStaticAgentCardProducer(c).(interface {
		CardJSON(context.Context) ([]byte, error)
	}).CardJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if v, ok := a2awire.CardVersion(m, agentBase+"/rpc"); !ok || v != a2awire.V10 {
		t.Fatalf("card version %v, %v", v, ok)
	}
	out, err := rewriteCard(cardView{card: raw, version: a2awire.V10, endpoint: gateway, upstream: agentBase + "/rpc"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(out, &got)
	for _, k := range []string{"url", "preferredTransport", "protocolVersion", "security", "supportsAuthenticatedExtendedCard"} {
		if _, ok := got[k]; ok {
			t.Errorf("a 1.0 card keeps 0.3 member %s", k)
		}
	}
	if skills, _ := got["skills"].([]any); len(skills) != 0 || !slices.Contains([]string{"[]"}, string(mustJSON(got["skills"]))) {
		t.Errorf("skills = %v, want none (no skill permitted)", got["skills"])
	}
	if ifaces, _ := got["supportedInterfaces"].([]any); len(ifaces) != 1 || ifaces[0].(map[string]any)["protocolVersion"] != "1.0" {
		t.Errorf("interfaces = %v, want the 1.0 JSON-RPC one", got["supportedInterfaces"])
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestRewriteCardRefusesNonObjects(t *testing.T) {
	if _, err := rewriteCard(cardView{card: []byte(`[1]`), version: a2awire.V10}); err == nil {
		t.Error("rewrote a list")
	}
}
