// Package configsync serves data planes their configuration: it builds the
// data-plane snapshot from the replicated state (once per version, shared by
// every watcher), streams it, and keeps the status data planes report. The
// reports live in this node's memory only; they are never replicated.
package configsync

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"google.golang.org/protobuf/proto"
)

// Built is one serialized snapshot version.
type Built struct {
	Version uint64
	Epoch   uint64
	Bytes   []byte
	// Gzip is Bytes compressed once, for every watcher to share.
	Gzip []byte
}

// Builder turns states into serialized snapshots, remembering the last one
// so that every watcher of a version shares one serialization. It is safe
// for concurrent use.
type Builder struct {
	sealer *seal.Sealer
	egress *snapshotv1.EgressPolicy

	mu   sync.Mutex
	last *Built
}

// BuilderOption configures a Builder.
type BuilderOption func(*Builder)

// WithEgress puts p, the node's egress policy, into every snapshot, for
// data planes to dial under. Every node must be given the same policy (like
// the key-encryption key): nodes serve the same version with the same
// contents only then.
func WithEgress(p egress.Policy) BuilderOption {
	return func(b *Builder) { b.egress = p.Proto() }
}

// NewBuilder returns a builder that opens secrets with sealer. Without
// WithEgress its snapshots carry the default egress policy.
func NewBuilder(sealer *seal.Sealer, opts ...BuilderOption) *Builder {
	b := &Builder{sealer: sealer, egress: egress.Policy{}.Proto()}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Build returns the snapshot of st's config version.
func (b *Builder) Build(st *state.State) (*Built, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != nil && b.last.Version == st.ConfigVersion() && b.last.Epoch == st.Epoch() {
		return b.last, nil
	}
	snap, err := Snapshot(st, b.sealer)
	if err != nil {
		return nil, err
	}
	snap.Egress = b.egress
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("compress snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress snapshot: %w", err)
	}
	built := &Built{Version: st.ConfigVersion(), Epoch: st.Epoch(), Bytes: data, Gzip: z.Bytes()}
	if b.last == nil || built.Epoch > b.last.Epoch || built.Epoch == b.last.Epoch && built.Version > b.last.Version {
		b.last = built
	}
	return built, nil
}

// Snapshot builds the data-plane snapshot of st: everything a data plane
// needs (agents with key hashes, upstreams, pins, enabled policy sets, value
// lists, identity sources, the secrets upstreams reference, model prices,
// budgets, the brake, the cluster CA certificate, the cluster-wide
// settings, the key of A2A ids), nothing
// it does not (admin tokens, nodes, the admin log). Build adds the node's
// egress policy.
func Snapshot(st *state.State, sealer *seal.Sealer) (*snapshotv1.Snapshot, error) {
	snap := &snapshotv1.Snapshot{
		Version:     st.ConfigVersion(),
		Epoch:       st.Epoch(),
		ClusterId:   st.Identity().GetClusterId(),
		VersionTime: st.ConfigTime(),
		Freeze:      &snapshotv1.Freeze{Frozen: st.Freeze().GetFrozen(), Reason: st.Freeze().GetReason()},
		// The cluster CA's certificate (never its key): a trust anchor
		// for agents' client certificates.
		ClusterCaPem: st.Identity().GetCaCertPem(),
		// Every node derives the same key from the same KEK.
		TaskIdKey: TaskIDKey(sealer, st.Identity().GetClusterId()),
	}
	st.Each(resource.Agent, func(r *fsmv1.Resource) bool {
		snap.Agents = append(snap.Agents, r.GetAgent())
		return true
	})
	addPinsAndPolicies(st, snap)
	needed := map[string]bool{}
	st.Each(resource.Upstream, func(r *fsmv1.Resource) bool {
		snap.Upstreams = append(snap.Upstreams, r.GetUpstream())
		for _, s := range resource.SecretRefs(r.GetUpstream()) {
			needed[s] = true
		}
		return true
	})
	st.Each(resource.IdentitySource, func(r *fsmv1.Resource) bool {
		snap.IdentitySources = append(snap.IdentitySources, r.GetIdentitySource())
		return true
	})
	addPricesAndBudgets(st, snap)
	// Every stored setting (none is secret); an absent key has its
	// default on the data plane too.
	st.Each(resource.Setting, func(r *fsmv1.Resource) bool {
		snap.Settings = append(snap.Settings, r.GetSetting())
		return true
	})
	st.Each(resource.InspectionRule, func(r *fsmv1.Resource) bool {
		snap.InspectionRules = append(snap.InspectionRules, r.GetInspectionRule())
		return true
	})
	implicit := secretbind.ImplicitAll(func(yield func(*configv1.Upstream) bool) {
		for _, u := range snap.Upstreams {
			if !yield(u) {
				return
			}
		}
	})
	var openErr error
	st.Each(resource.Secret, func(r *fsmv1.Resource) bool {
		s := r.GetSecret()
		if !needed[s.GetMeta().GetName()] {
			return true
		}
		v, err := sealer.Open(s.GetCiphertext(), resource.SecretAAD(s.GetMeta().GetName()))
		if err != nil {
			openErr = fmt.Errorf("open secret %q: %w", s.GetMeta().GetName(), err)
			return false
		}
		// Where the value may go: its binding, or for a secret without
		// one, the hosts of the upstreams that use it (state.SecretHosts,
		// computed here for all secrets in one pass).
		hosts := s.GetHosts()
		if len(hosts) == 0 {
			hosts = implicit[s.GetMeta().GetName()]
		}
		snap.Secrets = append(snap.Secrets, &snapshotv1.SecretValue{Name: s.GetMeta().GetName(), Version: s.GetVersion(), Value: v, Hosts: hosts})
		return true
	})
	if openErr != nil {
		return nil, openErr
	}
	snap.Rollout = rolloutOf(st)
	return snap, nil
}

