// Package access gives the control plane the gateway's policy engine
// (internal/authz) over its own state, for the AccessService and any other
// caller that must decide as the data planes do (staged rollout, replay).
//
// [Engines] compiles the authorization snapshot of a state — the same
// configuration data planes compile, without secrets (see
// configsync.AuthorizationSnapshot) — and keeps the engine of the newest
// configuration version it compiled, so questions about an unchanged
// configuration do not compile it again.
package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Engines compiles and caches policy engines by configuration version. It
// is safe for concurrent use; one compilation runs at a time, so a burst of
// questions after a write compiles the new version once.
type Engines struct {
	mu     sync.Mutex
	latest *authz.Engine
	// compiles counts compilations (for tests).
	compiles int
}

// For returns the engine of st's configuration version, compiling it
// unless it is the version already held. An engine of an older version
// than the one held (a stale read) is compiled but not kept. The error is
// an *authz.Error when the configuration does not compile, which the
// control plane's own validation should make impossible.
func (e *Engines) For(st *state.State) (*authz.Engine, error) {
	version := st.ConfigVersion()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.latest != nil && e.latest.Version() == version {
		return e.latest, nil
	}
	eng, err := authz.Compile(configsync.AuthorizationSnapshot(st))
	if err != nil {
		return nil, fmt.Errorf("compile configuration version %d for authorization: %w", version, err)
	}
	e.compiles++
	if e.latest == nil || version > e.latest.Version() {
		e.latest = eng
	}
	return eng, nil
}

// Compiles reports how many engines e has compiled.
func (e *Engines) Compiles() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.compiles
}

// Candidate compiles st's authorization configuration with the policy set
// named set replaced by a candidate version (source, read from filename),
// or added when st has no enabled set of that name: what a data plane
// decides with once the candidate is active. Problems are an
// *authz.Error naming file, line and column.
func Candidate(st *state.State, set, source, filename string) (*authz.Engine, error) {
	snap := configsync.AuthorizationSnapshot(st)
	if filename == "" {
		filename = set + ".cedar"
	}
	candidate := &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: set}, Source: source, Filename: filename}
	replaced := false
	for i, ps := range snap.GetPolicySets() {
		if ps.GetMeta().GetName() == set {
			snap.PolicySets[i], replaced = candidate, true
		}
	}
	if !replaced {
		snap.PolicySets = append(snap.PolicySets, candidate)
	}
	return authz.Compile(snap, authz.WithDecisionCache(0))
}

// CaseResult is the outcome of one stored test case.
type CaseResult struct {
	// Name is the case's name, or "case N".
	Name   string
	Passed bool
	// Why says how a failed case failed.
	Why string
}

// RunCases decides every case with eng, as `gwctl policy test` does: a
// case passes when the decision is the expected one and, when it lists
// them, the determining policies are exactly those. A case naming an
// agent or a tool the configuration does not have fails with the reason.
// now is the time of cases that give none.
func RunCases(ctx context.Context, eng *authz.Engine, cases []*configv1.PolicyTestCase, now time.Time) []CaseResult {
	out := make([]CaseResult, 0, len(cases))
	for i, c := range cases {
		r := CaseResult{Name: c.GetName()}
		if r.Name == "" {
			r.Name = fmt.Sprintf("case %d", i+1)
		}
		req, err := caseRequest(c, now)
		var ex authz.Explanation
		if err == nil {
			ex, err = eng.Explain(ctx, req)
		}
		got := "deny"
		if ex.Decision.Allowed {
			got = "allow"
		}
		switch {
		case err != nil:
			r.Why = err.Error()
		case got != c.GetExpect():
			r.Why = fmt.Sprintf("expected %s, got %s", c.GetExpect(), got)
			if len(ex.Decision.Errors) > 0 {
				r.Why += " (" + strings.Join(ex.Decision.Errors, "; ") + ")"
			}
		case c.GetCheckPolicies() && !slices.Equal(sorted(c.GetPolicies()), ex.Decision.Policies):
			r.Why = fmt.Sprintf("expected policies %v, got %v", sorted(c.GetPolicies()), ex.Decision.Policies)
		default:
			r.Passed = true
		}
		out = append(out, r)
	}
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// caseRequest is the authorization request of a stored case.
func caseRequest(c *configv1.PolicyTestCase, now time.Time) (*authz.Request, error) {
	req := &authz.Request{
		Agent:     c.GetAgent(),
		Action:    c.GetTool(),
		Resource:  authz.ToolResource(c.GetTool()),
		Arguments: json.RawMessage(c.GetArgumentsJson()),
		Context:   authz.Context{Protocol: c.GetProtocol(), Degraded: c.GetDegraded(), Findings: c.GetFindings()},
	}
	if c.GetTime() != nil {
		req.Context.Time = c.GetTime().AsTime()
	}
	if ip := c.GetSourceIp(); ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("source ip: %w", err)
		}
		req.Context.SourceIP = addr
	}
	if u := c.GetUser(); u != "" {
		src, name, ok := strings.Cut(u, "/")
		if !ok {
			return nil, fmt.Errorf("user %q must be SOURCE/NAME", u)
		}
		req.User = &authz.User{Source: src, Name: name, Email: c.GetEmail(), Groups: c.GetGroups()}
	}
	req.Context = req.Context.WithDefaults(now)
	return req, nil
}
