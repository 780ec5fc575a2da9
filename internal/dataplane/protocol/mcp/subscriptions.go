package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Resource subscriptions. Callers subscribe to namespaced resource URIs;
// the pool subscribes the upstream once per URI, whoever and however
// many follow it (one upstream session serves every caller), delivers the
// upstream's notifications/resources/updated to each subscriber under
// the name it subscribed by, and unsubscribes the upstream when the last
// subscriber leaves: by unsubscribing, or when its session ends or is
// found gone.

// Bounds on subscriptions.
const (
	// maxSubscriptionsPerSubscriber bounds the resources one caller
	// session (or one subscriptions/listen stream) follows.
	maxSubscriptionsPerSubscriber = 64
	// maxSubscriptionsPerAgent bounds them over all of one agent's.
	maxSubscriptionsPerAgent = 1024
	// maxSubscriptions bounds them over all callers of this data plane.
	maxSubscriptions = 100_000
	// maxHeldUpdates bounds the distinct URIs whose updates one pending
	// subscription holds; past it the subscribers are told of the
	// followed URI itself, which covers them all.
	maxHeldUpdates = 16
)

// Subscriber is one caller's end of resource subscriptions.
type Subscriber struct {
	// Key names the subscriber: a caller's session, or one of its
	// subscriptions/listen streams. A key follows a URI at most once.
	Key string
	// Agent is the agent the subscriber belongs to (bounds are per agent).
	Agent string
	// Name is the URI as the caller named it (namespaced); Prefix the
	// upstream's prefix, which names updates of sub-resources.
	Name, Prefix string
	// Notify sends the caller a notification. It must not block (it runs
	// on the upstream's stream), and returns ErrSubscriberGone when the
	// subscriber no longer exists: its subscriptions are then dropped.
	Notify func(msg []byte) error
}

// ErrSubscriberGone tells the pool that a Subscriber is gone for good.
var ErrSubscriberGone = errors.New("the subscriber is gone")

// subEntry is one upstream resource some callers follow.
type subEntry struct {
	subs map[string]*Subscriber // by key
	// ready is closed once the upstream has answered the subscription:
	// confirmed, or failed (failure or err set first, and the entry is
	// then no longer registered).
	ready     chan struct{}
	confirmed bool
	failure   *mcpwire.Message
	err       error
	// held are the URIs updated while the subscription was pending: a
	// legacy upstream sends an update on its standalone stream, which may
	// arrive before its answer to resources/subscribe on the request's
	// own. They reach the subscribers once the subscription is confirmed
	// (and are dropped with it when it fails).
	held []string
}

// hold keeps an update of uri (the followed URI or one of its
// sub-resources) for when e is confirmed.
func (e *subEntry) hold(followed, uri string) {
	switch {
	case slices.Contains(e.held, uri), len(e.held) == 1 && e.held[0] == followed:
	case len(e.held) >= maxHeldUpdates:
		e.held = append(e.held[:0], followed)
	default:
		e.held = append(e.held, uri)
	}
}

// deliveries appends the updates of uri (followed, or a sub-resource of
// it) for e's subscribers, each under its own name.
func (e *subEntry) deliveries(out []delivery, followed, uri string) []delivery {
	for _, sub := range e.subs {
		name := sub.Name
		if uri != followed {
			name = namespaced(sub.Prefix, uri)
		}
		out = append(out, delivery{sub, name})
	}
	return out
}

// subscriptions is the pool's registry. Safe for concurrent use.
type subscriptions struct {
	mu       sync.Mutex
	byUp     map[string]map[string]*subEntry // upstream → its own URI → entry
	perKey   map[string]int
	perAgent map[string]int
	total    int
	// changed is closed (and replaced) when an upstream's URIs change.
	changed map[string]chan struct{}
	// ops serializes an upstream's (legacy) subscribe and unsubscribe
	// requests, so that a late unsubscribe never undoes a new subscribe.
	ops map[string]*sync.Mutex
}

func newSubscriptions() *subscriptions {
	return &subscriptions{
		byUp: map[string]map[string]*subEntry{}, perKey: map[string]int{}, perAgent: map[string]int{},
		changed: map[string]chan struct{}{}, ops: map[string]*sync.Mutex{},
	}
}

// errTooManySubscriptions refuses a subscription over a bound.
type errTooManySubscriptions struct{ why string }

func (e *errTooManySubscriptions) Error() string { return e.why }

