package syncclient_test

import (
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// deadURL is the URL of a loopback port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestFailsOverFromDeadURL(t *testing.T) {
	f := newFakeSync(t, 20*time.Millisecond)
	dead := deadURL(t)
	a := &applier{}
	cfg := fakeConfig(f.serve(t), a, 10*time.Second)
	cfg.URLs = []string{dead, cfg.URLs[0]}
	r := startClient(t, cfg, 0) // the dead one first

	waitFor(t, 15*time.Second, "the snapshot through the live URL", func() bool { return a.servingVersion() == 1 })
	got := r.attempts.all()
	if len(got) == 0 || got[0].url != dead || connect.CodeOf(got[0].err) != connect.CodeUnavailable {
		t.Fatalf("attempts = %v, want the dead URL tried first and found unavailable", got)
	}
	if !r.c.Connected() {
		t.Fatal("Connected() = false")
	}
}
