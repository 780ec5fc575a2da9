// Package drift detects "rug pulls": pinned tools whose upstream now lists
// a definition no version of the pin approved, or no longer lists them.
// Such a tool is quarantined: hidden from tool lists and refused by the
// pipeline's Gate stage (pipeline.ReasonQuarantined) until an operator
// approves the new definition as a version of the pin, so that the next
// comparison matches again.
//
// Agents may be served different versions of a pin (package
// toolversion). When the upstream serves an approved version other than
// the one a caller is served, the caller's version must be compatible
// with it (pipeline.Tool.Compatible, decided by package toolcompat when
// the configuration is compiled); if it is not, the caller is refused
// with pipeline.ReasonToolVersionIncompatible while callers of compatible
// versions are served.
//
// A Checker lists each upstream that has pinned tools (tools/list through
// the protocol's upstream pool, with the upstream's own credential),
// hashes every definition with toolpin.Hash (the control plane's function)
// and compares it with the approved versions' hashes. It checks
//
//   - when a tool list is asked for (Refresh), if the upstream's last check
//     is older than ListInterval (default 2s), waiting at most Wait;
//   - when a call finds the last check older than CallInterval (default
//     10s), in the background without delaying the call;
//   - every Background interval (default 30s), and when the configuration
//     changes (Reconcile).
//
// An upstream that cannot be reached is an availability problem, not
// drift: the failure is logged and the upstream keeps its last verdict
// (none before its first successful listing).
package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
)

// Lister lists an upstream's tools, each definition as the upstream sent
// it. The MCP protocol's pool (protocol/mcp.Pool) implements it. It must
// be safe for concurrent use.
type Lister interface {
	ListTools(ctx context.Context, r upstream.Resolver, name string) ([]json.RawMessage, error)
}

// Config is what a Checker reads of the serving configuration; the data
// plane's compiled snapshot implements it.
type Config interface {
	upstream.Resolver
	// Pins lists every servable pin: the tools, and the remote agents'
	// cards (Kind pipeline.KindAgent).
	Pins() []pipeline.Tool
}

// Defaults for Options.
const (
	DefaultListInterval = 2 * time.Second
	DefaultCallInterval = 10 * time.Second
	DefaultBackground   = 30 * time.Second
	DefaultWait         = 3 * time.Second
	DefaultCheckTimeout = 15 * time.Second
	// MaxReported bounds the quarantines Quarantines returns.
	MaxReported = 1000
)

// Options configure a Checker. Zero durations take the defaults.
type Options struct {
	// Lister fetches upstreams' tool lists (required).
	Lister Lister
	// Current returns the serving configuration, nil while there is none
	// (required). It must be cheap and safe for concurrent use.
	Current func() Config
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ListInterval: Refresh re-checks an upstream checked longer ago.
	ListInterval time.Duration
	// CallInterval: Quarantined starts a background check of an upstream
	// checked longer ago; also the least time between checks of an
	// upstream whose last check failed.
	CallInterval time.Duration
	// Background is the period of Run's checks of every upstream.
	Background time.Duration
	// Wait bounds how long Refresh waits for checks, so a slow upstream
	// delays a tool list by at most this much.
	Wait time.Duration
	// CheckTimeout bounds one check (the upstream pool's own timeout
	// applies too).
	CheckTimeout time.Duration
	// OnChange, if set, is called (without locks held) after the set of
	// quarantined tools changed. It must not block.
	OnChange func()
}

// Checker detects drift. Its methods are safe for concurrent use.
type Checker struct {
	o      Options
	log    *slog.Logger
	ctx    context.Context // ends with Stop; checks run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ups      map[string]*upstreamState
	reported map[string]*configsyncv1.QuarantinedTool // by key(); what Quarantines returns
	gen      uint64                                   // bumped when reported changes
	stopped  bool
}

// upstreamState is what the checker knows of one upstream (Checker.mu).
type upstreamState struct {
	// url is the URL the listing came from; a listing of another URL says
	// nothing about the upstream now configured.
	url string
	// live maps tool name → hash of the last successful listing; nil
	// before the first.
	live    map[string]string
	checked time.Time     // end of the last check, successful or not
	failed  bool          // the last check failed
	running chan struct{} // closed when the running check ends; nil when none
}

