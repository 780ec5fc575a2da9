package config_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
)

// decoded decodes JSON as the Validate stage does: numbers as json.Number.
func decoded(t *testing.T, text string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", text, err)
	}
	return v
}

func TestValidateArguments(t *testing.T) {
	s := configtest.Snapshot()
	s.ToolPins[0].Versions[0].InputSchema = nil // an empty schema means no arguments
	c := configtest.Compile(t, s)
	pay, _ := c.Tool(configtest.PayAction, nil)
	balance, _ := c.Tool(configtest.BalanceAction, nil)
	secret := "TOPSECRET" + strings.Repeat("x", 80)

	tests := []struct {
		name    string
		action  string
		args    string
		want    []string // substrings of the error; nil means valid
		notWant string   // must not appear in the error
	}{
		{name: "valid", action: configtest.PayAction, args: `{"amount": 100, "to": "bob"}`},
		{name: "valid with optional", action: configtest.PayAction, args: `{"amount": 100, "to": "bob", "memo": null}`},
		{name: "string for integer", action: configtest.PayAction, args: `{"amount": "900", "to": "bob"}`,
			want: []string{"arguments/amount: want integer, got string"}, notWant: "900"},
		{name: "missing required", action: configtest.PayAction, args: `{"amount": 100}`,
			want: []string{"arguments/to: required"}},
		{name: "below minimum", action: configtest.PayAction, args: `{"amount": 0, "to": "bob"}`,
			want: []string{"arguments/amount: must be >= 1"}},
		{name: "too long, value not echoed", action: configtest.PayAction, args: `{"amount": 1, "to": "` + secret + `"}`,
			want: []string{"arguments/to: must be at most 64 characters"}, notWant: "TOPSECRET"},
		{name: "unknown property", action: configtest.PayAction, args: `{"amount": 1, "to": "bob", "extra": "TOPSECRET"}`,
			want: []string{"arguments/extra: not allowed"}, notWant: "TOPSECRET"},
		{name: "oneOf failure", action: configtest.PayAction, args: `{"amount": 1, "to": "bob", "memo": 5}`,
			want: []string{"arguments/memo: want string, got number", "arguments/memo: want null, got number"}},
		{name: "several failures", action: configtest.PayAction, args: `{"amount": "x", "to": 5}`,
			want: []string{"arguments/amount", "arguments/to"}},
		{name: "not an object", action: configtest.PayAction, args: `[1]`,
			want: []string{"arguments: want object, got array"}},
		{name: "absurd exponent", action: configtest.PayAction, args: `{"amount": 1e999999, "to": "bob"}`,
			want: []string{"arguments/amount: number too large or too small"}},
		{name: "absurd exponent, nested", action: configtest.PayAction, args: `{"amount": 1, "to": "bob", "x/y": [{"n": 1}, {"n": -2E+999999}]}`,
			want: []string{"arguments/x~1y/1/n: number too large or too small"}},
		{name: "no-argument tool, none given", action: configtest.BalanceAction, args: `{}`},
		{name: "no-argument tool, one given", action: configtest.BalanceAction, args: `{"x": 1}`,
			want: []string{"arguments/x: not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := pay
			if tt.action == configtest.BalanceAction {
				tool = balance
			}
			start := time.Now()
			err := tool.ValidateArguments(decoded(t, tt.args))
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("validation took %v", elapsed)
			}
			if tt.want == nil {
				if err != nil {
					t.Errorf("ValidateArguments() = %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateArguments() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q echoes %q", err, tt.notWant)
			}
		})
	}
}
