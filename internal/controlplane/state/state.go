// Package state is the control plane's replicated state: an immutable value
// per applied log index, built on persistent radix trees so that taking a
// snapshot or handing a view to a reader costs nothing and never blocks the
// apply loop. Apply is a pure function from (state, index, command) to the
// next state and the command's result; the Raft state machine (and any
// future store) only sequences commands and swaps the pointer.
package state

import (
	"encoding/binary"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Retention of the admin log and of the deduplication table. Both live in
// the replicated state, so both are bounded.
const (
	MaxAdminEvents = 10000
	MaxDedup       = 50000
	// DedupWindowSeconds is how long a request id is remembered. Clients
	// retry within seconds; ten minutes covers any sane retry loop.
	DedupWindowSeconds = 600
)

// State is one immutable version of the replicated state. Never modify
// anything reachable from it; every reader may hold it for as long as it
// likes. Messages returned by its getters are shared: clone before changing.
type State struct {
	res    *iradix.Tree[*fsmv1.Resource]
	events *iradix.Tree[*configv1.AdminEvent]
	dedup  *iradix.Tree[*fsmv1.DedupEntry]
	// dedupAge orders dedup keys by the index they were applied at.
	dedupAge *iradix.Tree[string]
	// agentIDs indexes the agents by identifier (see agentindex.go);
	// derived from res, never in a snapshot.
	agentIDs *iradix.Tree[string]
	// parsed caches the parse of each policy set's and rollout
	// candidate's source (see parsedSet); derived, never in a snapshot.
	parsed *iradix.Tree[*cedarschema.ParsedSet]

	identity      *configv1.ClusterIdentity
	freeze        *fsmv1.SetFreeze
	configVersion uint64
	configTime    *timestamppb.Timestamp
	// epoch is the config version's epoch; 0 (a state from before epochs)
	// reads as 1.
	epoch uint64
	index uint64
	// derived is the audit record the command at index asked for (see
	// DerivedRecord); never in a snapshot.
	derived *auditv1.Record
}

// New returns the empty state of a cluster that is not bootstrapped yet.
func New() *State {
	return &State{
		res:      iradix.New[*fsmv1.Resource](),
		events:   iradix.New[*configv1.AdminEvent](),
		dedup:    iradix.New[*fsmv1.DedupEntry](),
		dedupAge: iradix.New[string](),
		agentIDs: iradix.New[string](),
		parsed:   iradix.New[*cedarschema.ParsedSet](),
	}
}

func resKey(k resource.Kind, name string) []byte {
	b := make([]byte, 0, len(k)+1+len(name))
	b = append(b, k...)
	b = append(b, 0)
	return append(b, name...)
}

func kindPrefix(k resource.Kind) []byte { return append([]byte(k), 0) }

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

func dedupKey(token, req string) string { return token + "\x00" + req }

// Index is the log index of the last command applied.
func (s *State) Index() uint64 { return s.index }

// ConfigVersion is the index of the last change data planes consume. It is
// the same on every node for the same state and never moves backwards.
func (s *State) ConfigVersion() uint64 { return s.configVersion }

// Epoch is the epoch of ConfigVersion: 1 for a cluster's first history,
// one more after each restore from backup (see WithNextEpoch). Data planes
// compare versions as (cluster id, epoch, config version), so a new epoch
// lets a restored state's versions start below the ones they saw.
func (s *State) Epoch() uint64 { return max(s.epoch, 1) }

// WithNextEpoch returns a copy of s whose epoch follows both its own and
// after's (the epoch of the state it replaces), so epochs never repeat or
// go back. A restore from backup, and a move of the state to another
// store, install the state it returns: every replica then reads the same
// epoch from the installed stream.
func (s *State) WithNextEpoch(after uint64) *State {
	next := *s
	next.epoch = max(s.Epoch(), after) + 1
	return &next
}

// WithIndex returns a copy of s whose applied index is index: a store that
// installs a whole state as one entry of its log (the etcd store's
// restore) gives it that entry's index, so indices keep growing.
func (s *State) WithIndex(index uint64) *State {
	next := *s
	next.index = index
	return &next
}

// ConfigTime is the proposal time of the write that set ConfigVersion.
func (s *State) ConfigTime() *timestamppb.Timestamp { return s.configTime }

// Freeze is the emergency brake's state (never nil).
func (s *State) Freeze() *fsmv1.SetFreeze {
	if s.freeze == nil {
		return &fsmv1.SetFreeze{}
	}
	return s.freeze
}

// Identity is the cluster identity, nil before bootstrap.
func (s *State) Identity() *configv1.ClusterIdentity { return s.identity }

// Get returns the resource of kind k named name.
func (s *State) Get(k resource.Kind, name string) (*fsmv1.Resource, bool) {
	return s.res.Get(resKey(k, name))
}

// Count returns the number of resources of kind k.
func (s *State) Count(k resource.Kind) int {
	n := 0
	s.Each(k, func(*fsmv1.Resource) bool { n++; return true })
	return n
}

// Each calls fn for every resource of kind k in name order until fn returns
// false.
func (s *State) Each(k resource.Kind, fn func(*fsmv1.Resource) bool) {
	it := s.res.Root().Iterator()
	it.SeekPrefix(kindPrefix(k))
	for _, v, ok := it.Next(); ok; _, v, ok = it.Next() {
		if !fn(v) {
			return
		}
	}
}

// List returns up to limit resources of kind k whose names sort after
// `after`, in name order, and the name to continue after ("" at the end).
func (s *State) List(k resource.Kind, after string, limit int) ([]*fsmv1.Resource, string) {
	if limit <= 0 {
		return nil, ""
	}
	it := s.res.Root().Iterator()
	prefix := kindPrefix(k)
	start := resKey(k, after)
	if after != "" {
		start = append(start, 0) // strictly after
	}
	it.SeekLowerBound(start)
	var out []*fsmv1.Resource
	for key, v, ok := it.Next(); ok; key, v, ok = it.Next() {
		if len(key) < len(prefix) || string(key[:len(prefix)]) != string(prefix) {
			break
		}
		if len(out) == limit {
			return out, resource.Name(out[len(out)-1])
		}
		out = append(out, v)
	}
	return out, ""
}

// AdminEvents returns up to limit admin events older than beforeIndex
// (0 = newest), newest first, and the index to continue before (0 at the
// end).
func (s *State) AdminEvents(beforeIndex uint64, limit int) ([]*configv1.AdminEvent, uint64) {
	if limit <= 0 {
		return nil, 0
	}
	it := s.events.Root().ReverseIterator()
	if beforeIndex > 0 {
		it.SeekReverseLowerBound(indexKey(beforeIndex - 1))
	}
	var out []*configv1.AdminEvent
	for _, v, ok := it.Previous(); ok; _, v, ok = it.Previous() {
		if len(out) == limit {
			return out, out[len(out)-1].GetIndex()
		}
		out = append(out, v)
	}
	return out, 0
}

// Voters lists the control-plane nodes the state records (a node record is
// written when a node bootstraps or joins and deleted when it is removed)
// with the highest cluster version each one's binary supports, in id
// order. These are the voters the version gates count: a node that has
// recorded no version counts as clusterversion.Baseline.
func (s *State) Voters() []clusterversion.Voter {
	var out []clusterversion.Voter
	s.Each(resource.Node, func(r *fsmv1.Resource) bool {
		out = append(out, clusterversion.Voter{ID: resource.Name(r), Version: clusterversion.Of(r.GetNode().GetMaxClusterVersion())})
		return true
	})
	return out
}

// Dedup returns the remembered result of (token, request id), if any.
func (s *State) Dedup(token, requestID string) (*fsmv1.DedupEntry, bool) {
	if requestID == "" {
		return nil, false
	}
	return s.dedup.Get([]byte(dedupKey(token, requestID)))
}
