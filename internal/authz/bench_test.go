package authz_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

func BenchmarkCompile(b *testing.B) {
	s := authztest.Snapshot()
	for b.Loop() {
		if _, err := authz.Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	e := authztest.Compile(b, authztest.Snapshot())
	req := newRequest(authztest.Payer, authztest.PayAction, `{"amount": 100, "to": "bob", "memo": "rent"}`)
	for b.Loop() {
		if d := e.Decide(context.Background(), req); !d.Allowed {
			b.Fatalf("denied: %+v", d)
		}
	}
}

// BenchmarkDecideScale decides a call that exactly one of n permits allows
// (see authztest.Scale), evaluating every policy ("full"), a PolicySet
// assembled per request from the index ("assembled"), the index's buckets
// in place ("indexed", the cache off) and with the decision cache hit
// ("cached").
func BenchmarkDecideScale(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000} {
		s := authztest.Scale(n)
		plain := authztest.Compile(b, s, authz.WithDecisionCache(0))
		cached := authztest.Compile(b, s)
		modes := []struct {
			name   string
			decide func(*authz.Request) authz.Decision
		}{
			{"full", plain.DecideUnindexed},
			{"assembled", plain.DecideAssembled},
			{"indexed", func(req *authz.Request) authz.Decision { return plain.Decide(context.Background(), req) }},
			{"cached", func(req *authz.Request) authz.Decision { return cached.Decide(context.Background(), req) }},
		}
		for _, m := range modes {
			b.Run(fmt.Sprintf("policies=%d/%s", n+authztest.ScaleForbids, m.name), func(b *testing.B) {
				req := newRequest(authztest.ScaleAgent(7), authztest.ScaleAction(7), `{"amount": 100, "to": "bob"}`)
				for b.Loop() {
					if d := m.decide(req); !d.Allowed {
						b.Fatalf("denied: %+v", d)
					}
				}
			})
		}
	}
}
