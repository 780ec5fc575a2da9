package budgetkey_test

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestKey(t *testing.T) {
	call := budgetkey.Call{Agent: "a1", Team: "ops", User: "okta/ann", Upstream: "openai", Target: "openai/gpt-4o"}
	for _, tc := range []struct {
		name string
		b    *configv1.Budget
		c    budgetkey.Call
		want string
		ok   bool
	}{
		{"agent", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT}, call, "agent a1", true},
		{"team", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM}, call, "team ops", true},
		{"user", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_USER}, call, "user okta/ann", true},
		{"global", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_GLOBAL}, call, "everyone", true},
		{"no team", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM}, budgetkey.Call{Agent: "a1"}, "", false},
		{"no user", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_USER}, budgetkey.Call{Agent: "a1"}, "", false},
		{"model matches", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT, Models: []string{"openai/gpt-4o"}}, call, "agent a1", true},
		{"other model", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT, Models: []string{"openai/o3"}}, call, "", false},
		{"other team", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_GLOBAL, Teams: []string{"dev"}}, call, "", false},
		{"upstream matches", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_GLOBAL, Upstreams: []string{"openai"}, Agents: []string{"a1"}}, call, "everyone", true},
		{"no scope", &configv1.Budget{}, call, "", false},
		{"key too long", &configv1.Budget{Scope: configv1.BudgetScope_BUDGET_SCOPE_USER}, budgetkey.Call{User: strings.Repeat("x", budgetkey.MaxKeyBytes)},
			"user sha256:64164443bb63e338ef1cfdb12a57117cd1212270cc935a798f6e8a665cdf4659", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := budgetkey.Key(tc.b, tc.c)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Key = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	oslo := budgetkey.Location("Europe/Oslo")
	at := time.Date(2026, 3, 31, 22, 30, 0, 0, time.UTC) // 00:30 on April 1st in Oslo (CEST)
	for _, tc := range []struct {
		name       string
		w          configv1.BudgetWindow
		loc        *time.Location
		start, end time.Time
	}{
		{"month in Oslo", configv1.BudgetWindow_BUDGET_WINDOW_MONTH, oslo, time.Date(2026, 4, 1, 0, 0, 0, 0, oslo), time.Date(2026, 5, 1, 0, 0, 0, 0, oslo)},
		{"month in UTC", configv1.BudgetWindow_BUDGET_WINDOW_MONTH, time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"day in Oslo", configv1.BudgetWindow_BUDGET_WINDOW_DAY, oslo, time.Date(2026, 4, 1, 0, 0, 0, 0, oslo), time.Date(2026, 4, 2, 0, 0, 0, 0, oslo)},
		{"hour", configv1.BudgetWindow_BUDGET_WINDOW_HOUR, oslo, time.Date(2026, 4, 1, 0, 0, 0, 0, oslo), time.Date(2026, 4, 1, 1, 0, 0, 0, oslo)},
		{"minute", configv1.BudgetWindow_BUDGET_WINDOW_MINUTE, time.UTC, at, at.Add(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, end := budgetkey.Window(tc.w, at, tc.loc)
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("Window = %s – %s, want %s – %s", start, end, tc.start, tc.end)
			}
		})
	}
	// The day DST starts in Oslo is 23 hours long.
	start, end := budgetkey.Window(configv1.BudgetWindow_BUDGET_WINDOW_DAY, time.Date(2026, 3, 29, 12, 0, 0, 0, oslo), oslo)
	if d := end.Sub(start); d != 23*time.Hour {
		t.Errorf("the day DST starts lasts %s, want 23h", d)
	}
	if budgetkey.Location("Nowhere/Nothing") != time.UTC || budgetkey.Location("") != time.UTC {
		t.Error("an unknown or empty zone is not UTC")
	}
}
