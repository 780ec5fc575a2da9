// Package upstreamtest has fakes for tests of code that calls upstreams.
package upstreamtest

import (
	"sync"

	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"google.golang.org/protobuf/proto"
)

// Resolver is an in-memory upstream.Resolver that tests can change while
// calls run. It is safe for concurrent use. As upstream.Resolver asks of a
// Resolver whose answers change, every change makes new Upstream messages
// (copies), so settings cached from the old ones are resolved again.
type Resolver struct {
	mu        sync.RWMutex
	upstreams map[string]*configv1.Upstream
	secrets   map[string]secret
	egress    egress.Policy
}

type secret struct {
	value []byte
	hosts []string
}

var _ upstream.Resolver = (*Resolver)(nil)

// NewResolver returns an empty Resolver.
func NewResolver() *Resolver {
	return &Resolver{upstreams: map[string]*configv1.Upstream{}, secrets: map[string]secret{}}
}

// SetUpstream adds or replaces u under u.Meta.Name (a copy is stored).
func (r *Resolver) SetUpstream(u *configv1.Upstream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upstreams[u.GetMeta().GetName()] = proto.CloneOf(u)
}

// DeleteUpstream removes an upstream.
func (r *Resolver) DeleteUpstream(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.upstreams, name)
}

// SetSecret adds or replaces a secret bound to hosts (see package
// secretbind: a secret bound to no host is sent nowhere).
func (r *Resolver) SetSecret(name string, value []byte, hosts ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[name] = secret{value: append([]byte(nil), value...), hosts: append([]string(nil), hosts...)}
	r.renewLocked()
}

// renewLocked replaces every upstream with a copy: a secret or the egress
// policy changed. r.mu must be held.
func (r *Resolver) renewLocked() {
	for name, u := range r.upstreams {
		r.upstreams[name] = proto.CloneOf(u)
	}
}

// SetEgress replaces the egress policy (the default policy until then).
func (r *Resolver) SetEgress(p egress.Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.egress = p
	r.renewLocked()
}

// Egress implements upstream.Resolver.
func (r *Resolver) Egress() egress.Policy {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.egress
}

// Upstream implements upstream.Resolver.
func (r *Resolver) Upstream(name string) (*configv1.Upstream, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	u, ok := r.upstreams[name]
	return u, ok
}

// Secret implements upstream.Resolver.
func (r *Resolver) Secret(name string) ([]byte, []string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.secrets[name]
	return s.value, s.hosts, ok
}

// MCP returns an MCP upstream named name at url with a bearer credential
// from secret (none when secret is "").
func MCP(name, url, secret string) *configv1.Upstream {
	u := &configv1.Upstream{
		Meta:     &configv1.ResourceMeta{Name: name},
		Protocol: configv1.Protocol_PROTOCOL_MCP,
		Url:      url,
	}
	if secret != "" {
		u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{
			Bearer: &configv1.BearerCredential{Secret: secret},
		}}
	}
	return u
}
