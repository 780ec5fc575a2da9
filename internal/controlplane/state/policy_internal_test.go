package state

import (
	"testing"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

func TestPinUpdateKeepingTheSchemaSkipsRevalidation(t *testing.T) {
	pin := func(upstream, tool, schema, desc string) *fsmv1.Resource {
		return &fsmv1.Resource{Kind: &fsmv1.Resource_ToolPin{ToolPin: &configv1.ToolPin{
			Upstream: upstream, Tool: tool, ActiveVersion: 1,
			Versions: []*configv1.ToolVersion{{Version: 1, InputSchema: []byte(schema), Definition: []byte(`{"description":"` + desc + `"}`)}},
		}}}
	}
	base := pin("up", "t", `{"type":"object"}`, "a")
	for _, tc := range []struct {
		name string
		old  *fsmv1.Resource
		next *fsmv1.Resource
		want bool
	}{
		{"new description, same schema", base, pin("up", "t", `{"type":"object"}`, "b"), true},
		{"schema changed", base, pin("up", "t", `{"type":"object","properties":{"x":{"type":"string"}}}`, "a"), false},
		{"other tool", base, pin("up", "u", `{"type":"object"}`, "a"), false},
		{"create", nil, base, false},
		{"delete", base, nil, false},
	} {
		if got := schemaUnchanged(tc.old, tc.next); got != tc.want {
			t.Errorf("%s: schemaUnchanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSameIdentifiers(t *testing.T) {
	agent := func(keys, spiffe, certs []string) *configv1.Agent {
		a := &configv1.Agent{SpiffeIds: spiffe, CertFingerprints: certs}
		for _, k := range keys {
			a.ApiKeys = append(a.ApiKeys, &configv1.ApiKey{Id: k})
		}
		return a
	}
	base := agent([]string{"k1", "k2"}, []string{"spiffe://a"}, nil)
	if !sameIdentifiers(base, agent([]string{"k2", "k1"}, []string{"spiffe://a"}, nil)) {
		t.Error("order changed the answer")
	}
	for name, other := range map[string]*configv1.Agent{
		"key added":       agent([]string{"k1", "k2", "k3"}, []string{"spiffe://a"}, nil),
		"spiffe changed":  agent([]string{"k1", "k2"}, []string{"spiffe://b"}, nil),
		"cert added":      agent([]string{"k1", "k2"}, []string{"spiffe://a"}, []string{"sha256:00"}),
		"kind confusions": agent([]string{"spiffe://a", "k2"}, []string{"k1"}, nil),
	} {
		if sameIdentifiers(base, other) {
			t.Errorf("%s: reported the same identifiers", name)
		}
	}
}