// add registers sub for the upstream's uri. first reports a new entry
// (the caller must subscribe the upstream and settle it); joined is false
// when sub.Key followed the URI already.
func (s *subscriptions) add(up, uri string, sub *Subscriber) (e *subEntry, first, joined bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uris := s.byUp[up]
	if e = uris[uri]; e != nil {
		if _, ok := e.subs[sub.Key]; ok {
			return e, false, false, nil
		}
	}
	switch {
	case s.perKey[sub.Key] >= maxSubscriptionsPerSubscriber:
		return nil, false, false, &errTooManySubscriptions{fmt.Sprintf("this session follows %d resources, the most it may; unsubscribe from some first", maxSubscriptionsPerSubscriber)}
	case s.perAgent[sub.Agent] >= maxSubscriptionsPerAgent:
		return nil, false, false, &errTooManySubscriptions{fmt.Sprintf("this agent's sessions follow %d resources, the most it may; unsubscribe from some first", maxSubscriptionsPerAgent)}
	case s.total >= maxSubscriptions:
		return nil, false, false, &errTooManySubscriptions{"the gateway follows as many resources as it may; retry later"}
	}
	if uris == nil {
		uris = map[string]*subEntry{}
		s.byUp[up] = uris
	}
	if e == nil {
		e = &subEntry{subs: map[string]*Subscriber{}, ready: make(chan struct{})}
		uris[uri] = e
		first = true
		s.changedLocked(up)
	}
	e.subs[sub.Key] = sub
	s.perKey[sub.Key]++
	s.perAgent[sub.Agent]++
	s.total++
	return e, first, true, nil
}

// removeLocked drops key's subscription to the upstream's uri and
// reports whether that left the URI without subscribers (its entry is
// then gone).
func (s *subscriptions) removeLocked(up, uri, key string) (last bool) {
	e := s.byUp[up][uri]
	if e == nil {
		return false
	}
	sub, ok := e.subs[key]
	if !ok {
		return false
	}
	delete(e.subs, key)
	s.countLocked(sub, -1)
	if len(e.subs) > 0 {
		return false
	}
	delete(s.byUp[up], uri)
	if len(s.byUp[up]) == 0 {
		delete(s.byUp, up)
	}
	s.changedLocked(up)
	return e.confirmed
}

func (s *subscriptions) countLocked(sub *Subscriber, d int) {
	s.total += d
	if s.perKey[sub.Key] += d; s.perKey[sub.Key] <= 0 {
		delete(s.perKey, sub.Key)
	}
	if s.perAgent[sub.Agent] += d; s.perAgent[sub.Agent] <= 0 {
		delete(s.perAgent, sub.Agent)
	}
}

func (s *subscriptions) remove(up, uri, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(up, uri, key)
}

// released is an upstream URI that lost its last subscriber.
type released struct{ upstream, uri string }

// dropKey removes every subscription of key and returns the URIs left
// without subscribers.
func (s *subscriptions) dropKey(key string) []released {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perKey[key] == 0 {
		return nil
	}
	var out []released
	for up, uris := range s.byUp {
		for uri, e := range uris {
			if _, ok := e.subs[key]; ok && s.removeLocked(up, uri, key) {
				out = append(out, released{up, uri})
			}
		}
	}
	return out
}

// settle records the upstream's answer to the subscription of e (a
// failure or err unregisters it, with every subscriber that joined) and
// wakes whoever waits. It reports whether e is still registered, and
// returns the updates held while it was pending, for the caller to
// deliver.
func (s *subscriptions) settle(up, uri string, e *subEntry, failure *mcpwire.Message, err error) (bool, []delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.settleLocked(up, uri, e, failure, err)
	return s.byUp[up][uri] == e, held
}

// settleLocked settles e as settle does and returns, when it confirms e
// and e is still registered, the updates held meanwhile.
func (s *subscriptions) settleLocked(up, uri string, e *subEntry, failure *mcpwire.Message, err error) []delivery {
	select {
	case <-e.ready:
		return nil // settled already
	default:
	}
	held := e.held
	e.held = nil
	if failure == nil && err == nil {
		e.confirmed = true
		close(e.ready)
		if s.byUp[up][uri] != e {
			return nil
		}
		var out []delivery
		for _, u := range held {
			out = e.deliveries(out, uri, u)
		}
		return out
	}
	e.failure, e.err = failure, err
	if s.byUp[up][uri] == e {
		for _, sub := range e.subs {
			s.countLocked(sub, -1)
		}
		delete(s.byUp[up], uri)
		if len(s.byUp[up]) == 0 {
			delete(s.byUp, up)
		}
		s.changedLocked(up)
	}
	close(e.ready)
	return nil
}

// acked settles a modern upstream's pending subscriptions from its
// acknowledgment: those it lists are confirmed, the others declined; err
// fails them all. It returns the updates held for those confirmed.
func (s *subscriptions) acked(up string, uris []string, err error) []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []delivery
	for uri, e := range s.byUp[up] {
		if e.confirmed {
			continue
		}
		switch {
		case err != nil:
			s.settleLocked(up, uri, e, nil, err)
		case slices.Contains(uris, uri):
			out = append(out, s.settleLocked(up, uri, e, nil, nil)...)
		default:
			s.settleLocked(up, uri, e, declined(), nil)
		}
	}
	return out
}