// addPricesAndBudgets adds every model price and every budget (neither
// is secret: the data plane prices and limits calls with them).
func addPricesAndBudgets(st *state.State, snap *snapshotv1.Snapshot) {
	st.Each(resource.ModelPrice, func(r *fsmv1.Resource) bool {
		snap.ModelPrices = append(snap.ModelPrices, r.GetModelPrice())
		return true
	})
	st.Each(resource.RateLimit, func(r *fsmv1.Resource) bool {
		snap.RateLimits = append(snap.RateLimits, r.GetRateLimit())
		return true
	})
	st.Each(resource.Budget, func(r *fsmv1.Resource) bool {
		snap.Budgets = append(snap.Budgets, r.GetBudget())
		return true
	})
}

// rolloutOf is the rollout data planes serve: the one in shadow or
// canary, with its candidate as the policy set it would make.
func rolloutOf(st *state.State) *snapshotv1.Rollout {
	ro, ok := st.ActiveRollout()
	if !ok {
		return nil
	}
	set, ok := st.Get(resource.PolicySet, ro.GetPolicySet())
	if !ok {
		return nil // refused at write time; never in a committed state
	}
	return &snapshotv1.Rollout{
		Id:                ro.GetMeta().GetName(),
		Candidate:         state.CandidateSet(set.GetPolicySet(), ro),
		Stage:             ro.GetStage(),
		CanaryBasisPoints: state.CanaryShare(ro),
	}
}

// taskIDKeyPurpose derives the key of gateway-issued A2A ids.
const taskIDKeyPurpose = "a2a-task-ids/v1/"

// TaskIDKey is the key data planes sign gateway-issued A2A task and
// context ids with (snapshot.v1.Snapshot.task_id_key): derived from the
// KEK for the cluster, so every node sends the same one and it survives
// restarts, restores and leader changes.
func TaskIDKey(sealer *seal.Sealer, clusterID string) []byte {
	return sealer.Derive(taskIDKeyPurpose+clusterID, 32)
}

// addPinsAndPolicies adds every tool pin, every enabled policy set, every
// value list and every learned list (lists are not secret; policies read
// them).
func addPinsAndPolicies(st *state.State, snap *snapshotv1.Snapshot) {
	st.Each(resource.ValueList, func(r *fsmv1.Resource) bool {
		snap.ValueLists = append(snap.ValueLists, r.GetValueList())
		return true
	})
	st.Each(resource.ListLearning, func(r *fsmv1.Resource) bool {
		snap.ListLearnings = append(snap.ListLearnings, r.GetListLearning())
		return true
	})
	st.Each(resource.ToolPin, func(r *fsmv1.Resource) bool {
		snap.ToolPins = append(snap.ToolPins, r.GetToolPin())
		return true
	})
	st.Each(resource.PolicySet, func(r *fsmv1.Resource) bool {
		if !r.GetPolicySet().GetDisabled() {
			snap.PolicySets = append(snap.PolicySets, r.GetPolicySet())
		}
		return true
	})
}

// AuthorizationSnapshot is the part of st's data-plane snapshot that
// authorization reads, with nothing secret in it: agents without API keys
// (their hashes), upstreams without credentials, the pins, the enabled
// policy sets and the value lists; no identity sources, secrets or CA. The brake is kept so
// that a caller can see it. The control plane's AccessService compiles it
// with the gateway's policy engine (internal/authz), and gwctl exports it
// to answer access questions offline with the same engine.
func AuthorizationSnapshot(st *state.State) *snapshotv1.Snapshot {
	snap := &snapshotv1.Snapshot{
		Version:     st.ConfigVersion(),
		Epoch:       st.Epoch(),
		ClusterId:   st.Identity().GetClusterId(),
		VersionTime: st.ConfigTime(),
		Freeze:      &snapshotv1.Freeze{Frozen: st.Freeze().GetFrozen(), Reason: st.Freeze().GetReason()},
	}
	st.Each(resource.Agent, func(r *fsmv1.Resource) bool {
		a := proto.CloneOf(r.GetAgent())
		a.ApiKeys = nil
		a.JwtSubjects = nil
		snap.Agents = append(snap.Agents, a)
		return true
	})
	st.Each(resource.Upstream, func(r *fsmv1.Resource) bool {
		u := proto.CloneOf(r.GetUpstream())
		u.Credential = nil
		snap.Upstreams = append(snap.Upstreams, u)
		return true
	})
	addPinsAndPolicies(st, snap)
	return snap
}
