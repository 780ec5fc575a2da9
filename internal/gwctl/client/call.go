package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
)

// Backoff between full rounds over the servers.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = time.Second
)

// Op describes one logical call.
type Op struct {
	// Write marks a state change. One request id is generated for the
	// operation and sent on every attempt, so the server applies it at most
	// once however often it is retried.
	Write bool
	// Long lifts the per-attempt timeout (backup transfers); the caller's
	// context still bounds the whole operation.
	Long bool
	// AttemptTimeout, when non-zero, replaces Config.AttemptTimeout for
	// this call: for a call that legitimately waits on something beyond
	// the control plane (discovery waits on the upstream), so that its
	// attempt is not cut short and taken for a dead node.
	AttemptTimeout time.Duration
}

// Do runs call against the server that last worked and fails over to the
// next one (round robin) when the attempt does not reach a working node: a
// transport error, or UNAVAILABLE or DEADLINE_EXCEEDED from the attempt. It
// keeps going, with a backoff of 100ms doubling to 1s between full rounds,
// until ctx is done. Any other error is returned at once: in particular a
// failure of something the node called on the caller's behalf (an upstream
// during discovery comes back as FAILED_PRECONDITION), which no other node
// would cure and which a retry would only repeat against that upstream.
//
// call may run several times; it must start over each time (for example
// rewind what it writes).
func (c *Client) Do(ctx context.Context, op Op, call func(ctx context.Context, s *Services) error) error {
	info := callInfo{linearizable: !op.Write && c.cfg.Linearizable}
	if op.Write {
		info.requestID = uuid.NewString()
	}
	ctx = withCallInfo(ctx, info)
	start := time.Now()
	backoff := minBackoff
	failedInRound := 0
	for {
		i := c.pick()
		s := c.servers[i]
		err := c.attempt(ctx, op, s, call)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return giveUp(ctx, start, s.URL, err)
		}
		if perm := permanent(s.URL, c.cfg.CAFile, err); perm != nil {
			return perm
		}
		if !retryable(err) {
			return err
		}
		next := c.advance(i)
		c.warn(s.URL, reason(err), c.servers[next].URL)
		failedInRound++
		if failedInRound < len(c.servers) {
			continue
		}
		failedInRound = 0
		if sleep(ctx, backoff) != nil {
			return giveUp(ctx, start, s.URL, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Client) attempt(ctx context.Context, op Op, s *Services, call func(context.Context, *Services) error) error {
	if op.Long {
		return call(ctx, s)
	}
	timeout := c.cfg.AttemptTimeout
	if op.AttemptTimeout > 0 {
		timeout = op.AttemptTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := call(actx, s)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("no answer within %s", timeout))
	}
	return err
}

// pick returns the index of the server that last worked.
func (c *Client) pick() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// advance moves past server i, unless another call already did.
func (c *Client) advance(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == i {
		c.current = (i + 1) % len(c.servers)
	}
	return c.current
}

// warn prints one failover line; an identical line (same server, same
// reason) is printed once per Client, so a long outage stays readable.
func (c *Client) warn(from, why, to string) {
	if c.cfg.Warn == nil {
		return
	}
	line := fmt.Sprintf("warning: %s: %s; retried on %s", from, why, to)
	c.mu.Lock()
	seen := c.warned[line]
	c.warned[line] = true
	c.mu.Unlock()
	if !seen {
		c.cfg.Warn(line)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Read runs a unary read with failover and returns its response message.
func Read[Res any](ctx context.Context, c *Client, call func(context.Context, *Services) (*connect.Response[Res], error)) (*Res, error) {
	return unary(ctx, c, Op{}, call)
}

// ReadWithin is Read with a per-attempt timeout of d instead of the
// configured one (see Op.AttemptTimeout).
func ReadWithin[Res any](ctx context.Context, c *Client, d time.Duration, call func(context.Context, *Services) (*connect.Response[Res], error)) (*Res, error) {
	return unary(ctx, c, Op{AttemptTimeout: d}, call)
}

// Write runs a unary write with failover (one request id for every attempt)
// and returns its response message.
func Write[Res any](ctx context.Context, c *Client, call func(context.Context, *Services) (*connect.Response[Res], error)) (*Res, error) {
	return unary(ctx, c, Op{Write: true}, call)
}

func unary[Res any](ctx context.Context, c *Client, op Op, call func(context.Context, *Services) (*connect.Response[Res], error)) (*Res, error) {
	var out *Res
	err := c.Do(ctx, op, func(ctx context.Context, s *Services) error {
		resp, err := call(ctx, s)
		if err != nil {
			return err
		}
		out = resp.Msg
		return nil
	})
	return out, err
}
