package authz_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

// callAt is when test calls start: 12:30 UTC on the fixture's day.
var callAt = authztest.VersionTime.Add(30 * time.Minute)

// newRequest is the request a data plane builds for agent calling the tool
// action with args over MCP from 10.1.2.3 at callAt.
func newRequest(agent, action, args string) *authz.Request {
	return &authz.Request{
		Agent:     agent,
		Action:    action,
		Resource:  authz.ToolResource(action),
		Arguments: json.RawMessage(args),
		Context: authz.Context{
			Protocol: "mcp",
			Time:     callAt,
			SourceIP: netip.MustParseAddr("10.1.2.3"),
		},
	}
}

// listRequest is the request a data plane builds to list agent's tools.
func listRequest(agent string) *authz.Request {
	return &authz.Request{
		Agent:   agent,
		Context: authz.Context{Protocol: "mcp", Time: callAt, SourceIP: netip.MustParseAddr("10.1.2.3")},
	}
}

func without(list []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == drop })
}

// listed is a listing, never nil, for comparing with a want list.
func listed(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}
