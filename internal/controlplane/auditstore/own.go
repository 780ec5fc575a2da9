package auditstore

import (
	"errors"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// ControlPlane names the control plane's own chain: the audit records of
// admin writes, which every node's state machine appends with AppendNext.
// No data plane may upload under this name.
const ControlPlane = "control-plane"

// AppendNext appends r as the next record of chain, written at Raft index
// version: it sets r's dataplane, snapshot_version (version), sequence,
// prev_hash and hash from where the chain stands. It is how a state
// machine writes a chain of its own rather than storing one a data plane
// computed, and it is deterministic: every node that applies the same
// commands from the same store holds the same records. A Raft entry
// applied again (a node replaying its log after a restart, over records
// its store already holds) is recognized by its index and appends
// nothing; AppendNext then reports false.
func (s *Store) AppendNext(chain string, version uint64, r *auditv1.Record) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errors.New("audit store closed")
	}
	m := s.marks[chain]
	if m == nil {
		m = &mark{Next: 1, Head: auditchain.Zero}
	}
	if m.Next > 1 && m.Version >= version {
		return false, nil
	}
	r.Dataplane = chain
	r.SnapshotVersion = version
	r.Sequence = m.Next
	r.PrevHash = m.Head
	sum, _, err := auditchain.Hash(r, nil)
	if err != nil {
		return false, err
	}
	r.Hash = sum[:]
	if err := s.stage(r); err != nil {
		return false, err
	}
	if err := s.flush(); err != nil {
		return false, err
	}
	return true, nil
}
