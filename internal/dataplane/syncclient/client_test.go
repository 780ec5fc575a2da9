package syncclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const testPin = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

func TestNewValidates(t *testing.T) {
	cred := joincred.Credential{Name: "dp1", Token: "pct_x", CAFingerprint: testPin}
	base := func() syncclient.Config {
		return syncclient.Config{URLs: []string{"https://10.0.0.1:8443"}, Credential: cred, Applier: &applier{}}
	}
	tests := []struct {
		name string
		edit func(c *syncclient.Config)
		want string // error fragment; empty means valid
	}{
		{name: "valid", edit: func(*syncclient.Config) {}},
		{name: "trailing slash and several URLs", edit: func(c *syncclient.Config) {
			c.URLs = []string{"https://a.example:8443/", "https://b.example:8443"}
		}},
		{name: "http in dev", edit: func(c *syncclient.Config) {
			c.Dev, c.URLs, c.Credential.CAFingerprint = true, []string{"http://127.0.0.1:8080"}, ""
		}},
		{name: "no URL", edit: func(c *syncclient.Config) { c.URLs = nil }, want: "at least one"},
		{name: "http without dev", edit: func(c *syncclient.Config) { c.URLs = []string{"http://127.0.0.1:8080"} }, want: "only in dev mode"},
		{name: "other scheme", edit: func(c *syncclient.Config) { c.URLs = []string{"ftp://h:1"} }, want: "scheme must be https"},
		{name: "no host", edit: func(c *syncclient.Config) { c.URLs = []string{"https:///x"} }, want: "want scheme://host:port"},
		{name: "query", edit: func(c *syncclient.Config) { c.URLs = []string{"https://h:1/?a=b"} }, want: "want scheme://host:port"},
		{name: "user info", edit: func(c *syncclient.Config) { c.URLs = []string{"https://u:p@h:1"} }, want: "want scheme://host:port"},
		{name: "https without fingerprint", edit: func(c *syncclient.Config) { c.Credential.CAFingerprint = "" }, want: "fingerprint"},
		{name: "https in dev without fingerprint", edit: func(c *syncclient.Config) { c.Dev, c.Credential.CAFingerprint = true, "" }, want: "fingerprint"},
		{name: "no name", edit: func(c *syncclient.Config) { c.Credential.Name = "" }, want: "name and a token"},
		{name: "no token", edit: func(c *syncclient.Config) { c.Credential.Token = "" }, want: "name and a token"},
		{name: "no applier", edit: func(c *syncclient.Config) { c.Applier = nil }, want: "Applier"},
		{name: "negative backoff", edit: func(c *syncclient.Config) { c.MinBackoff = -1 }, want: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.edit(&cfg)
			_, err := syncclient.New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	a := &applier{}
	started := make(chan struct{})
	c, err := syncclient.New(syncclient.Config{
		URLs: []string{"http://127.0.0.1:1"}, Dev: true, Applier: a,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_x"},
		OnAttempt: func(string, error) {
			select {
			case <-started:
			default:
				close(started)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-started // the first Run is in its loop
	if err := c.Run(ctx); !errors.Is(err, syncclient.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestPeekVersion(t *testing.T) {
	full, err := proto.Marshal(&snapshotv1.Snapshot{
		ClusterId: "c1", VersionTime: timestamppb.Now(), Version: 1234567, Epoch: 3,
		Freeze: &snapshotv1.Freeze{Frozen: true, Reason: "drill"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want syncclient.Version
	}{
		{name: "whole snapshot", in: full, want: syncclient.Version{Epoch: 3, Number: 1234567}},
		{name: "no epoch (an older control plane)", in: mustMarshal(t, &snapshotv1.Snapshot{ClusterId: "c1", Version: 9}), want: syncclient.Version{Number: 9}},
		{name: "empty", in: nil},
		{name: "no version field", in: mustMarshal(t, &snapshotv1.Snapshot{ClusterId: "c1"})},
		{name: "garbage", in: []byte{0xff, 0xff, 0xff}},
		{name: "truncated", in: full[:len(full)-3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncclient.PeekVersion(tt.in); got != tt.want {
				t.Fatalf("PeekVersion = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVersionOrder(t *testing.T) {
	v := func(epoch, n uint64) syncclient.Version { return syncclient.Version{Epoch: epoch, Number: n} }
	tests := []struct {
		name string
		a, b syncclient.Version
		less bool
	}{
		{name: "lower number, same epoch", a: v(1, 5), b: v(1, 6), less: true},
		{name: "equal", a: v(2, 6), b: v(2, 6)},
		{name: "higher number, same epoch", a: v(1, 7), b: v(1, 6)},
		{name: "earlier epoch, higher number", a: v(1, 900), b: v(2, 3), less: true},
		{name: "later epoch, lower number", a: v(3, 1), b: v(2, 900)},
		{name: "no epoch reads as 1", a: v(0, 5), b: v(1, 6), less: true},
		{name: "no epoch equals epoch 1", a: v(0, 6), b: v(1, 6)},
		{name: "none is older than any", a: v(0, 0), b: v(1, 1), less: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Less(tt.b); got != tt.less {
				t.Fatalf("%v.Less(%v) = %t, want %t", tt.a, tt.b, got, tt.less)
			}
		})
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReason(t *testing.T) {
	long := strings.Repeat("é", 2000) // 2 bytes per rune
	tests := []struct {
		name    string
		err     error
		want    string
		wantLen int
	}{
		{name: "short", err: errors.New("policy \"p\" does not compile"), want: "policy \"p\" does not compile"},
		{name: "invalid UTF-8 replaced", err: errors.New("bad \xff byte"), want: "bad \uFFFD byte"},
		{name: "cut on a rune boundary", err: errors.New("x" + long), wantLen: 1023},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := syncclient.Reason(tt.err)
			if !utf8.ValidString(got) {
				t.Fatalf("Reason is not valid UTF-8: %q", got)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("Reason = %q, want %q", got, tt.want)
			}
			if tt.wantLen != 0 && len(got) != tt.wantLen {
				t.Fatalf("len(Reason) = %d, want %d", len(got), tt.wantLen)
			}
		})
	}
}
