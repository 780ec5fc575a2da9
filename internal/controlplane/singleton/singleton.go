// Package singleton runs the control plane's singleton work — the work
// one node does for the whole cluster at a time (today the etcd store's
// snapshots and log truncation; later the rollout controller, quota
// leases and learned lists) — on whichever node the store elects, and
// hands it over when that node fails or steps down. The work never asks
// which store elected it: Raft's leader and the etcd election both
// implement Elector.
//
// Leadership is never exact: a node that lost it may not know yet (a Raft
// leader until its lease runs out, an etcd-elected node until its session
// expires). Work that must never run twice at once guards its writes
// itself (the etcd store's are conditional transactions); everything else
// must tolerate a short overlap.
package singleton

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Elector tells when this node leads. Implementations must be safe for
// concurrent use.
type Elector interface {
	// Lead blocks until this node leads (or ctx ends) and returns a
	// context that ends when it stops leading (or ctx ends).
	Lead(ctx context.Context) (context.Context, error)
}

// Job is one piece of singleton work.
type Job struct {
	// Name labels the job in logs.
	Name string
	// Run does the work until ctx ends, which happens when this node
	// stops leading. It is called again when the node leads again.
	Run func(ctx context.Context)
}

// Run runs jobs while e says this node leads, until ctx ends. Each
// leadership term starts every job once and waits for all of them to
// return before the node campaigns again.
func Run(ctx context.Context, e Elector, jobs []Job, log *slog.Logger) {
	for ctx.Err() == nil {
		term, err := e.Lead(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "singleton work: campaign failed; retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		log.InfoContext(ctx, "this node leads: singleton work starts here", "jobs", len(jobs))
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.Run(term)
			}()
		}
		<-term.Done()
		wg.Wait()
		if ctx.Err() == nil {
			log.InfoContext(ctx, "this node no longer leads: singleton work stopped here")
		}
	}
}

// Poll is an Elector over a store that can say whether this node leads
// right now (Raft's leader): it checks every Every (default 100ms).
type Poll struct {
	IsLeader func() bool
	Every    time.Duration
}

var _ Elector = Poll{}

// Lead implements Elector.
func (p Poll) Lead(ctx context.Context) (context.Context, error) {
	every := p.Every
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	for !p.IsLeader() {
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	term, cancel := context.WithCancel(ctx)
	go func() {
		defer t.Stop()
		defer cancel()
		for {
			select {
			case <-term.Done():
				return
			case <-t.C:
				if !p.IsLeader() {
					return
				}
			}
		}
	}()
	return term, nil
}
