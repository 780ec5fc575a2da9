package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// The log is also where a data plane keeps the highest configuration
// version it has applied (its high-water mark), so that a last-known-good
// snapshot file copied back from an older backup is refused. Before it
// serves a version it writes a configuration record (Record.applied set,
// method MethodApply); each later segment starts with a copy of the newest
// one (MethodCarry), so reopening a log finds the mark by scanning only the
// last segment, which recovery reads anyway.
//
// Why here rather than in a file of its own: the mark must live where
// replacing the snapshot file cannot reach it, and where an edit to it
// shows. A separate file, even one with a MAC, can be replaced by an older
// copy of itself together with the snapshot, or deleted, and nothing would
// tell. Records of this log are chained by hash and uploaded to the control
// plane, which keeps each data plane's chain: taking the mark back means
// rewriting the chain, which the control plane refuses (and
// `gwctl audit verify` names) as soon as the data plane uploads again.
// The mark also becomes part of the audit trail: which configuration
// version a data plane ran from when.

// Methods of configuration records.
const (
	// MethodApply marks a configuration version the data plane is about
	// to serve.
	MethodApply = "config/apply"
	// MethodCarry starts a segment with a copy of the newest MethodApply
	// record's version; it is not a new application.
	MethodCarry = "config/carry"
)

// AppliedRecord is the configuration record a data plane writes before it
// serves version v.
func AppliedRecord(dataplane, mode string, v *auditv1.AppliedVersion, now time.Time) *auditv1.Record {
	return &auditv1.Record{
		Time: timestamppb.New(now), Dataplane: dataplane, Method: MethodApply,
		SnapshotVersion: v.GetVersion(), Mode: mode, Outcome: "ok",
		Kind:   auditv1.EventKind_EVENT_KIND_CONFIG_APPLIED,
		Detail: &auditv1.Record_Applied{Applied: proto.CloneOf(v)},
	}
}

// Applied is the version named by the newest configuration record in the
// log, nil when it holds none. Records sealed by Write count at once,
// before they are durable.
func (l *Log) Applied() *auditv1.AppliedVersion {
	r := l.applied.Load()
	if r == nil {
		return nil
	}
	return proto.CloneOf(r.GetApplied())
}

// noteApplied remembers the configuration record r as the newest, for
// Applied and for the copy the next segment starts with.
func (l *Log) noteApplied(r *auditv1.Record) {
	l.applied.Store(&auditv1.Record{
		Dataplane: r.GetDataplane(), SnapshotVersion: r.GetSnapshotVersion(), Mode: r.GetMode(),
		Detail: &auditv1.Record_Applied{Applied: proto.CloneOf(r.GetApplied())},
	})
}

// carry is the record a new segment starts with, or nil when the log holds
// no configuration record.
func (l *Log) carry() *auditv1.Record {
	m := l.applied.Load()
	if m == nil {
		return nil
	}
	return &auditv1.Record{
		Time: timestamppb.Now(), Dataplane: m.GetDataplane(), Method: MethodCarry,
		SnapshotVersion: m.GetSnapshotVersion(), Mode: m.GetMode(), Outcome: "ok",
		Kind:   auditv1.EventKind_EVENT_KIND_CONFIG_APPLIED,
		Detail: &auditv1.Record_Applied{Applied: proto.CloneOf(m.GetApplied())},
	}
}

// newestApplied returns the newest configuration record of seg, a segment
// before the last one, reading up to the first damage (nil when it has
// none or cannot be read; the failure is logged).
func (l *Log) newestApplied(seg segment) *auditv1.Record {
	f, err := os.Open(seg.path)
	if err != nil {
		l.log.Warn("audit log: cannot read a segment for the applied configuration version", "segment", seg.path, "err", err)
		return nil
	}
	defer f.Close()
	var newest *auditv1.Record
	fr := newFrameReader(f)
	for {
		b, off, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return newest
		}
		if err != nil {
			l.log.Warn("audit log: a segment is damaged; the applied configuration version is taken from before the damage",
				"segment", seg.path, "err", fmt.Errorf("offset %d: %w", off, err))
			return newest
		}
		r := new(auditv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			l.log.Warn("audit log: a record does not decode; the applied configuration version is taken from before it",
				"segment", seg.path, "offset", off, "err", err)
			return newest
		}
		if r.GetApplied() != nil {
			newest = r
		}
	}
}
