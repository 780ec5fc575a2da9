package syncclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs at level to t.Log until the test's cleanup ends, then
// drops records, so a late line from a stopping goroutine cannot panic.
func testLogger(t *testing.T, level slog.Level) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a settle wait
	}
}

// applier is a fake data plane: it decodes each snapshot, records the
// version of every Apply call and serves what it accepted.
type applier struct {
	mu      sync.Mutex
	calls   []uint64
	serving syncclient.Version
	reject  func(version uint64) error // nil accepts everything
	block   chan struct{}              // when set, Apply waits for it to close
	mode    configsyncv1.Mode          // reported while serving; default NORMAL
}

var _ syncclient.Applier = (*applier)(nil)

func (a *applier) Apply(ctx context.Context, b []byte) (syncclient.Version, error) {
	var s snapshotv1.Snapshot
	if err := proto.Unmarshal(b, &s); err != nil {
		return syncclient.Version{}, fmt.Errorf("decode snapshot: %w", err)
	}
	a.mu.Lock()
	block := a.block
	a.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return syncclient.Version{}, ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	v := syncclient.Version{Epoch: s.GetEpoch(), Number: s.GetVersion()}
	a.calls = append(a.calls, v.Number)
	if a.reject != nil {
		if err := a.reject(v.Number); err != nil {
			return v, err
		}
	}
	a.serving = v
	return v, nil
}

func (a *applier) Serving() (syncclient.Version, configsyncv1.Mode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.serving.IsZero() {
		return syncclient.Version{}, configsyncv1.Mode_MODE_STARTING
	}
	if a.mode != configsyncv1.Mode_MODE_UNSPECIFIED {
		return a.serving, a.mode
	}
	return a.serving, configsyncv1.Mode_MODE_NORMAL
}

func (a *applier) setReject(fn func(uint64) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reject = fn
}

// Calls returns the versions of every Apply call so far.
func (a *applier) Calls() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.calls...)
}

func (a *applier) servingVersion() uint64 {
	v, _ := a.Serving()
	return v.Number
}

// attempt is one ended Watch attempt.
type attempt struct {
	at  time.Time
	url string
	err error
}

// attempts records what the OnAttempt hook reports.
type attempts struct {
	mu   sync.Mutex
	list []attempt
}

func (r *attempts) hook(url string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, attempt{at: time.Now(), url: url, err: err})
}

func (r *attempts) all() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.list...)
}

// counter counts OnContact calls.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// running is a Client whose Run goroutine the test controls.
type running struct {
	c        *syncclient.Client
	attempts *attempts
	contacts *counter
	cancel   context.CancelFunc
	done     chan error
}

// startClient creates a client from cfg (filling Applier-independent test
// wiring), runs it, and stops it when the test ends. start >= 0 fixes the
// first URL.
func startClient(t *testing.T, cfg syncclient.Config, start int) *running {
	t.Helper()
	r := &running{attempts: &attempts{}, contacts: &counter{}, done: make(chan error, 1)}
	cfg.OnContact = r.contacts.inc
	cfg.OnAttempt = r.attempts.hook
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, slog.LevelDebug)
	}
	c, err := syncclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.c = c
	if start >= 0 {
		syncclient.StartAt(c, start)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
}