// declined is the error answer of a subscription a modern upstream did
// not acknowledge.
func declined() *mcpwire.Message {
	m, _ := mcpwire.Parse(mcpwire.NewError(json.RawMessage(`0`), &mcpwire.Error{Code: mcpwire.CodeInvalidParams,
		Message: "the upstream did not accept a subscription to this resource (it offers no subscriptions, or not to this one)"}))
	return m
}

func (s *subscriptions) changedLocked(up string) {
	if ch, ok := s.changed[up]; ok {
		close(ch)
		delete(s.changed, up)
	}
}

// has reports whether callers follow some resource of the upstream.
func (s *subscriptions) has(up string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byUp[up]) > 0
}

// confirmedURIs lists the upstream's followed URIs whose subscription it
// confirmed, sorted (a pending one is being subscribed by its own
// request).
func (s *subscriptions) confirmedURIs(up string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.byUp[up]))
	for uri, e := range s.byUp[up] {
		if e.confirmed {
			out = append(out, uri)
		}
	}
	slices.Sort(out)
	return out
}

// uris lists the upstream's followed URIs, sorted.
func (s *subscriptions) uris(up string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urisLocked(up)
}

func (s *subscriptions) urisLocked(up string) []string {
	out := make([]string, 0, len(s.byUp[up]))
	for uri := range s.byUp[up] {
		out = append(out, uri)
	}
	slices.Sort(out)
	return out
}

// watch lists the upstream's followed URIs and a channel closed when they
// change.
func (s *subscriptions) watch(up string) ([]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.changed[up]
	if !ok {
		ch = make(chan struct{})
		s.changed[up] = ch
	}
	return s.urisLocked(up), ch
}

// upstreamsWith lists the upstreams whose resources callers follow.
func (s *subscriptions) upstreamsWith() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.byUp))
	for up := range s.byUp {
		out = append(out, up)
	}
	return out
}

// delivery is one update for one subscriber.
type delivery struct {
	sub  *Subscriber
	name string
}

// targets are the subscribers an update of the upstream's uri reaches:
// those of the URI itself, under the name they subscribed by, and those
// of a URI it is a sub-resource of ("<uri>/…"), under its own namespaced
// name. A subscription still pending holds the update until the upstream
// confirms it.
func (s *subscriptions) targets(up, uri string) []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []delivery
	for followed, e := range s.byUp[up] {
		if followed != uri && !(strings.HasPrefix(uri, followed) && (strings.HasSuffix(followed, "/") || strings.HasPrefix(uri[len(followed):], "/"))) {
			continue
		}
		if !e.confirmed {
			e.hold(followed, uri)
			continue
		}
		out = e.deliveries(out, followed, uri)
	}
	return out
}

func (s *subscriptions) opLock(up string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.ops[up]
	if !ok {
		m = &sync.Mutex{}
		s.ops[up] = m
	}
	return m
}

// emptyResult is the answer to a subscription the gateway settles itself.
var emptyResult = &mcpwire.Message{Result: json.RawMessage(`{}`)}

// Subscribe makes sub follow the resource uri of the named upstream (its
// own URI). The first subscriber of a URI subscribes the upstream (legacy:
// resources/subscribe under the upstream's guard; modern: its
// subscriptions/listen stream is opened again with the URI and the
// subscription waits for the acknowledgment); later ones join it. The
// answer is the upstream's (its error included: then nobody follows the
// URI) or, for a subscriber that joined, an empty result. Errors are
// *pipeline.Refusal values safe for callers: limit_exceeded past a bound,
// upstream refusals as for Request.
func (p *Pool) Subscribe(ctx context.Context, r upstream.Resolver, name, uri string, sub Subscriber) (*mcpwire.Message, error) {
	p.remember(r)
	s, err := p.conns.Resolve(r, name)
	if err != nil {
		return nil, refusal(name, err)
	}
	e, first, joined, err := p.subs.add(name, uri, &sub)
	var tooMany *errTooManySubscriptions
	if errors.As(err, &tooMany) {
		return nil, pipeline.Refuse(pipeline.ReasonLimitExceeded, "%s", tooMany.why)
	}
	if !joined {
		return emptyResult, nil // following it already
	}
	if !first {
		return p.awaitSubscription(ctx, &s, name, uri, e, sub.Key)
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		p.subs.settle(name, uri, e, nil, err)
		return nil, refusal(name, err)
	}
	defer cn.Release()
	era, err := cn.Session.Era(ctx)
	if err != nil {
		p.subs.settle(name, uri, e, nil, err)
		return nil, p.fail(ctx, &s, "resources/subscribe", "connect", err)
	}
	if era == mcpclient.EraModern {
		cn.Session.subscriptionsChanged()
		return p.awaitSubscription(ctx, &s, name, uri, e, sub.Key)
	}
	params, err := json.Marshal(map[string]string{"uri": uri})
	if err != nil {
		p.subs.settle(name, uri, e, nil, err)
		return nil, err
	}
	// The updates come on the listener's standalone stream, and the
	// upstream sends one as soon as it holds the subscription: open the
	// stream first, or an update sent at once has nowhere to go (the
	// upstream drops it).
	cn.Session.subscriptionsChanged()
	cn.Session.awaitStream(ctx, s.Timeout)
	op := p.subs.opLock(name)
	op.Lock()
	m, err := p.requestOn(ctx, cn, &s, "resources/subscribe", params, nil)
	op.Unlock()
	switch {
	case err != nil:
		p.subs.settle(name, uri, e, nil, err)
		return nil, err
	case m.Kind() == mcpwire.KindError:
		p.subs.settle(name, uri, e, m, nil)
		return m, nil
	}
	registered, held := p.subs.settle(name, uri, e, nil, nil)
	if !registered {
		p.release([]released{{name, uri}}) // everybody left while it was pending
	}
	p.send(held)
	return m, nil
}

