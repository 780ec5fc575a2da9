package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/portcullis-gw/portcullis/internal/argjson"
	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/credential"
	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

// Compile validates a serialized snapshot completely and returns the
// compiled configuration. On failure the error is an [*Error] naming
// everything wrong, bounded to a few KB so it can be sent back to the
// control plane as the nack reason.
//
// Every resource is first held to the limits table (package limits), and a
// snapshot over it is refused before any parser — Cedar, JSON Schema,
// JSON — runs; so compiling costs bounded memory and stack whatever the
// bytes. Compile never panics on any input (FuzzCompile); should a parser
// panic all the same, the snapshot is refused with that as its problem,
// and the data plane keeps serving the version it has. Unlike the control
// plane's state machine, a data plane replicates nothing, so refusing here
// cannot make replicas diverge.
func Compile(snapshot []byte, opts ...Option) (c *Compiled, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic's value may quote the snapshot, secrets included:
			// only its type goes into the nack.
			c, err = nil, &Error{Problems: []string{fmt.Sprintf("%s (%T); this is a bug in the data plane, please report it", panicProblem, r)}}
		}
	}()
	o := options{cacheSize: authz.DefaultDecisionCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	snap, elems, err := decode(snapshot, o.prev.elements())
	if err != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("the snapshot does not decode: %v", err)}}
	}
	b := &builder{
		snap: snap,
		prev: o.prev,
		c: &Compiled{
			snap:      snap,
			elems:     elems,
			schemas:   map[string]*jsonschema.Schema{},
			upstreams: map[string]*configv1.Upstream{},
			secrets:   map[string]secret{},
			keys:      map[string]apiKey{},
			tools:     map[string]pipeline.Tool{},
			pins:      map[string]*servedPin{},
			agents:    map[string]pipeline.Tool{},
			jwtAgents: map[jwtSubject]*configv1.Agent{},
		},
	}
	if t := snap.GetVersionTime(); t != nil {
		b.c.versionTime = t.AsTime()
	}
	if !b.checkLimits() {
		return nil, b.problems.err(snap.GetVersion())
	}
	b.indexEgress()
	b.indexSecrets()
	b.indexUpstreams()
	b.indexModels()
	b.checkBudgets()
	b.indexAgents()
	b.indexIdentity()
	b.indexCerts()
	b.indexSettings()
	b.compileAuthorization(o)
	b.compileInspection()
	if b.problems.any() {
		return nil, b.problems.err(snap.GetVersion())
	}
	return b.c, nil
}

// compileAuthorization compiles the policy engine of the snapshot (agents,
// upstreams, pins, value lists, policy sets: see package authz), vetting
// each pin it serves with checkTool, and lists the servable tools.
func (b *builder) compileAuthorization(o options) {
	e, err := authz.Compile(b.snap, authz.WithDecisionCache(o.cacheSize), authz.WithToolCheck(b.checkTool), authz.WithPrevious(b.prev.authzEngine()))
	if err != nil {
		var aerr *authz.Error
		if !errors.As(err, &aerr) {
			b.problems.add("%v", err)
			return
		}
		for _, p := range aerr.Problems {
			b.problems.add("%s", p)
		}
		return
	}
	b.c.engine = e
	b.c.versions = setVersions(b.snap.GetPolicySets())
	b.compileRollout(o)
	b.c.toolList = make([]pipeline.Tool, 0, len(b.c.tools))
	for _, t := range b.c.tools {
		b.c.toolList = append(b.c.toolList, t)
	}
	slices.SortFunc(b.c.toolList, func(x, y pipeline.Tool) int { return strings.Compare(x.Action, y.Action) })
	b.indexAgentCards()
}

// indexAgentCards records the approved cards of the remote agents the
// policy engine compiled (it checked each card pin).
func (b *builder) indexAgentCards() {
	for _, p := range b.snap.GetToolPins() {
		if p.GetKind() != configv1.PinKind_PIN_KIND_AGENT_CARD {
			continue
		}
		v, err := authz.ActiveVersion(p)
		if err != nil {
			continue // reported by package authz
		}
		b.c.agents[p.GetUpstream()] = pipeline.Tool{
			Kind:           pipeline.KindAgent,
			Upstream:       p.GetUpstream(),
			Name:           p.GetTool(),
			Class:          v.GetClass(),
			Version:        v.GetVersion(),
			Definition:     slices.Clone(v.GetDefinition()),
			DefinitionHash: v.GetDefinitionHash(),
		}
	}
	for _, a := range b.c.agents {
		b.c.agentList = append(b.c.agentList, a)
	}
	slices.SortFunc(b.c.agentList, func(x, y pipeline.Tool) int { return strings.Compare(x.Upstream, y.Upstream) })
}

// compileInspection compiles the runtime inspection rules, under the
// egress policy their classifiers are dialed with. A rule this data plane
// cannot run (an unknown detector, from a newer control plane) is a
// problem: serving without it would silently drop a protection.
func (b *builder) compileInspection() {
	rs, problems := inspect.Compile(b.snap.GetInspectionRules(), b.c.egress)
	for _, p := range problems {
		b.problems.add("%s", p)
	}
	b.c.inspection = rs
}

