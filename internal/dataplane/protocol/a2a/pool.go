package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/a2aclient"
	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Pool reaches the A2A agents behind the gateway: one a2aclient.Client
// per agent in an upstream.Conns, which attaches the agent's own
// credential (the caller's never reaches it), bounds sizes, dials under
// the egress policy and replaces the client when the upstream's settings
// change. Every request runs under the upstream's resilience guard
// (resilience.Do). Safe for concurrent use.
type Pool struct {
	conns  *upstream.Conns[*a2aclient.Client]
	logger *slog.Logger
}

// upstreamProtocols are the configured protocols of the upstreams A2A
// serves.
var upstreamProtocols = []configv1.Protocol{configv1.Protocol_PROTOCOL_A2A}

// NewPool returns an empty pool; opts configure its connections.
func NewPool(logger *slog.Logger, opts ...upstream.Option) *Pool {
	return &Pool{
		logger: logger.With("component", "upstream"),
		conns: upstream.NewConns(logger, upstream.Driver[*a2aclient.Client]{
			Name:      "A2A",
			Protocols: upstreamProtocols,
			Headers:   []string{a2awire.HeaderVersion, a2awire.HeaderExtensions},
			Key:       func(u *configv1.Upstream) string { return u.GetA2ACardPath() },
			Open: func(s *upstream.Settings, hc *http.Client) (*a2aclient.Client, error) {
				return a2aclient.New(a2aclient.Config{URL: s.URL, HTTP: hc, MaxMessageBytes: int(min(s.MaxResponse, 1<<30)), Hide: s.CredentialValues()})
			},
			Close: func(context.Context, *a2aclient.Client) error { return nil },
		}, opts...),
	}
}

// request is one JSON-RPC request to an agent.
type request struct {
	upstream string
	version  a2awire.Version
	method   string
	params   json.RawMessage
	// repeatable lets a failed attempt be sent again (see resilience.Call).
	repeatable bool
}

// Call sends r and returns the agent's response (a result or a JSON-RPC
// error). Errors are *pipeline.Refusal values safe for callers, except the
// caller's own cancellation.
func (p *Pool) Call(ctx context.Context, res upstream.Resolver, r request) (*a2awire.Response, error) {
	s, cn, err := p.acquire(res, r.upstream)
	if err != nil {
		return nil, err
	}
	defer cn.Release()
	resp, err := resilience.Do(ctx, cn.Guard, resilience.Call{Op: r.method, Timeout: s.Timeout, Repeatable: r.repeatable, MaxRetries: s.MaxRetries},
		classifier{}, func(ctx context.Context) (*a2awire.Response, error) {
			return cn.Session.Call(ctx, r.version, r.method, r.params)
		})
	if err != nil {
		return nil, upstream.Fail(ctx, p.logger, &s, r.method, "call", err, explain)
	}
	return resp, nil
}

// errRelayed marks a stream that failed after some of its events reached
// the caller: it is never sent again.
type errRelayed struct{ err error }

func (e *errRelayed) Error() string { return e.err.Error() }
func (e *errRelayed) Unwrap() error { return e.err }

// errStop ends a stream once its last event arrived.
var errStop = errors.New("the stream's last event arrived")

// Stream sends r and calls on with each event of the agent's stream, in
// order; on returning errStop ends it early without an error. The whole
// stream runs under the upstream's guard and timeout; it is sent again
// after a failure only when r is repeatable and no event has reached on.
func (p *Pool) Stream(ctx context.Context, res upstream.Resolver, r request, on func(*a2awire.Response) error) error {
	s, cn, err := p.acquire(res, r.upstream)
	if err != nil {
		return err
	}
	defer cn.Release()
	_, err = resilience.Do(ctx, cn.Guard, resilience.Call{Op: r.method, Timeout: s.Timeout, Repeatable: r.repeatable, MaxRetries: s.MaxRetries},
		classifier{}, func(ctx context.Context) (struct{}, error) {
			relayed := false
			err := cn.Session.Stream(ctx, r.version, r.method, r.params, func(resp *a2awire.Response) error {
				relayed = true
				err := on(resp)
				if err != nil && !errors.Is(err, errStop) {
					return &stopError{err}
				}
				return err
			})
			switch {
			case errors.Is(err, errStop):
				return struct{}{}, nil
			case err != nil && relayed:
				return struct{}{}, &errRelayed{err}
			}
			return struct{}{}, err
		})
	if err != nil {
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		return upstream.Fail(ctx, p.logger, &s, r.method, "stream", err, explain)
	}
	return nil
}

// stopError carries an error of the caller's own (on) out of Stream as is.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

// ListTools fetches the named agent's card from its card location (with
// its own credential, bounded by its timeout, outside its guard: a
// listing neither trips nor waits for the breaker) and returns it as the
// one definition of its upstream, for drift detection (drift.Lister).
func (p *Pool) ListTools(ctx context.Context, res upstream.Resolver, name string) ([]json.RawMessage, error) {
	s, cn, err := p.acquire(res, name)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	defer cn.Release()
	loc, err := a2awire.CardLocation(s.URL, s.Config.GetA2ACardPath())
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	card, err := cn.Session.Card(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: agent card: %w", name, err)
	}
	return []json.RawMessage{card}, nil
}

// acquire resolves upstream name and takes its connection.
func (p *Pool) acquire(res upstream.Resolver, name string) (upstream.Settings, *upstream.Conn[*a2aclient.Client], error) {
	s, err := p.conns.Resolve(res, name)
	if err != nil {
		p.logger.Warn("upstream not usable", slog.String("upstream", name), slog.Any("error", err))
		return s, nil, upstream.Refusal(name, err, explain)
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return s, nil, upstream.Refusal(name, err, explain)
	}
	return s, cn, nil
}

// Healthy reports whether calls to upstream may currently be sent.
func (p *Pool) Healthy(name string) (bool, string) { return p.conns.Healthy(name) }

// Prune closes the connections of upstreams r no longer has or whose
// settings changed.
func (p *Pool) Prune(r upstream.Resolver) { p.conns.Prune(r) }

// Close closes every connection and waits for calls in flight.
func (p *Pool) Close() error { return p.conns.Close() }
