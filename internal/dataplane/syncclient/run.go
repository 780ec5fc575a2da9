package syncclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// errSilent ends a stream that sent nothing for the heartbeat timeout.
var errSilent = errors.New("no message from the control plane within the heartbeat timeout")

// ErrRunning is returned by Run when the Client is already running.
var ErrRunning = errors.New("config sync client is already running")

// Run keeps a Watch stream open until ctx ends, then returns nil. It starts
// at a random URL and moves round robin to the next one after every failed
// or broken stream, waiting a jittered, growing backoff in between; a
// stream that stayed up for the heartbeat timeout resets the backoff. It
// never gives up on its own: a revoked credential or an unreachable
// cluster is logged and retried.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	defer func() {
		for _, tr := range c.transports {
			tr.CloseIdleConnections()
		}
	}()

	i := c.start
	if i < 0 {
		i = rand.IntN(len(c.targets)) //nolint:gosec // load spreading, not a secret
	}
	bo := backoff{min: c.cfg.MinBackoff, max: c.cfg.MaxBackoff}
	for {
		t := c.targets[i%len(c.targets)]
		i++
		stable, err := c.session(ctx, t)
		if c.cfg.OnAttempt != nil {
			c.cfg.OnAttempt(t.url, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSilent) {
			// The stream is gone; drop the connection under it too, which
			// may be dead, rather than send the next attempt over it.
			t.tr.CloseIdleConnections()
		}
		if stable {
			bo.reset()
		}
		timer := time.NewTimer(bo.next())
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// session runs one Watch stream on t until it fails, goes silent or ctx
// ends. stable reports whether it delivered messages for at least the
// heartbeat timeout.
func (c *Client) session(ctx context.Context, t *target) (stable bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := c.cfg.HeartbeatTimeout
	watchdog := time.AfterFunc(timeout, func() { cancel(errSilent) })
	defer watchdog.Stop()

	serving, _ := c.cfg.Applier.Serving()
	req := connect.NewRequest(&configsyncv1.WatchRequest{Name: c.cfg.Credential.Name, Version: serving.Number, Epoch: serving.Epoch})
	c.authorize(req.Header())
	var connectedAt time.Time
	defer func() {
		if err == nil {
			err = errors.New("the control plane ended the stream")
		}
		if cause := context.Cause(sctx); errors.Is(cause, errSilent) {
			err = errSilent
		}
		if !connectedAt.IsZero() {
			c.connected.Store(false)
			stable = time.Since(connectedAt) >= timeout
			if ctx.Err() == nil {
				c.log.WarnContext(ctx, "disconnected from control plane", "url", t.url, "err", err)
			}
		} else if ctx.Err() == nil {
			c.logFailure(ctx, t.url, err)
		}
	}()

	stream, err := t.rpc.Watch(sctx, req)
	if err != nil {
		return false, fmt.Errorf("watch %s: %w", t.url, err)
	}
	defer func() { _ = stream.Close() }()
	for stream.Receive() {
		watchdog.Stop() // handling a message may take a while; it is not silence
		c.cfg.OnContact()
		msg := stream.Msg()
		if connectedAt.IsZero() {
			connectedAt = time.Now()
			c.connected.Store(true)
			delete(c.failures, t.url)
			c.log.InfoContext(ctx, "connected to control plane", "url", t.url)
			if hb := msg.GetHeartbeat(); hb != nil {
				c.reportStatus(ctx, t, hb)
			}
		}
		switch k := msg.GetKind().(type) {
		case *configsyncv1.WatchResponse_Snapshot:
			c.apply(ctx, t, k.Snapshot)
		case *configsyncv1.WatchResponse_SnapshotGzip:
			data, err := gunzip(k.SnapshotGzip, c.cfg.MaxSnapshotBytes)
			if err != nil {
				return false, fmt.Errorf("watch %s: %w", t.url, err)
			}
			c.apply(ctx, t, data)
		}
		if hb := msg.GetHeartbeat(); hb != nil {
			c.reportQuarantines(ctx, t, hb)
		}
		watchdog.Reset(timeout)
	}
	if err := stream.Err(); err != nil {
		return false, fmt.Errorf("watch %s: %w", t.url, err)
	}
	return false, nil
}

// logFailure logs a failed attempt at warning level when it differs from
// the last failure on that URL, at debug level otherwise.
func (c *Client) logFailure(ctx context.Context, url string, err error) {
	code := connect.CodeOf(err)
	if errors.Is(err, errSilent) {
		code = connect.CodeDeadlineExceeded
	}
	if last, seen := c.failures[url]; seen && last == code {
		c.log.DebugContext(ctx, "config sync attempt failed again", "url", url, "err", err)
		return
	}
	c.failures[url] = code
	c.log.WarnContext(ctx, "config sync attempt failed", "url", url, "err", err)
}
