package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Singleton work — the audit consumers and alert delivery today; the
// rollout controller and lease granting later — runs on the leader and
// resumes on the next one, from what it keeps in the replicated state.
//
// elector says when this node leads. It is the contract of the etcd
// store's election (package singleton's Elector, on the etcd branch):
// with the Raft store it is Raft's leadership (raftElector); with etcd,
// the etcd election. Implementations must be safe for concurrent use.
type elector interface {
	// Lead blocks until this node leads (or ctx ends) and returns a
	// context that ends when it stops leading (or ctx ends).
	Lead(ctx context.Context) (context.Context, error)
}

// leaderJob is one piece of singleton work: it runs until its context (a
// leadership term) ends, and again in the next term.
type leaderJob struct {
	name string
	run  func(ctx context.Context)
}

// raftElector is Raft leadership, polled. A deposed leader may not know
// it for up to its lease timeout; every job guards its writes itself
// (counts the state machine checks), so a short overlap changes nothing.
type raftElector struct {
	isLeader func() bool
	every    time.Duration
}

// Lead implements elector.
func (e raftElector) Lead(ctx context.Context) (context.Context, error) {
	t := time.NewTicker(e.every)
	for !e.isLeader() {
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
				if !e.isLeader() {
					return
				}
			}
		}
	}()
	return term, nil
}

// runLeaderWork runs jobs in every term this node leads, until ctx ends.
// A term's jobs all return before the node waits to lead again.
func runLeaderWork(ctx context.Context, e elector, jobs []leaderJob, log *slog.Logger) {
	for ctx.Err() == nil {
		term, err := e.Lead(ctx)
		if err != nil {
			continue // ctx ended
		}
		log.InfoContext(ctx, "this node leads: leader work starts here")
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.run(term)
			}()
		}
		<-term.Done()
		wg.Wait()
		if ctx.Err() == nil {
			log.InfoContext(ctx, "this node no longer leads: leader work stopped here")
		}
	}
}
