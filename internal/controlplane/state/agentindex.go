package state

import (
	"encoding/binary"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// The agent identifier index maps each identifier a data plane looks a
// caller up by — API key id, SPIFFE id, certificate fingerprint — to the
// agents that carry it, so that a write checks uniqueness in O(log n)
// instead of scanning every agent (5–21 ms per write at 10,000 agents).
//
// It is derived from the agent resources and never written to a snapshot:
// every change of an agent goes through txn.insert or txn.remove, which
// keep it exact, and Read rebuilds it. Like the resource tree it is a
// persistent radix tree, so a write copies only the path to its keys and
// older states keep their own view.
//
// A key is the identifier's kind, its length (uvarint) and bytes, then the
// agent's name: an identifier maps to every agent that carries it, so the
// index stays exact even over a state that holds a duplicate (written
// before a uniqueness rule existed).
const (
	idAPIKey = 'k'
	idSPIFFE = 's'
	idCert   = 'c'
)

// idPrefix is the key prefix of every entry of identifier id of kind.
func idPrefix(kind byte, id string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(id))
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

// agentIdentifiers calls fn with each identifier of a, kind first.
func agentIdentifiers(a *configv1.Agent, fn func(kind byte, id string)) {
	for _, k := range a.GetApiKeys() {
		fn(idAPIKey, k.GetId())
	}
	for _, id := range a.GetSpiffeIds() {
		fn(idSPIFFE, id)
	}
	for _, fp := range a.GetCertFingerprints() {
		fn(idCert, fp)
	}
}

// indexAgent adds (add) or removes the entries of agent r to or from ids.
func indexAgent(ids *iradix.Txn[string], r *fsmv1.Resource, add bool) {
	name := resource.Name(r)
	agentIdentifiers(r.GetAgent(), func(kind byte, id string) {
		k := append(idPrefix(kind, id), name...)
		if add {
			ids.Insert(k, name)
		} else {
			ids.Delete(k)
		}
	})
}

// agentIDs is the transaction over the identifier index, started on first
// use so that writes of other kinds do not pay for it.
func (t *txn) agentIDs() *iradix.Txn[string] {
	if t.ids == nil {
		t.ids = t.base.agentIDs.Txn()
	}
	return t.ids
}

// agentsWith calls fn with the name of each agent other than self that
// carries identifier id of kind, in name order, until fn returns false.
func (t *txn) agentsWith(kind byte, id, self string, fn func(name string) bool) {
	var root *iradix.Node[string]
	if t.ids != nil {
		root = t.ids.Root()
	} else {
		root = t.base.agentIDs.Root()
	}
	it := root.Iterator()
	it.SeekPrefix(idPrefix(kind, id))
	for _, name, ok := it.Next(); ok; _, name, ok = it.Next() {
		if name != self && !fn(name) {
			return
		}
	}
}

// identifierConflict returns the error of the first agent other than a
// (in name order) that carries one of a's identifiers, or nil. It finds
// the candidates in the index and then reports the conflict exactly as a
// scan of every agent in name order did: the first such agent, and the
// first of its identifiers a carries (API key ids, then SPIFFE ids, then
// certificate fingerprints).
func (t *txn) identifierConflict(a *configv1.Agent) *fsmv1.Error {
	self := a.GetMeta().GetName()
	first := ""
	agentIdentifiers(a, func(kind byte, id string) {
		t.agentsWith(kind, id, self, func(name string) bool {
			if first == "" || name < first {
				first = name
			}
			return false // the rest sort after name
		})
	})
	if first == "" {
		return nil
	}
	if o, ok := t.get(resource.Agent, first); ok {
		if err := scanConflict(a, o.GetAgent()); err != nil {
			return err
		}
	}
	// The index names an agent that does not hold the identifier: a bug
	// in keeping the index (TestAgentIndexMatchesScan guards against
	// it). Decide as the scan of every agent does, never on the index.
	return t.scanAllConflicts(a)
}

// scanAllConflicts is identifierConflict by a scan of every agent, in name
// order.
func (t *txn) scanAllConflicts(a *configv1.Agent) *fsmv1.Error {
	var conflict *fsmv1.Error
	t.each(resource.Agent, func(o *fsmv1.Resource) bool {
		if resource.Name(o) != a.GetMeta().GetName() {
			conflict = scanConflict(a, o.GetAgent())
		}
		return conflict == nil
	})
	return conflict
}

// scanConflict reports the first identifier of other that a carries too,
// in other's order: API key ids, SPIFFE ids, certificate fingerprints.
func scanConflict(a, other *configv1.Agent) *fsmv1.Error {
	keyIDs, spiffe, certs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	agentIdentifiers(a, func(kind byte, id string) {
		switch kind {
		case idAPIKey:
			keyIDs[id] = true
		case idSPIFFE:
			spiffe[id] = true
		default:
			certs[id] = true
		}
	})
	for _, k := range other.GetApiKeys() {
		if keyIDs[k.GetId()] {
			return failed("API key id %q is already used by agent %q", k.GetId(), other.GetMeta().GetName())
		}
	}
	for _, id := range other.GetSpiffeIds() {
		if spiffe[id] {
			return failed("SPIFFE id %q already identifies agent %q", id, other.GetMeta().GetName())
		}
	}
	for _, fp := range other.GetCertFingerprints() {
		if certs[fp] {
			return failed("certificate %s already identifies agent %q", fp, other.GetMeta().GetName())
		}
	}
	return nil
}

// buildAgentIndex returns the identifier index of the agents in res.
func buildAgentIndex(res *iradix.Tree[*fsmv1.Resource]) *iradix.Tree[string] {
	ids := iradix.New[string]().Txn()
	it := res.Root().Iterator()
	it.SeekPrefix(kindPrefix(resource.Agent))
	for _, r, ok := it.Next(); ok; _, r, ok = it.Next() {
		indexAgent(ids, r, true)
	}
	return ids.CommitOnly()
}
