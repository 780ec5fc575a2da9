package adminapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
)

// failingResolver fails every lookup the way the system resolver does,
// naming the DNS server it asked.
type failingResolver struct{}

func (failingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.255.255.53:53", IsNotFound: true}
}

// TestEgressResolveFailureNamesOnlyTheHost: a URL whose host does not
// resolve is refused with the host's name, not the node's DNS server.
func TestEgressResolveFailureNamesOnlyTheHost(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a := New(Config{Sealer: sealer, Resolver: failingResolver{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	err = a.checkEgress(context.Background(), "url", "https://mcp.nowhere.example:8443/mcp", false)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("error %v, want FailedPrecondition", err)
	}
	if !strings.Contains(ce.Message(), `"mcp.nowhere.example"`) || strings.Contains(ce.Message(), "10.255.255.53") {
		t.Errorf("message %q: want the host, not the DNS server", ce.Message())
	}
	if !strings.Contains(logs.String(), "10.255.255.53") {
		t.Errorf("the log lacks the resolver's error:\n%s", logs.String())
	}
}
