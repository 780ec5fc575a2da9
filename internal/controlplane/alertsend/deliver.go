// Package alertsend delivers the alerts of the replicated outbox, on the
// leader: each to its rule's webhook, as a JSON body in the rule's format
// (generic, or a PagerDuty Events API v2 trigger), signed with
// HMAC-SHA256 under the rule's signing secret (Sign). A failed attempt is
// tried again with exponential backoff (1s, 2s, 4s, … at most 10 minutes
// apart) for 24 hours after the alert was queued; then it is given up.
// Every attempt is recorded in the replicated state (SettleAlert), so a
// new leader goes on with the same attempt count and backoff; an alert
// sent or given up leaves the outbox and is audited in the control plane's
// chain.
//
// Delivery is at least once: a leader that dies after the receiver
// accepted an alert but before the attempt was committed leaves it in the
// outbox, and the next leader sends it again with the same id
// (Portcullis-Alert-Id, PagerDuty's dedup_key) and the same body, which is
// how a receiver (and PagerDuty) tells it is the same alert.
package alertsend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults of Config.
const (
	DefaultMaxAge      = 24 * time.Hour
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 10 * time.Minute
	DefaultConcurrency = 4
)

// Store is what delivery needs of the store. Implementations must be safe
// for concurrent use.
type Store interface {
	Apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error)
	State(ctx context.Context, linearizable bool) (*state.State, error)
	Changed() <-chan struct{}
}

// Config configures a Deliverer.
type Config struct {
	Store  Store
	Sealer *seal.Sealer
	Sender *Sender
	// NodeID names the node in the commands' actor.
	NodeID string
	// MaxAge is how long after it was queued an alert is given up
	// (default 24h).
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 1s and 10m).
	MinBackoff, MaxBackoff time.Duration
	// Concurrency bounds the attempts under way (default 4).
	Concurrency int
	Logger      *slog.Logger
	Now         func() time.Time
}

// Deliverer delivers the outbox on the leader.
type Deliverer struct {
	cfg Config
	log *slog.Logger
}

// New returns a Deliverer.
func New(cfg Config) *Deliverer {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Deliverer{cfg: cfg, log: cfg.Logger.With("component", "alertsend")}
}