// panicProblem starts the problem Compile reports when compiling panicked.
const panicProblem = "compiling the snapshot failed unexpectedly"

// builder accumulates a Compiled and the problems found on the way. Each
// step checks what it can and records every problem, so one nack names
// everything wrong.
type builder struct {
	snap *snapshotv1.Snapshot
	// prev is the version whose unchanged parts are reused; nil for none.
	prev     *Compiled
	c        *Compiled
	problems problems
}

// indexEgress reads the control plane's egress policy, which upstream,
// OAuth token and JWKS connections are dialed under. A snapshot without one
// (from a control plane that sends none) gets the default policy.
func (b *builder) indexEgress() {
	p, err := egress.FromProto(b.snap.GetEgress())
	if err != nil {
		b.problems.add("%v", err)
		return
	}
	b.c.egress = p
}

func (b *builder) indexSecrets() {
	var implicit map[string][]string
	for _, s := range b.snap.GetSecrets() {
		name := s.GetName()
		if _, dup := b.c.secrets[name]; dup {
			b.problems.add("secret %q appears twice", name)
			continue
		}
		hosts := s.GetHosts()
		if len(hosts) == 0 {
			// A control plane that predates bindings sends none: the
			// secret then goes where the upstreams that use it are, as
			// that control plane computes it too (state.SecretHosts).
			if implicit == nil {
				implicit = secretbind.ImplicitAll(func(yield func(*configv1.Upstream) bool) {
					for _, u := range b.snap.GetUpstreams() {
						if !yield(u) {
							return
						}
					}
				})
			}
			hosts = implicit[name]
		}
		b.c.secrets[name] = secret{value: s.GetValue(), hosts: hosts}
	}
}

// indexUpstreams indexes the upstreams and checks their credentials. An
// upstream without a name or that appears twice is reported by
// package authz.
func (b *builder) indexUpstreams() {
	for _, u := range b.snap.GetUpstreams() {
		name := u.GetMeta().GetName()
		if _, dup := b.c.upstreams[name]; dup || name == "" {
			continue
		}
		b.c.upstreams[name] = u
		for _, ref := range secretRefs(u.GetCredential()) {
			if ref == "" {
				b.problems.add("upstream %q: its credential names no secret", name)
			} else if _, ok := b.c.secrets[ref]; !ok {
				b.problems.add("upstream %q: credential secret %q is missing from the snapshot", name, ref)
			}
		}
	}
}

// secretRefs lists the secrets a credential needs.
func secretRefs(c *configv1.UpstreamCredential) []string {
	switch k := c.GetKind().(type) {
	case *configv1.UpstreamCredential_Header:
		return []string{k.Header.GetSecret()}
	case *configv1.UpstreamCredential_Bearer:
		return []string{k.Bearer.GetSecret()}
	case *configv1.UpstreamCredential_OauthClientCredentials:
		return []string{k.OauthClientCredentials.GetClientSecret()}
	}
	return nil
}

// indexSettings keeps the values of the settings this data plane knows
// (package setting), held to the same canonical form the control plane
// stores; a key it does not know (a newer control plane's) is ignored.
func (b *builder) indexSettings() {
	b.c.settings = map[string][]string{}
	for _, s := range b.snap.GetSettings() {
		name := s.GetMeta().GetName()
		if _, known := setting.Lookup(name); !known {
			continue
		}
		if _, dup := b.c.settings[name]; dup {
			b.problems.add("setting %q appears twice", name)
			continue
		}
		if err := setting.Check(name, s.GetValues()); err != nil {
			b.problems.add("setting %q: %v", name, err)
			continue
		}
		b.c.settings[name] = s.GetValues()
	}
}

// indexAgents indexes the agents' API keys. An agent without a name or
// that appears twice is reported by package authz.
func (b *builder) indexAgents() {
	names := map[string]bool{}
	for _, a := range b.snap.GetAgents() {
		name := a.GetMeta().GetName()
		if name == "" || names[name] {
			continue
		}
		names[name] = true
		for _, k := range a.GetApiKeys() {
			b.indexKey(a, k)
		}
	}
}

func (b *builder) indexKey(a *configv1.Agent, k *configv1.ApiKey) {
	name, id := a.GetMeta().GetName(), k.GetId()
	if got, ok := credential.Parse(credential.APIKey, "pck_"+id+"_x"); !ok || got != id {
		b.problems.add("agent %q: API key id %q is not a valid key id", name, argjson.Truncate(id, argjson.MaxSegmentBytes))
		return
	}
	if len(k.GetSha256()) != 32 {
		b.problems.add("agent %q: API key %q: hash is %d bytes, want 32 (SHA-256)", name, id, len(k.GetSha256()))
		return
	}
	if prev, dup := b.c.keys[id]; dup {
		b.problems.add("agent %q: API key id %q is also used by agent %q", name, id, prev.agent.GetMeta().GetName())
		return
	}
	b.c.keys[id] = apiKey{key: k, agent: a}
}