var _ pipeline.Quarantine = (*Checker)(nil)

// New returns a Checker; Run starts its background checks and Stop ends
// every check.
func New(o Options) *Checker {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ListInterval, DefaultListInterval)
	def(&o.CallInterval, DefaultCallInterval)
	def(&o.Background, DefaultBackground)
	def(&o.Wait, DefaultWait)
	def(&o.CheckTimeout, DefaultCheckTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	return &Checker{
		o: o, log: o.Logger.With("component", "drift"), ctx: ctx, cancel: cancel,
		ups: map[string]*upstreamState{}, reported: map[string]*configsyncv1.QuarantinedTool{},
	}
}

// Run checks every upstream with pinned tools each Background interval
// until ctx ends or Stop is called.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.o.Background)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.checkAll(c.o.ListInterval)
		}
	}
}

// Stop cancels running checks and waits for them; later checks are not
// started.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Reconcile re-evaluates quarantines against the current configuration
// (an approval changes a pin's hash) and checks upstreams never checked.
// The data plane calls it after it swaps in a new configuration.
func (c *Checker) Reconcile() {
	c.checkAll(-1)
	c.update()
}

// checkAll starts a check of every upstream with pinned tools whose last
// check is older than maxAge (never checked only, when negative).
func (c *Checker) checkAll(maxAge time.Duration) {
	cfg := c.o.Current()
	if cfg == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range pinnedUpstreams(cfg.Pins()) {
		st := c.state(name)
		if maxAge < 0 && !st.checked.IsZero() {
			continue
		}
		if c.due(st, max(maxAge, 0)) {
			c.startLocked(name, st)
		}
	}
}

// Check implements pipeline.Quarantine.
func (c *Checker) Check(_ context.Context, t pipeline.Tool) *pipeline.Refusal {
	cfg := c.o.Current()
	if cfg == nil {
		return nil
	}
	c.mu.Lock()
	st := c.state(t.Upstream)
	if c.due(st, c.o.CallInterval) {
		c.startLocked(t.Upstream, st)
	}
	live, v := c.verdictLocked(cfg, t)
	c.mu.Unlock()
	switch v {
	case drifted:
		return pipeline.Refuse(pipeline.ReasonQuarantined, "%s", message(t, live))
	case incompatible:
		return pipeline.Refuse(pipeline.ReasonToolVersionIncompatible,
			"version %d of tool %s, the one you are assigned, is not compatible with the definition its upstream serves now (%s); an operator must move you to a compatible version: gwctl tool diff --upstream %s --tool %s %d live, then gwctl tool assign",
			t.Version, t.Action, toolpin.Short(live), t.Upstream, t.Name, t.Version)
	}
	return nil
}

// Refresh implements pipeline.Quarantine.
func (c *Checker) Refresh(ctx context.Context, upstreams []string) {
	var waits []chan struct{}
	c.mu.Lock()
	for _, name := range upstreams {
		st := c.state(name)
		if c.due(st, c.o.ListInterval) {
			c.startLocked(name, st)
		}
		if st.running != nil && !slices.Contains(waits, st.running) {
			waits = append(waits, st.running)
		}
	}
	c.mu.Unlock()
	if len(waits) == 0 {
		return
	}
	timer := time.NewTimer(c.o.Wait)
	defer timer.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-timer.C:
			c.log.WarnContext(ctx, "an upstream's tool list took too long; listing tools with its previous drift verdict", "wait", c.o.Wait)
			return
		case <-ctx.Done():
			return
		}
	}
}

// Quarantines returns the tools quarantined now (at most MaxReported, in
// upstream/tool order) and a generation that changes whenever the list
// does, for status reports.
func (c *Checker) Quarantines() (uint64, []*configsyncv1.QuarantinedTool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.reported))
	for k := range c.reported {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*configsyncv1.QuarantinedTool, 0, min(len(keys), MaxReported))
	for _, k := range keys[:min(len(keys), MaxReported)] {
		q := c.reported[k]
		out = append(out, &configsyncv1.QuarantinedTool{
			Upstream: q.GetUpstream(), Tool: q.GetTool(), Action: q.GetAction(), PinnedVersion: q.GetPinnedVersion(),
			PinnedHash: q.GetPinnedHash(), LiveHash: q.GetLiveHash(), Since: q.GetSince(),
		})
	}
	return c.gen, out
}

