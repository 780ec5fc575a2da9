package config

import (
	"crypto/x509"
	"slices"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/dataplane/identity"
	"github.com/portcullis-gw/portcullis/internal/dataplane/inspect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

// Compiled is a validated snapshot indexed for serving. It is immutable and
// safe for concurrent use. Messages it returns are shared: callers must not
// modify them.
type Compiled struct {
	snap        *snapshotv1.Snapshot
	versionTime time.Time

	upstreams map[string]*configv1.Upstream
	secrets   map[string]secret
	// egress is the control plane's egress policy.
	egress egress.Policy
	// keys indexes API keys by key id.
	keys map[string]apiKey
	// verifier checks JWTs against the snapshot's JWT issuers.
	verifier *identity.Verifier
	// jwtAgents indexes agents by JWT binding; nil marks an ambiguous one.
	jwtAgents map[jwtSubject]*configv1.Agent
	// certRoots are the trust anchors for client certificates (cluster
	// CA and mtls_authority sources); nil when there are none.
	certRoots *x509.CertPool
	// certAgents indexes agents by SPIFFE ID and certificate fingerprint;
	// nil marks an ambiguous one.
	certAgents map[string]*configv1.Agent

	// tools are the servable tools by action name; toolList them in
	// action-name order.
	tools    map[string]pipeline.Tool
	toolList []pipeline.Tool
	// pins are the pins of tools by action name, with every version in
	// use compiled (see pins.go).
	pins map[string]*servedPin
	// agents are the remote agents (A2A upstreams with an approved card)
	// by upstream name; agentList them in name order.
	agents    map[string]pipeline.Tool
	agentList []pipeline.Tool

	// engine decides, lists and explains with this version's policies
	// (see authz.go).
	engine *authz.Engine

	// models are the LLM upstreams' models by every name agents may call
	// them by; modelList each model once, by name.
	models    map[string]pipeline.Model
	modelList []pipeline.Model
	// versions are "<set>@<version>" of every policy set by name (see
	// setVersions), including the rollout's candidate in candidateVersions.
	versions map[string][]string
	// rollout is the policy rollout the version stages, nil for none
	// (see rollout.go).
	rollout *rollout

	// settings are the stored values of the settings this data plane
	// knows, by key (package setting).
	settings map[string][]string

	// inspection is this version's runtime inspection rules.
	inspection *inspect.Ruleset

	// elems indexes the snapshot's resource messages by encoding and
	// schemas the compiled input schemas by text, for the next version's
	// compile to reuse (see Reusing).
	elems   *elements
	schemas map[string]*jsonschema.Schema
}

// apiKey is one API key and the agent holding it.
type apiKey struct {
	key   *configv1.ApiKey
	agent *configv1.Agent
}

var _ pipeline.Config = (*Compiled)(nil)

// Snapshot returns the decoded snapshot (shared; do not modify). It holds
// plaintext secret values: never log it.
func (c *Compiled) Snapshot() *snapshotv1.Snapshot { return c.snap }

// Version is the snapshot version.
func (c *Compiled) Version() uint64 { return c.snap.GetVersion() }

// VersionTime is the time of the write that produced this version (the zero
// time when the snapshot does not say).
func (c *Compiled) VersionTime() time.Time { return c.versionTime }

// Upstream finds an upstream by name (shared; do not modify).
func (c *Compiled) Upstream(name string) (*configv1.Upstream, bool) {
	u, ok := c.upstreams[name]
	return u, ok
}

// Egress is the egress policy upstream, OAuth token endpoint and JWKS
// connections are dialed under: the control plane's, from the snapshot.
func (c *Compiled) Egress() egress.Policy { return c.egress }

// secret is a secret's value and the hosts it may be sent to.
type secret struct {
	value []byte
	hosts []string
}

// Secret returns a copy of the plaintext of the named secret and the hosts
// it may be sent to (see package secretbind).
func (c *Compiled) Secret(name string) (value []byte, hosts []string, ok bool) {
	s, ok := c.secrets[name]
	if !ok {
		return nil, nil, false
	}
	return slices.Clone(s.value), slices.Clone(s.hosts), true
}

// Tools lists every servable tool, its default version, in action-name
// order.
func (c *Compiled) Tools() []pipeline.Tool { return slices.Clone(c.toolList) }

// Setting returns the values in force of the cluster-wide setting name
// (package setting): the stored ones, else the default (nil for a key this
// data plane does not know). Shared: do not modify.
func (c *Compiled) Setting(name string) []string {
	if v, ok := c.settings[name]; ok {
		return v
	}
	if spec, ok := setting.Lookup(name); ok {
		return spec.Default
	}
	return nil
}

// Agent finds a remote agent by its upstream's name: its approved card.
func (c *Compiled) Agent(name string) (pipeline.Tool, bool) {
	a, ok := c.agents[name]
	return a, ok
}

// Pins lists every servable pin — the tools in action-name order, then
// the remote agents' cards in name order — for drift detection.
func (c *Compiled) Pins() []pipeline.Tool {
	return append(slices.Clone(c.toolList), c.agentList...)
}

// TaskIDKey is the key gateway-issued A2A ids are signed with (shared by
// the cluster's data planes); nil when the control plane sent none.
func (c *Compiled) TaskIDKey() []byte { return c.snap.GetTaskIdKey() }

// Inspection implements pipeline.Config.
func (c *Compiled) Inspection() *inspect.Ruleset { return c.inspection }

// Frozen reports the emergency brake and the operator's reason.
func (c *Compiled) Frozen() (bool, string) {
	f := c.snap.GetFreeze()
	return f.GetFrozen(), f.GetReason()
}
