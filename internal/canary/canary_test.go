package canary_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/canary"
)

// TestBucketIsTheSpecifiedHash recomputes the bucket from its definition
// for a few inputs, including a hand-checked one.
func TestBucketIsTheSpecifiedHash(t *testing.T) {
	tests := []struct{ id, agent string }{
		{"payments-1a2b3c4d", "billing-bot"},
		{"payments-1a2b3c4d", "ops-agent"},
		{"r", ""},
		{"", "a"},
	}
	for _, tt := range tests {
		sum := sha256.Sum256([]byte(tt.id + "\x00" + tt.agent))
		want := uint32(binary.BigEndian.Uint64(sum[:8]) % 10000)
		if got := canary.Bucket(tt.id, tt.agent); got != want {
			t.Errorf("Bucket(%q, %q) = %d, want %d", tt.id, tt.agent, got, want)
		}
	}
	// The separator matters: ("ab", "c") and ("a", "bc") hash different
	// bytes.
	if canary.Bucket("ab", "c") == canary.Bucket("a", "bc") && canary.Bucket("ab", "cd") == canary.Bucket("a", "bcd") {
		t.Error("the id and the agent name are not separated")
	}
}

// TestShares: an agent in the canary stays in as the share grows, 0 takes
// nobody and 10,000 everybody, a share takes about its part of many
// agents, and another rollout draws another sample.
func TestShares(t *testing.T) {
	const n = 20000
	agents := make([]string, n)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%05d", i)
	}
	shares := []uint32{0, 500, 2500, 5000, 10000}
	prev := map[string]bool{}
	for _, bp := range shares {
		in := 0
		for _, a := range agents {
			got := canary.In("rollout-a", a, bp)
			if prev[a] && !got {
				t.Fatalf("agent %s left the canary when the share grew to %d", a, bp)
			}
			if got {
				prev[a] = true
				in++
			}
		}
		want := n * int(bp) / 10000
		if d := in - want; d < -n/50 || d > n/50 {
			t.Errorf("share %d basis points took %d of %d agents, want about %d", bp, in, n, want)
		}
	}
	same := 0
	for _, a := range agents {
		if canary.In("rollout-a", a, 5000) == canary.In("rollout-b", a, 5000) {
			same++
		}
	}
	if same > n*55/100 {
		t.Errorf("two rollouts agree on %d of %d agents at 50%%: not a fresh sample", same, n)
	}
}