// state returns name's state, creating it (c.mu held).
func (c *Checker) state(name string) *upstreamState {
	st := c.ups[name]
	if st == nil {
		st = &upstreamState{}
		c.ups[name] = st
	}
	return st
}

// due reports whether st should be checked again: not running, and its
// last check older than maxAge (CallInterval at least after a failure).
func (c *Checker) due(st *upstreamState, maxAge time.Duration) bool {
	if st.running != nil || c.stopped {
		return false
	}
	if st.failed {
		maxAge = max(maxAge, c.o.CallInterval)
	}
	return st.checked.IsZero() || c.o.Now().Sub(st.checked) >= maxAge
}

// startLocked starts a check of name (c.mu held).
func (c *Checker) startLocked(name string, st *upstreamState) {
	done := make(chan struct{})
	st.running = done
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.check(name, done)
	}()
}

// check lists name's tools, records the result and re-evaluates the
// quarantines.
func (c *Checker) check(name string, done chan struct{}) {
	var live map[string]string
	var url string
	var err error
	if cfg := c.o.Current(); cfg != nil {
		if u, ok := cfg.Upstream(name); ok {
			url = u.GetUrl()
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.o.CheckTimeout)
		live, err = c.list(ctx, cfg, name)
		cancel()
	} else {
		err = fmt.Errorf("no configuration")
	}
	c.mu.Lock()
	st := c.state(name)
	wasFailed := st.failed
	st.checked, st.failed, st.running = c.o.Now(), err != nil, nil
	if err == nil {
		st.url, st.live = url, live
	}
	c.mu.Unlock()
	if err == nil {
		// Before done closes: a Refresh that waited for this check must
		// find the reported quarantines up to date too.
		c.update()
	}
	close(done)
	switch {
	case err != nil && c.ctx.Err() != nil:
	case err != nil && !wasFailed:
		c.log.Warn("cannot list an upstream's tools to detect drift; its tools are not quarantined for that (this is availability, not drift)",
			"upstream", name, "err", err)
	case err != nil:
		c.log.Debug("cannot list an upstream's tools again", "upstream", name, "err", err)
	case wasFailed:
		c.log.Info("listing an upstream's tools works again", "upstream", name)
	}
}

// list fetches and hashes name's tools: tool name → hash. A definition
// that is not an object with a name cannot be matched to a pin and is
// skipped. An A2A upstream's lister returns its card, whose pin is named
// toolpin.AgentCardTool and hashed whole.
func (c *Checker) list(ctx context.Context, cfg Config, name string) (map[string]string, error) {
	defs, err := c.o.Lister.ListTools(ctx, cfg, name)
	if err != nil {
		return nil, err
	}
	card := slices.ContainsFunc(cfg.Pins(), func(t pipeline.Tool) bool { return t.Upstream == name && t.Kind == pipeline.KindAgent })
	live := make(map[string]string, len(defs))
	for _, d := range defs {
		tool := toolpin.Name(d)
		hash, _, err := toolpin.Hash(d)
		if card {
			tool = toolpin.AgentCardTool
			hash, err = toolpin.HashCard(d)
		}
		if tool == "" || err != nil {
			continue
		}
		if _, dup := live[tool]; dup {
			// Which of two definitions would a call reach? Match neither.
			live[tool] = "duplicate"
			continue
		}
		live[tool] = hash
	}
	return live, nil
}

// verdict is how a version of a tool stands against what its upstream
// serves.
type verdict int

const (
	// unknown: no listing of the upstream yet, or of another server.
	unknown verdict = iota
	// served: the upstream serves the version, or an approved version
	// the version's callers can be served by.
	served
	// incompatible: the upstream serves an approved version the
	// version's callers cannot be served by.
	incompatible
	// drifted: the upstream serves a definition no version approved, or
	// no longer lists the tool.
	drifted
)

