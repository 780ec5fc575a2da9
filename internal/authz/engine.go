package authz

import (
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Engine is one configuration version compiled for authorization: the
// generated schema, every policy set combined, the entities, the policy
// index and the decision cache. It is immutable apart from the cache and
// safe for concurrent use.
type Engine struct {
	version uint64

	schema   *cedarschema.Schema
	policies *cedar.PolicySet
	// index buckets policies by the requests they can apply to.
	index *policyIndex
	// cache remembers decisions of this version; nil when turned off.
	cache *decisionCache
	// entities holds every enabled agent, team, upstream, tool, value list
	// and action.
	entities types.EntityMap

	// agents is every agent of the configuration by name, true when it is
	// enabled; enabled lists the enabled ones in name order.
	agents  map[string]bool
	enabled []string
	// tools are the tools by action name; toolList their action names in
	// order.
	tools    map[string]*tool
	toolList []string
	// learned is every enabled agent's context.learned; nil when no list
	// learns.
	learned *learnedSets
	// models are the LLM upstreams' models by name; modelList their
	// names in order.
	models    map[string]*model
	modelList []string
	// remoteAgents are the A2A upstreams with a pinned card, by upstream
	// name; agentList their names in order.
	remoteAgents map[string]*remoteAgent
	agentList    []string

	// src is what the engine was compiled from, for the next version's
	// compile to compare with (see WithPrevious).
	src *sources
}

// remoteAgent is an A2A upstream as policies see it: RemoteAgent in its
// Upstream, from its pinned agent card.
type remoteAgent struct {
	name     string
	readOnly bool
	version  int64
	skills   []string
}

// tool is a tool resource and what deciding a call of it needs.
type tool struct {
	action   string
	upstream string
	name     string
	readOnly bool
	version  int64
	// args types context.arguments for this tool's action.
	args resolved.RecordType
}

// Version is the configuration version compiled.
func (e *Engine) Version() uint64 { return e.version }

// Option changes how Compile builds an Engine.
type Option func(*options)

type options struct {
	// cacheSize bounds the decision cache; 0 turns it off.
	cacheSize int
	// checkTool, when set, vets each tool pin before it is served.
	checkTool ToolCheck
	// prev, when set, is the engine whose unchanged parts are reused.
	prev *Engine
}

// DefaultDecisionCacheSize is how many decisions an Engine remembers unless
// [WithDecisionCache] says otherwise.
const DefaultDecisionCacheSize = 10_000

// WithDecisionCache bounds the decision cache to size entries; 0 turns it
// off. The default is [DefaultDecisionCacheSize].
func WithDecisionCache(size int) Option {
	return func(o *options) { o.cacheSize = max(size, 0) }
}

// ToolCheck vets one version of a tool pin Compile is about to serve:
// action is the tool's action name and v one of the versions agents can
// be served (see toolversion.InUse), the default first. An error refuses
// the pin: Compile reports it as a problem ("tool pin <name>: version <n>:
// <error>") and declares the action without typed arguments, so policies
// that name it are still checked. Compile calls it from one goroutine, in
// the order of the snapshot's pins.
type ToolCheck func(action string, pin *configv1.ToolPin, v *configv1.ToolVersion) error

// WithToolCheck has Compile vet every tool pin with check, for a caller
// that holds more rules about pins than authorization does (the data plane
// compiles each input schema as JSON Schema).
func WithToolCheck(check ToolCheck) Option {
	return func(o *options) { o.checkTool = check }
}

// Error is a configuration that does not compile for authorization: every
// problem found, one per entry, in the order they were checked. Problems
// name resources and policy positions, never secrets.
type Error struct {
	// Version is the refused configuration's version.
	Version  uint64
	Problems []string
}

// Error renders the problems one per line.
func (e *Error) Error() string {
	return fmt.Sprintf("configuration version %d does not compile for authorization:\n- %s", e.Version, strings.Join(e.Problems, "\n- "))
}
