package a2a

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

func TestIDCodec(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	alice := idCodec{key: key, owner: "alice", upstream: "travel"}
	gw, err := alice.wrap(a2awire.TaskID, "task-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(gw, "task-1") {
		t.Errorf("the upstream's id shows in %q", gw)
	}
	if id, err := alice.unwrap(a2awire.TaskID, gw); err != nil || id != "task-1" {
		t.Fatalf("unwrap = %q, %v", id, err)
	}
	// The same codec on another data plane (same key) reads it.
	if id, err := (idCodec{key: bytes.Clone(key), owner: "alice", upstream: "travel"}).unwrap(a2awire.TaskID, gw); err != nil || id != "task-1" {
		t.Errorf("another data plane: %q, %v", id, err)
	}
	ctx, _ := alice.wrap(a2awire.ContextID, "task-1")
	foreign := []struct {
		name  string
		codec idCodec
		kind  a2awire.IDKind
		id    string
	}{
		{"another agent", idCodec{key: key, owner: "bob", upstream: "travel"}, a2awire.TaskID, gw},
		{"another upstream", idCodec{key: key, owner: "alice", upstream: "weather"}, a2awire.TaskID, gw},
		{"another key", idCodec{key: bytes.Repeat([]byte{2}, 32), owner: "alice", upstream: "travel"}, a2awire.TaskID, gw},
		{"a context id as a task id", alice, a2awire.TaskID, ctx},
		{"a raw upstream id", alice, a2awire.TaskID, "task-1"},
		{"a tampered id", alice, a2awire.TaskID, strings.Replace(gw, ".dGFz", ".dGFa", 1)},
		{"a truncated mac", alice, a2awire.TaskID, gw[:len(gw)-2]},
		{"no mac", alice, a2awire.TaskID, "g1t.dGFzay0x"},
		{"empty", alice, a2awire.TaskID, ""},
		{"too long", alice, a2awire.TaskID, "g1t." + strings.Repeat("A", 2000) + ".x"},
	}
	for _, tt := range foreign {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.codec.unwrap(tt.kind, tt.id); !errors.Is(err, errForeignID) {
				t.Errorf("unwrap(%q) = %v, want errForeignID", tt.id, err)
			}
		})
	}
	if _, err := alice.wrap(a2awire.TaskID, strings.Repeat("x", maxUpstreamID+1)); !errors.Is(err, errLongID) {
		t.Errorf("a long upstream id: %v", err)
	}
}

func FuzzUnwrap(f *testing.F) {
	c := idCodec{key: bytes.Repeat([]byte{1}, 32), owner: "alice", upstream: "travel"}
	gw, _ := c.wrap(a2awire.TaskID, "t")
	f.Add(gw)
	f.Add("g1c.x.y")
	f.Fuzz(func(t *testing.T, id string) {
		up, err := c.unwrap(a2awire.TaskID, id)
		if err != nil {
			return
		}
		again, err := c.wrap(a2awire.TaskID, up)
		if err != nil || again != id {
			t.Fatalf("%q unwrapped to %q, which wraps to %q (%v)", id, up, again, err)
		}
	})
}
