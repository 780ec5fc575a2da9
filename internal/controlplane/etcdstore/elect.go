package etcdstore

import (
	"context"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// electionState is this node's view of the election: who leads, and
// whether this node does (its term).
type electionState struct {
	mu       sync.Mutex
	leaderID string
	term     context.Context // nil while this node does not lead
	termCh   chan struct{}   // closed when a term starts
	session  *concurrency.Session
	election *concurrency.Election
	cancel   context.CancelFunc // ends the session's keep-alive
}

func (e *electionState) init() { e.termCh = make(chan struct{}) }

func (e *electionState) leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leaderID
}

func (e *electionState) setLeader(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leaderID = id
}

func (e *electionState) leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.term != nil && e.term.Err() == nil
}

func (e *electionState) start(term context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term = term
	close(e.termCh)
	e.termCh = make(chan struct{})
}

func (e *electionState) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term = nil
}

// close resigns (so another node leads at once) and revokes the session.
func (e *electionState) close(ctx context.Context) {
	e.mu.Lock()
	s, el, cancel := e.session, e.election, e.cancel
	e.session, e.election, e.cancel = nil, nil, nil
	e.mu.Unlock()
	if el != nil {
		_ = el.Resign(ctx)
	}
	if s != nil {
		_ = s.Close()
	}
	if cancel != nil {
		cancel()
	}
}

// Lead implements singleton.Elector: it waits until this node is elected
// and returns a context that ends when its session does (it stopped
// leading) or ctx ends.
func (n *Node) Lead(ctx context.Context) (context.Context, error) {
	for {
		n.election.mu.Lock()
		term, ch := n.election.term, n.election.termCh
		n.election.mu.Unlock()
		if term != nil && term.Err() == nil {
			lead, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-term.Done():
				case <-lead.Done():
				}
				cancel()
			}()
			return lead, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// electLoop campaigns with etcd's election primitives (a lease-backed
// session; the candidate with the oldest key leads) until the node shuts
// down, and follows who leads. A node whose session expires (it could
// not reach etcd for the session's TTL) stops leading and campaigns anew.
func (n *Node) electLoop() {
	defer n.wg.Done()
	ctx := n.ctx
	ttl := max(1, int(math.Ceil(n.cfg.Timing.SessionTTL.Seconds())))
	for ctx.Err() == nil {
		sctx, scancel := context.WithCancel(context.Background())
		sess, err := concurrency.NewSession(n.cli, concurrency.WithTTL(ttl), concurrency.WithContext(sctx))
		if err != nil {
			scancel()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		el := concurrency.NewElection(sess, n.keys.election())
		n.election.mu.Lock()
		n.election.session, n.election.election, n.election.cancel = sess, el, scancel
		n.election.mu.Unlock()

		cctx, ccancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
			case <-cctx.Done():
			}
			ccancel()
		}()
		observed := make(chan struct{})
		go func() {
			defer close(observed)
			n.observe(cctx, el)
		}()
		if err := el.Campaign(cctx, n.cfg.NodeID); err == nil {
			term, end := context.WithCancel(cctx)
			n.election.start(term)
			n.election.setLeader(n.cfg.NodeID)
			n.log.InfoContext(ctx, "elected to do the cluster's singleton work")
			<-cctx.Done()
			end()
			n.election.stop()
			n.election.setLeader("")
		}
		ccancel()
		<-observed
		if ctx.Err() != nil {
			return // Shutdown resigns and revokes the session
		}
		n.log.WarnContext(ctx, "the election session ended (etcd unreachable for its TTL?); campaigning again")
		cctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		n.election.close(cctx)
		cancel()
	}
}

// observe follows who leads until ctx ends.
func (n *Node) observe(ctx context.Context, el *concurrency.Election) {
	for ctx.Err() == nil {
		for resp := range el.Observe(ctx) {
			if len(resp.Kvs) > 0 {
				n.election.setLeader(string(resp.Kvs[0].Value))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
