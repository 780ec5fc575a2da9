package upstream_test

import (
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	"github.com/portcullis-gw/portcullis/internal/egress"
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// TestDialsUnderTheSnapshotsEgressPolicy: Conns dials every upstream
// under the egress policy the configuration carries (the control plane's):
// what it refuses is never dialed, what it allows is, and a new policy
// takes effect on the next call without a restart. Metadata and link-local
// addresses stay refused unless the policy (or the upstream) allows them.
// Nothing here dials a metadata address: an allowed one is shown with
// loopback ranges.
func TestDialsUnderTheSnapshotsEgressPolicy(t *testing.T) {
	up := startBackend(t, secret)
	metadata := "http://169.254.169.254/v1"
	tests := []struct {
		name    string
		url     string
		policy  egress.Policy
		refused bool
	}{
		{name: "default policy, loopback", url: up.url()},
		{name: "default policy, cloud metadata", url: metadata, refused: true},
		{name: "loopback denied", url: up.url(), policy: egress.Policy{Deny: prefixes("127.0.0.0/8")}, refused: true},
		{name: "a narrower allow inside a deny", url: up.url(), policy: egress.Policy{Deny: prefixes("127.0.0.0/8"), Allow: prefixes("127.0.0.1/32")}},
		{name: "an allow elsewhere leaves metadata refused", url: metadata, policy: egress.Policy{Allow: prefixes("127.0.0.1/32", "10.0.0.0/8")}, refused: true},
		{name: "link-local allowed, metadata denied by range", url: metadata, policy: egress.Policy{AllowLinkLocal: true, Deny: prefixes("169.254.169.254/32")}, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			r := resolverFor(plain("demo", tc.url, "tok"))
			// Bound to both hosts: only the egress policy decides here.
			r.SetSecret("tok", []byte(secret), "127.0.0.1", "169.254.169.254")
			r.SetEgress(tc.policy)
			before := len(up.requests())
			_, err := newFake(t).call(ctx, r)
			if !tc.refused {
				if err != nil {
					t.Fatalf("call under %+v: %v", tc.policy, err)
				}
				return
			}
			msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret)
			if !strings.Contains(msg, "egress policy") {
				t.Fatalf("refusal %q, want it to name the egress policy", msg)
			}
			if n := len(up.requests()) - before; n != 0 {
				t.Fatalf("the upstream saw %d requests under a policy that refuses it", n)
			}
		})
	}

	t.Run("a new policy applies to the next call", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		f := newFake(t)
		r := resolverFor(plain("demo", up.url(), "tok"))
		if _, err := f.call(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.SetEgress(egress.Policy{Deny: prefixes("127.0.0.1/32")})
		_, err := f.call(ctx, r)
		if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "egress policy") {
			t.Fatalf("after the policy changed: %q, want an egress refusal", msg)
		}
		r.SetEgress(egress.Policy{})
		if _, err := f.call(ctx, r); err != nil {
			t.Fatalf("after the policy allowed it again: %v", err)
		}
	})
}

// TestOAuthTokenEndpointUnderTheEgressPolicy: the token endpoint of an
// upstream's client-credentials grant is dialed under the same policy as
// the upstream: refused, the token request never leaves the data plane.
func TestOAuthTokenEndpointUnderTheEgressPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const accessToken = "issued-access-token"
	tokens := startTokenServer(t, accessToken)
	// The token endpoint listens on another loopback address than the
	// upstream, so a policy can refuse one and allow the other.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	other := httptest.NewUnstartedServer(tokens.srv.Config.Handler)
	other.Listener = ln
	other.Start()
	t.Cleanup(other.Close)
	up := startBackend(t, accessToken)
	r := upstreamtest.NewResolver()
	r.SetUpstream(oauthUpstream(up.url(), other.URL))
	r.SetSecret("oauth-secret", []byte("client-secret"), "127.0.0.1", "127.0.0.2")

	r.SetEgress(egress.Policy{Deny: prefixes("127.0.0.2/32")})
	_, err = newFake(t).call(ctx, r)
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, "client-secret")
	if !strings.Contains(msg, "OAuth token endpoint") || tokens.requests.Load() != 0 {
		t.Fatalf("refusal %q after %d token requests; want the token endpoint named and none sent", msg, tokens.requests.Load())
	}

	r.SetEgress(egress.Policy{})
	if _, err := newFake(t).call(ctx, r); err != nil {
		t.Fatalf("with the token endpoint allowed: %v", err)
	}
	if tokens.requests.Load() != 1 {
		t.Fatalf("%d token requests, want 1", tokens.requests.Load())
	}
}
