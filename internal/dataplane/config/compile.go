package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/credential"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
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
	o := options{cacheSize: DefaultDecisionCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	snap := &snapshotv1.Snapshot{}
	if err := proto.Unmarshal(snapshot, snap); err != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("the snapshot does not decode: %v", err)}}
	}
	b := &builder{
		snap: snap,
		c: &Compiled{
			snap:      snap,
			upstreams: map[string]*configv1.Upstream{},
			secrets:   map[string][]byte{},
			keys:      map[string]apiKey{},
			tools:     map[string]*tool{},
			jwtAgents: map[jwtSubject]*configv1.Agent{},
			lists:     map[string]*configv1.ValueList{},
		},
	}
	if t := snap.GetVersionTime(); t != nil {
		b.c.versionTime = t.AsTime()
	}
	if !b.checkLimits() {
		return nil, b.problems.err(snap.GetVersion())
	}
	b.indexSecrets()
	b.indexUpstreams()
	b.indexAgents()
	b.indexIdentity(o)
	b.indexCerts()
	b.indexLists()
	pins := b.compilePins()
	if b.buildSchema(pins) {
		b.compilePolicies()
	}
	if b.problems.any() {
		return nil, b.problems.err(snap.GetVersion())
	}
	b.c.entities = b.entities()
	b.c.index = buildIndex(b.c.policies, b.c.schema.ActionEntities(), b.agentTeams())
	b.c.cache = newDecisionCache(o.cacheSize)
	return b.c, nil
}

// panicProblem starts the problem Compile reports when compiling panicked.
const panicProblem = "compiling the snapshot failed unexpectedly"

// builder accumulates a Compiled and the problems found on the way. Each
// step checks what it can and records every problem, so one nack names
// everything wrong.
type builder struct {
	snap     *snapshotv1.Snapshot
	c        *Compiled
	problems problems
}

func (b *builder) indexSecrets() {
	for _, s := range b.snap.GetSecrets() {
		name := s.GetName()
		if _, dup := b.c.secrets[name]; dup {
			b.problems.add("secret %q appears twice", name)
			continue
		}
		b.c.secrets[name] = s.GetValue()
	}
}

func (b *builder) indexUpstreams() {
	for _, u := range b.snap.GetUpstreams() {
		name := u.GetMeta().GetName()
		if name == "" {
			b.problems.add("an upstream has no name")
			continue
		}
		if _, dup := b.c.upstreams[name]; dup {
			b.problems.add("upstream %q appears twice", name)
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

func (b *builder) indexAgents() {
	names := map[string]bool{}
	for _, a := range b.snap.GetAgents() {
		name := a.GetMeta().GetName()
		if name == "" {
			b.problems.add("an agent has no name")
			continue
		}
		if names[name] {
			b.problems.add("agent %q appears twice", name)
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
		b.problems.add("agent %q: API key id %q is not a valid key id", name, truncate(id, maxSegmentBytes))
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
