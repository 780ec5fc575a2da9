package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// maxInFlight bounds the workload's outstanding writes; a tick that finds
// this many skips its write (and counts it).
const maxInFlight = 512

// write is the outcome of one write of the workload.
type write struct {
	node       string
	sent, done time.Time
	err        error
}

// workload sends one write every interval to the nodes in turn, each a
// single attempt, and records every outcome. It is an open loop: a slow
// or hanging write does not delay the next one.
type workload struct {
	mu      sync.Mutex
	writes  []write // in order of completion
	skipped int
	changed chan struct{} // closed at the next completion

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// target is one node the workload writes to.
type target struct {
	node string
	api  *harness.AdminAPI
}

func startWorkload(ctx context.Context, targets []target, interval, timeout time.Duration, prefix string) *workload {
	ctx, cancel := context.WithCancel(ctx)
	w := &workload{changed: make(chan struct{}), cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		inflight := make(chan struct{}, maxInFlight)
		for seq := 0; ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case inflight <- struct{}{}:
			default:
				w.mu.Lock()
				w.skipped++
				w.mu.Unlock()
				continue
			}
			tg := targets[seq%len(targets)]
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				defer func() { <-inflight }()
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				sent := time.Now()
				req := connect.NewRequest(&adminv1.CreateAgentRequest{
					Agent:    &configv1.Agent{Meta: &configv1.ResourceMeta{Name: fmt.Sprintf("%s-%06d", prefix, seq)}, Team: "failover"},
					NoApiKey: true,
				})
				_, err := tg.api.Agent.CreateAgent(wctx, req)
				if ctx.Err() != nil {
					return // stopping: not an outcome of the cluster
				}
				w.record(write{node: tg.node, sent: sent, done: time.Now(), err: err})
			}()
		}
	}()
	return w
}

func (w *workload) record(r write) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, r)
	close(w.changed)
	w.changed = make(chan struct{})
}

// stop ends the workload and waits for its writes.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
}

// await waits until cond, called under the lock with every outcome so far,
// returns true; it gives up at timeout.
func (w *workload) await(ctx context.Context, timeout time.Duration, what string, cond func(writes []write) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond(w.writes)
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
	}
}

// awaitStreak waits until n consecutive writes (by completion) sent after
// since have succeeded: the workload runs cleanly on every node.
func (w *workload) awaitStreak(ctx context.Context, since time.Time, n int, timeout time.Duration) error {
	return w.await(ctx, timeout, fmt.Sprintf("%d consecutive successful writes", n), func(writes []write) bool {
		streak := 0
		for _, r := range writes {
			if r.sent.Before(since) {
				continue
			}
			if r.err != nil {
				streak = 0
				continue
			}
			streak++
		}
		return streak >= n
	})
}

// outage is what the workload saw of one leader kill.
type outage struct {
	first     write         // the first acknowledged write sent after the kill
	failover  time.Duration // kill → first.done
	failed    int           // writes that failed between the kill and first.done
	errSample string        // one of their errors, from a surviving node if any
}

// awaitRecovery waits for the first successful write sent at or after the
// kill of node killed and describes the outage.
func (w *workload) awaitRecovery(ctx context.Context, killed string, kill time.Time, timeout time.Duration) (outage, error) {
	var o outage
	err := w.await(ctx, timeout, "a write accepted after the kill", func(writes []write) bool {
		for _, r := range writes {
			if r.err == nil && !r.sent.Before(kill) && (o.first.done.IsZero() || r.done.Before(o.first.done)) {
				o.first = r
			}
		}
		return !o.first.done.IsZero()
	})
	if err != nil {
		return o, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.writes {
		if r.err != nil && !r.done.Before(kill) && !r.done.After(o.first.done) {
			o.failed++
			// What a surviving node answered is the more telling sample.
			if o.errSample == "" || (r.node != killed && strings.HasPrefix(o.errSample, killed+":")) {
				o.errSample = fmt.Sprintf("%s: %v", r.node, r.err)
			}
		}
	}
	o.failover = o.first.done.Sub(kill)
	return o, nil
}

// tally counts the workload's outcomes. A failed write is expected in two
// windows of a round: between the kill and the first write accepted again
// (the election), and to the killed node until it is back.
type tally struct {
	ok, skipped int
	election    int // failed between a kill and the recovery
	deadNode    int // failed on the killed node, after the recovery and before its restart
	other       int // failed anywhere else: a problem
	otherSample string
	// byCode counts the election's failures by Connect code and node role
	// ("canceled from a survivor"): what a client has to retry on.
	byCode map[string]int
}

func (w *workload) tally(rounds []round) tally {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := tally{skipped: w.skipped, byCode: map[string]int{}}
	for _, r := range w.writes {
		if r.err == nil {
			t.ok++
			continue
		}
		switch i := slices.IndexFunc(rounds, func(rd round) bool {
			return !r.done.Before(rd.kill) && !r.done.After(rd.outage.first.done)
		}); {
		case i >= 0:
			t.election++
			who := "a survivor"
			if r.node == rounds[i].killed {
				who = "the killed node"
			}
			t.byCode[fmt.Sprintf("%s from %s", connect.CodeOf(r.err), who)]++
		case slices.ContainsFunc(rounds, func(rd round) bool {
			return r.node == rd.killed && !r.sent.Before(rd.kill) && !r.sent.After(rd.back)
		}):
			t.deadNode++
		default:
			t.other++
			if t.otherSample == "" {
				t.otherSample = fmt.Sprintf("%s: %v", r.node, r.err)
			}
		}
	}
	return t
}