// verdictLocked compares t with its upstream's last listing: the live hash
// ("" when not listed) and the verdict (c.mu held).
func (c *Checker) verdictLocked(cfg Config, t pipeline.Tool) (string, verdict) {
	st := c.ups[t.Upstream]
	if st == nil || st.live == nil || t.DefinitionHash == "" {
		return "", unknown
	}
	if u, ok := cfg.Upstream(t.Upstream); !ok || u.GetUrl() != st.url {
		return "", unknown // the listing was of another server
	}
	live, listed := st.live[t.Name]
	switch {
	case !listed:
		return "", drifted
	case live == t.DefinitionHash:
		return live, served
	case !slices.Contains(t.Approved, live):
		return live, drifted
	case !slices.Contains(t.Compatible, live):
		return live, incompatible
	}
	return live, served
}

// update recomputes the quarantined set against the current configuration
// and, when it changed, logs the difference and calls OnChange.
func (c *Checker) update() {
	cfg := c.o.Current()
	if cfg == nil {
		return
	}
	now := c.o.Now()
	c.mu.Lock()
	next := map[string]*configsyncv1.QuarantinedTool{}
	var added []*configsyncv1.QuarantinedTool
	for _, t := range cfg.Pins() {
		live, v := c.verdictLocked(cfg, t)
		if v != drifted {
			continue
		}
		q := &configsyncv1.QuarantinedTool{
			Upstream: t.Upstream, Tool: t.Name, Action: t.Action, PinnedVersion: t.Version,
			PinnedHash: t.DefinitionHash, LiveHash: live, Since: timestamppb.New(now),
		}
		k := key(q)
		if old, ok := c.reported[k]; ok {
			q.Since = old.GetSince()
		} else {
			added = append(added, q)
		}
		next[k] = q
	}
	var lifted []*configsyncv1.QuarantinedTool
	for k, q := range c.reported {
		if _, ok := next[k]; !ok {
			lifted = append(lifted, q)
		}
	}
	changed := len(added) > 0 || len(lifted) > 0
	if changed {
		c.reported = next
		c.gen++
	}
	c.mu.Unlock()
	for _, q := range added {
		c.log.Warn("tool quarantined: its upstream definition differs from the approved pin",
			"action", q.GetAction(), "upstream", q.GetUpstream(), "tool", q.GetTool(),
			"live_hash", q.GetLiveHash(), "pinned_hash", q.GetPinnedHash(), "pinned_version", q.GetPinnedVersion())
	}
	for _, q := range lifted {
		c.log.Info("tool quarantine lifted", "action", q.GetAction(), "upstream", q.GetUpstream(), "tool", q.GetTool())
	}
	if changed && c.o.OnChange != nil {
		c.o.OnChange()
	}
}

// key identifies one drift: the same tool drifting to another definition,
// or against another pin, is a new one.
func key(q *configsyncv1.QuarantinedTool) string {
	return strings.Join([]string{q.GetUpstream(), q.GetTool(), q.GetPinnedHash(), q.GetLiveHash()}, "\x00")
}

// pinnedUpstreams lists the upstreams of tools, once each, sorted.
func pinnedUpstreams(tools []pipeline.Tool) []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Upstream)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// message tells the caller why t is refused and what an operator must do.
func message(t pipeline.Tool, live string) string {
	if t.Kind == pipeline.KindAgent {
		if live == "" {
			return fmt.Sprintf("remote agent %s no longer publishes the agent card an operator approved (pinned %s); an operator must review it: gwctl upstream discover %s",
				t.Upstream, toolpin.Short(t.DefinitionHash), t.Upstream)
		}
		return fmt.Sprintf("remote agent %s changed its agent card after approval (live %s ≠ pinned %s); an operator must review and approve it: gwctl upstream approve-card %s",
			t.Upstream, toolpin.Short(live), toolpin.Short(t.DefinitionHash), t.Upstream)
	}
	if live == "" {
		return fmt.Sprintf("tool %s is no longer listed by its upstream after approval (pinned %s); an operator must review it: gwctl upstream discover %s",
			t.Action, toolpin.Short(t.DefinitionHash), t.Upstream)
	}
	return fmt.Sprintf("tool %s changed upstream after approval (live %s ≠ pinned %s); an operator must review and approve it: gwctl upstream discover %s",
		t.Action, toolpin.Short(live), toolpin.Short(t.DefinitionHash), t.Upstream)
}
