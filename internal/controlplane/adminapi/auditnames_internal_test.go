package adminapi

import (
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// TestResolveAuditTarget: a query's tool may be named as agents see it or
// as its upstream does; both resolve to the same selection, which finds
// records of either shape. Names not registered now are not "known", so
// the query refuses them when no stored record names them.
func TestResolveAuditTarget(t *testing.T) {
	s := state.New()
	for i, cmd := range []*fsmv1.Command{
		statetest.Bootstrap(),
		statetest.Create(statetest.Upstream("bank", "")),
		statetest.Create(statetest.WithPrefix(statetest.Upstream("plain", ""), "")),
		statetest.Create(statetest.ToolPin("bank", "get_balance", "")),
		statetest.Create(statetest.ToolPin("plain", "weather", "")),
	} {
		var res *fsmv1.Result
		s, res = state.Apply(s, uint64(i+1), cmd)
		if res.GetError() != nil {
			t.Fatalf("command %d: %v", i, res.GetError())
		}
	}
	tests := []struct {
		name, upstream, tool string
		// want is the selection as "name|upstream|own upstream-filter known".
		want    string
		wantErr string
	}{
		{name: "agents' name", tool: "bank__get_balance", want: "bank__get_balance|bank|get_balance - true"},
		{name: "upstream's name", upstream: "bank", tool: "get_balance", want: "bank__get_balance|bank|get_balance bank true"},
		{name: "agents' name with its upstream", upstream: "bank", tool: "bank__get_balance", want: "bank__get_balance|bank|get_balance bank true"},
		{name: "unprefixed upstream", tool: "weather", want: "weather|plain|weather - true"},
		{name: "own name without upstream", tool: "get_balance", want: "get_balance|| - false"},
		{name: "not pinned now", tool: "bank__gone", want: "bank__gone|| - false"},
		{name: "not pinned now, by upstream", upstream: "bank", tool: "gone", want: "bank__gone|bank|gone bank false"},
		{name: "upstream removed", upstream: "old", tool: "t", want: "|old|t old false"},
		{name: "upstream alone", upstream: "bank", want: "<nil> bank true"},
		{name: "unknown upstream alone", upstream: "nope", want: "<nil> nope false"},
		{name: "another upstream's tool", upstream: "plain", tool: "bank__get_balance", wantErr: `belongs to upstream "bank", not "plain"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveAuditTarget(s, tt.upstream, tt.tool)
			if tt.wantErr != "" {
				if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want INVALID_ARGUMENT with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sel := "<nil>"
			if got.tool != nil {
				sel = got.tool.Name + "|" + got.tool.Upstream + "|" + got.tool.Own
			}
			up := got.upstream
			if up == "" {
				up = "-"
			}
			if s := fmt.Sprintf("%s %s %t", sel, up, got.known); s != tt.want {
				t.Errorf("resolved to %s, want %s", s, tt.want)
			}
		})
	}
	err := errUnknownAuditTarget("", "bank__gone")
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "gwctl tool list") || !strings.Contains(err.Error(), "--upstream UPSTREAM --tool TOOL") {
		t.Errorf("unknown tool: %v, want NOT_FOUND saying how to list tools and name them", err)
	}
	err = errUnknownAuditTarget("nope", "")
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "gwctl upstream list") {
		t.Errorf("unknown upstream: %v", err)
	}
}
