package harness

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Webhook is a real HTTP receiver of alerts on loopback, in the test
// process: it records every delivery (arrival time, headers, body) and
// answers with the status the test sets (200 by default).
type Webhook struct {
	// URL is where it receives: http://127.0.0.1:<port>/hook.
	URL string

	mu         sync.Mutex
	status     int
	deliveries []WebhookDelivery
	changed    chan struct{}
	srv        *http.Server
}

// WebhookDelivery is one request the receiver got.
type WebhookDelivery struct {
	At     time.Time
	Header http.Header
	Body   []byte
	// Status is what the receiver answered.
	Status int
}

// StartWebhook starts a receiver that stops when the test ends.
func StartWebhook(t testing.TB) *Webhook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &Webhook{URL: "http://" + ln.Addr().String() + "/hook", status: http.StatusOK, changed: make(chan struct{})}
	w.srv = &http.Server{Handler: http.HandlerFunc(w.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("webhook receiver: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.srv.Shutdown(ctx)
	})
	return w
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	w.mu.Lock()
	status := w.status
	w.deliveries = append(w.deliveries, WebhookDelivery{At: at, Header: r.Header.Clone(), Body: body, Status: status})
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	rw.WriteHeader(status)
}

// SetStatus sets the status later deliveries are answered with.
func (w *Webhook) SetStatus(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = status
}

// Deliveries returns every delivery so far.
func (w *Webhook) Deliveries() []WebhookDelivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookDelivery(nil), w.deliveries...)
}

// Await waits until cond holds of the deliveries, failing the test at the
// deadline. It wakes on every delivery, so it measures arrival without a
// polling delay.
func (w *Webhook) Await(t testing.TB, timeout time.Duration, what string, cond func([]WebhookDelivery) error) []WebhookDelivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		got := append([]WebhookDelivery(nil), w.deliveries...)
		changed := w.changed
		w.mu.Unlock()
		err := cond(got)
		if err == nil {
			return got
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("webhook: %s: still not true after %s: %v", what, timeout, err)
		}
	}
}