// Run delivers until ctx ends: a leadership term.
func (d *Deliverer) Run(ctx context.Context) {
	inflight := map[string]bool{}
	done := make(chan string, d.cfg.Concurrency)
	defer func() {
		for range inflight {
			<-done
		}
	}()
	for ctx.Err() == nil {
		changed := d.cfg.Store.Changed()
		st, err := d.cfg.Store.State(ctx, false)
		if err != nil {
			return
		}
		var wake <-chan time.Time
		if clusterversion.Supports(st.Voters(), clusterversion.AuditConsumers) {
			due, next := d.due(st, inflight)
			for _, a := range due {
				inflight[a.GetMeta().GetName()] = true
				go func() {
					d.attempt(ctx, st, a)
					done <- a.GetMeta().GetName()
				}()
			}
			if !next.IsZero() {
				wake = time.After(max(next.Sub(d.cfg.Now()), 10*time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-wake:
		case name := <-done:
			delete(inflight, name)
		}
	}
}

// due returns the alerts to attempt now (as many as free slots allow, the
// longest waiting first) and when the next one falls due (zero: none).
func (d *Deliverer) due(st *state.State, inflight map[string]bool) ([]*configv1.Alert, time.Time) {
	now := d.cfg.Now()
	var ready []*configv1.Alert
	var next time.Time
	st.Each(resource.Alert, func(r *fsmv1.Resource) bool {
		a := r.GetAlert()
		if inflight[a.GetMeta().GetName()] {
			return true
		}
		at := a.GetNextAttemptTime().AsTime()
		if !at.After(now) {
			ready = append(ready, a)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
		return true
	})
	slices.SortFunc(ready, func(x, y *configv1.Alert) int {
		return x.GetNextAttemptTime().AsTime().Compare(y.GetNextAttemptTime().AsTime())
	})
	free := d.cfg.Concurrency - len(inflight)
	if len(ready) > free {
		// The rest are due already: look again as soon as a slot frees.
		ready = ready[:max(free, 0)]
	}
	return ready, next
}

// attempt makes one delivery attempt of a and records it.
func (d *Deliverer) attempt(ctx context.Context, st *state.State, a *configv1.Alert) {
	name := a.GetMeta().GetName()
	log := d.log.With("alert", name, "rule", a.GetRule(), "record", a.GetRecordId())
	settle := &fsmv1.SettleAlert{Name: name, Attempt: a.GetAttempts() + 1}
	rr, ok := st.Get(resource.AlertRule, a.GetRule())
	var res Attempt
	if !ok {
		settle.Outcome = fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP
		settle.Error = fmt.Sprintf("alert rule %q was deleted", a.GetRule())
	} else {
		res = d.send(ctx, st, rr.GetAlertRule(), a)
		now := d.cfg.Now()
		deadline := a.GetMeta().GetCreateTime().AsTime().Add(d.cfg.MaxAge)
		switch {
		case res.Err == nil:
			settle.Outcome = fsmv1.AlertOutcome_ALERT_OUTCOME_SENT
		case !now.Before(deadline):
			settle.Outcome = fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP
		default:
			settle.Outcome = fsmv1.AlertOutcome_ALERT_OUTCOME_RETRY
			at := now.Add(d.backoff(settle.Attempt))
			if at.After(deadline) {
				at = deadline
			}
			settle.NextAttemptTime = timestamppb.New(at)
		}
		settle.StatusCode = int32(res.Status)
		if res.Err != nil {
			settle.Error = cut(res.Err.Error(), 1024)
		}
	}
	switch settle.Outcome {
	case fsmv1.AlertOutcome_ALERT_OUTCOME_SENT:
		log.InfoContext(ctx, "alert sent", "attempt", settle.Attempt, "status", res.Status)
	case fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP:
		log.WarnContext(ctx, "alert given up", "attempt", settle.Attempt, "err", settle.Error)
	default:
		log.WarnContext(ctx, "alert delivery failed; will retry", "attempt", settle.Attempt, "err", settle.Error, "next", settle.GetNextAttemptTime().AsTime())
	}
	cmd := &fsmv1.Command{
		Actor:  &configv1.Actor{TokenId: "node:" + d.cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:   timestamppb.New(d.cfg.Now()),
		Method: "alert delivery",
		Op:     &fsmv1.Command_SettleAlert{SettleAlert: settle},
	}
	r, err := d.cfg.Store.Apply(ctx, cmd)
	switch {
	case err != nil:
		log.WarnContext(ctx, "could not record the alert's attempt (the next leader attempts it again)", "err", err)
	case r.GetError() != nil:
		// Another leader recorded this attempt, or the alert was dropped.
		log.InfoContext(ctx, "alert's attempt not recorded", "err", r.GetError().GetMessage())
	}
}

// send renders, signs and sends a under rule.
func (d *Deliverer) send(ctx context.Context, st *state.State, rule *configv1.AlertRule, a *configv1.Alert) Attempt {
	w := rule.GetWebhook()
	key, err := d.secret(st, w.GetSigningSecret(), w.GetUrl())
	if err != nil {
		return Attempt{Err: err}
	}
	var routing []byte
	if w.GetFormat() == configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY {
		if routing, err = d.secret(st, w.GetRoutingKeySecret(), w.GetUrl()); err != nil {
			return Attempt{Err: err}
		}
	}
	body, err := Body(a, w.GetFormat(), w.GetSeverity(), st.Identity().GetClusterId(), routing)
	if err != nil {
		return Attempt{Err: fmt.Errorf("render the alert: %w", err)}
	}
	h := http.Header{}
	h.Set(HeaderSignature, Sign(key, d.cfg.Now(), body))
	h.Set(HeaderAlertID, a.GetMeta().GetName())
	return d.cfg.Sender.Send(ctx, w.GetUrl(), body, h)
}

// secret opens the named secret for use with url, which its binding must
// allow.
func (d *Deliverer) secret(st *state.State, name, url string) ([]byte, error) {
	r, ok := st.Get(resource.Secret, name)
	if !ok {
		return nil, fmt.Errorf("secret %q does not exist", name)
	}
	s := r.GetSecret()
	if len(s.GetHosts()) == 0 || !secretbind.AllowsURL(s.GetHosts(), url) {
		return nil, fmt.Errorf("secret %q is not bound to the webhook's host", name)
	}
	v, err := d.cfg.Sealer.Open(s.GetCiphertext(), resource.SecretAAD(name))
	if err != nil {
		return nil, errors.New("secret " + fmt.Sprintf("%q", name) + " cannot be opened with this node's key-encryption key")
	}
	return v, nil
}

// backoff is the wait after the given failed attempt: MinBackoff doubling
// per attempt, at most MaxBackoff, with ±20% jitter.
func (d *Deliverer) backoff(attempt int32) time.Duration {
	b := d.cfg.MinBackoff
	for i := int32(1); i < attempt && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	jitter := time.Duration(rand.Int64N(int64(b)/5+1)) - b/10 //nolint:gosec // retry jitter, not a secret
	return b + jitter
}

// cut returns s cut to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
