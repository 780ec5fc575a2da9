// Package highwater decides whether a data plane may take a snapshot
// version, given the highest version it has applied so far (its
// high-water mark). A snapshot version is (cluster id, epoch, number),
// compared in that order, and a data plane never goes back:
//
//   - from the control plane's stream it accepts the same or a newer
//     version of its cluster, including a new epoch (a restore from backup
//     on the control plane starts one);
//   - from its last-known-good file it accepts only the same or a newer
//     number in the epoch of its mark, never a new epoch (that comes only
//     from the authenticated stream), so copying an older file back is
//     refused;
//   - a snapshot of another cluster is refused from either.
//
// Where the mark is kept is the audit package's concern (the newest
// applied-version record of the data plane's hash-chained audit log).
package highwater

import (
	"errors"
	"fmt"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Version is a snapshot version. The zero Version means none.
type Version struct {
	Cluster string
	// Epoch is at least 1 in a Version made by Of or FromRecord.
	Epoch  uint64
	Number uint64
}

// Of is the version of snap. A snapshot without an epoch (from a control
// plane that predates epochs) is in epoch 1.
func Of(snap *snapshotv1.Snapshot) Version {
	return Version{Cluster: snap.GetClusterId(), Epoch: max(snap.GetEpoch(), 1), Number: snap.GetVersion()}
}

// FromRecord is the version an audit record's applied field names (the
// zero Version for nil).
func FromRecord(a *auditv1.AppliedVersion) Version {
	if a == nil {
		return Version{}
	}
	return Version{Cluster: a.GetClusterId(), Epoch: max(a.GetEpoch(), 1), Number: a.GetVersion()}
}

// Record is v as an audit record carries it.
func (v Version) Record() *auditv1.AppliedVersion {
	return &auditv1.AppliedVersion{ClusterId: v.Cluster, Epoch: v.Epoch, Version: v.Number}
}

// IsZero reports whether v names no version.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string {
	return fmt.Sprintf("version %d (epoch %d) of cluster %q", v.Number, v.Epoch, v.Cluster)
}

// Compare orders two versions of one cluster: -1 when v is older than w,
// 0 when they are the same, +1 when v is newer. Versions of different
// clusters do not compare; check Cluster first.
func (v Version) Compare(w Version) int {
	switch {
	case v.Epoch < w.Epoch:
		return -1
	case v.Epoch > w.Epoch:
		return 1
	case v.Number < w.Number:
		return -1
	case v.Number > w.Number:
		return 1
	}
	return 0
}

// Refusals, wrapped with the versions involved and what to do.
var (
	// ErrOlder: the version is older than the mark.
	ErrOlder = errors.New("older than the version this data plane already applied")
	// ErrOtherCluster: the version belongs to another cluster.
	ErrOtherCluster = errors.New("from another cluster than the one this data plane applied configuration from")
	// ErrNewEpochFromDisk: a last-known-good file of an epoch this data
	// plane never took from the control plane.
	ErrNewEpochFromDisk = errors.New("of an epoch this data plane never received from the control plane")
)

// FromStream checks a version the control plane's stream offers against
// mark (the zero Version when nothing was applied yet).
func FromStream(mark, offered Version) error {
	if mark.IsZero() {
		return nil
	}
	if err := sameCluster(mark, offered); err != nil {
		return err
	}
	if offered.Compare(mark) < 0 {
		return fmt.Errorf("snapshot %s is %w, %s: it never goes back (a control-plane node that lags, or a restore that did not start a new epoch)",
			offered, ErrOlder, mark)
	}
	return nil
}

// FromDisk checks the version of the last-known-good file against mark
// (the zero Version when nothing was recorded: a first start, or a data
// dir from before marks were kept).
func FromDisk(mark, offered Version) error {
	if mark.IsZero() {
		return nil
	}
	if err := sameCluster(mark, offered); err != nil {
		return err
	}
	switch {
	case offered.Epoch > mark.Epoch:
		return fmt.Errorf("last-known-good snapshot %s is %w (this data plane applied %s); a new epoch is accepted only from the control plane's stream",
			offered, ErrNewEpochFromDisk, mark)
	case offered.Compare(mark) < 0:
		return fmt.Errorf("last-known-good snapshot %s is %w, %s (recorded in its audit log): the file was rolled back or copied in from elsewhere",
			offered, ErrOlder, mark)
	}
	return nil
}

func sameCluster(mark, offered Version) error {
	if offered.Cluster != mark.Cluster {
		return fmt.Errorf("snapshot %s is %w (%q); a data plane that joins another cluster needs a fresh --data-dir",
			offered, ErrOtherCluster, mark.Cluster)
	}
	return nil
}