// awaitSubscription waits, within the upstream's timeout, until e is
// settled, and answers as it was; a subscriber that gives up waiting is
// dropped.
func (p *Pool) awaitSubscription(ctx context.Context, s *upstream.Settings, name, uri string, e *subEntry, key string) (*mcpwire.Message, error) {
	timer := time.NewTimer(s.Timeout)
	defer timer.Stop()
	select {
	case <-e.ready:
	case <-ctx.Done():
		p.unfollow(name, uri, key)
		return nil, p.fail(ctx, s, "resources/subscribe", "wait", ctx.Err())
	case <-timer.C:
		p.unfollow(name, uri, key)
		return nil, p.fail(ctx, s, "resources/subscribe", "wait", context.DeadlineExceeded)
	}
	switch {
	case e.err != nil:
		return nil, refusal(name, e.err)
	case e.failure != nil:
		return e.failure, nil
	}
	return emptyResult, nil
}

// Unsubscribe stops key following the named upstream's resource uri; the
// last subscriber to leave unsubscribes the upstream (in the background).
// It answers an empty result, also for a URI key did not follow.
func (p *Pool) Unsubscribe(_ context.Context, r upstream.Resolver, name, uri, key string) (*mcpwire.Message, error) {
	p.remember(r)
	p.unfollow(name, uri, key)
	return emptyResult, nil
}

func (p *Pool) unfollow(name, uri, key string) {
	if p.subs.remove(name, uri, key) {
		p.release([]released{{name, uri}})
	}
}

// DropSubscriber ends every subscription of key (a caller session that
// ended, a listen stream that closed).
func (p *Pool) DropSubscriber(key string) { p.release(p.subs.dropKey(key)) }

// release unsubscribes upstreams from URIs nobody follows any more, in
// the background: legacy upstreams with resources/unsubscribe, unless a
// new subscriber came meanwhile; a modern upstream's listener re-opens
// its stream without them by itself.
func (p *Pool) release(rs []released) {
	for _, rel := range rs {
		p.bgGo(func() {
			cn, ok := p.current(rel.upstream)
			if !ok {
				return
			}
			defer cn.Release()
			ctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
			defer cancel()
			if era, err := cn.Session.Era(ctx); err != nil || era != mcpclient.EraLegacy {
				return
			}
			op := p.subs.opLock(rel.upstream)
			op.Lock()
			defer op.Unlock()
			if slices.Contains(p.subs.uris(rel.upstream), rel.uri) {
				return // followed again meanwhile
			}
			if err := cn.Session.upstreamSubscription(ctx, "resources/unsubscribe", rel.uri); err != nil {
				p.logger.Debug("unsubscribing the upstream failed", slog.String("upstream", rel.upstream), slog.Any("error", err))
			}
		})
	}
}

// deliver passes an upstream's notifications/resources/updated for uri
// to its subscribers, each under its own name; a subscriber found gone is
// dropped.
func (p *Pool) deliver(up, uri string) { p.send(p.subs.targets(up, uri)) }

// send passes updates to their subscribers; a subscriber found gone is
// dropped.
func (p *Pool) send(ds []delivery) {
	for _, d := range ds {
		params, err := json.Marshal(map[string]string{"uri": d.name})
		if err != nil {
			continue
		}
		msg, err := mcpwire.NewNotification("notifications/resources/updated", params)
		if err != nil {
			continue
		}
		if err := d.sub.Notify(msg); errors.Is(err, ErrSubscriberGone) {
			p.DropSubscriber(d.sub.Key)
		}
	}
}
