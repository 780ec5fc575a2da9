package config_test

import (
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
)

func TestAgentByAPIKey(t *testing.T) {
	c := configtest.Compile(t, configtest.Snapshot())
	now := configtest.VersionTime
	tests := []struct {
		name      string
		key       string
		now       time.Time
		wantAgent string // "" means refused
	}{
		{name: "valid key", key: configtest.PayerKey, now: now, wantAgent: "payer"},
		{name: "second agent", key: configtest.MarketerKey, now: now, wantAgent: "marketer"},
		{name: "wrong secret", key: "pck_0123456789abcdef_not-the-secret", now: now},
		{name: "secret of another key", key: "pck_0123456789abcdef_marketer-secret", now: now},
		{name: "unknown id", key: "pck_aaaaaaaaaaaaaaaa_payer-secret", now: now},
		{name: "expired key", key: configtest.ExpiredKey, now: now},
		{name: "expired at the instant of expiry", key: configtest.ExpiredKey, now: configtest.ExpiredAt},
		{name: "key before its expiry", key: configtest.ExpiredKey, now: configtest.ExpiredAt.Add(-time.Second), wantAgent: "payer"},
		{name: "disabled agent", key: configtest.DisabledKey, now: now},
		{name: "empty", key: "", now: now},
		{name: "malformed", key: "Bearer pck_0123456789abcdef_payer-secret", now: now},
		{name: "short id", key: "pck_0123_payer-secret", now: now},
		{name: "upper-case id", key: "pck_0123456789ABCDEF_payer-secret", now: now},
		{name: "no secret", key: "pck_0123456789abcdef_", now: now},
		{name: "admin token prefix", key: "pct_0123456789abcdef_payer-secret", now: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, ok := c.AgentByAPIKey(tt.key, tt.now)
			if tt.wantAgent == "" {
				if ok || agent != nil {
					t.Errorf("AgentByAPIKey() = %q, %v, want refused", agent.GetMeta().GetName(), ok)
				}
				return
			}
			if !ok || agent.GetMeta().GetName() != tt.wantAgent {
				t.Errorf("AgentByAPIKey() = %q, %v, want %q", agent.GetMeta().GetName(), ok, tt.wantAgent)
			}
		})
	}
}
