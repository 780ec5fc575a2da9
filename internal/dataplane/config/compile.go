package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/credential"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Compile validates a serialized snapshot completely and returns the
// compiled configuration. On failure the error is an [*Error] naming
// everything wrong, bounded to a few KB so it can be sent back to the
// control plane as the nack reason.
func Compile(snapshot []byte, opts ...Option) (*Compiled, error) {
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
			secrets:   map[string]secret{},
			keys:      map[string]apiKey{},
			tools:     map[string]*tool{},
			jwtAgents: map[jwtSubject]*configv1.Agent{},
			lists:     map[string]*configv1.ValueList{},
		},
	}
	if t := snap.GetVersionTime(); t != nil {
		b.c.versionTime = t.AsTime()
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
	if len(b.problems) > 0 {
		return nil, &Error{Version: snap.GetVersion(), Problems: b.problems}
	}
	b.c.entities = b.entities()
	b.c.index = buildIndex(b.c.policies, b.c.schema.ActionEntities(), b.agentTeams())
	b.c.cache = newDecisionCache(o.cacheSize)
	return b.c, nil
}

// builder accumulates a Compiled and the problems found on the way. Each
// step checks what it can and records every problem, so one nack names
// everything wrong.
type builder struct {
	snap     *snapshotv1.Snapshot
	c        *Compiled
	problems problems
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
