package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// snapshotFormat is the version of the snapshot stream layout. Read
// refuses a newer one (ErrTooNew). A leader sends its snapshots to every
// follower, so a new format may only be written once every voter supports
// the cluster version that reads it (see package clusterversion).
const snapshotFormat = 1

// maxRecordBytes bounds one record when reading a snapshot, so a corrupt
// length prefix cannot make a node allocate without limit.
const maxRecordBytes = 16 << 20

// WriteTo writes s as a snapshot stream: a length-delimited SnapshotHeader
// followed by length-delimited SnapshotRecords (resources in key order, then
// admin events, then deduplication entries).
func (s *State) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	var records uint64
	opts := protodelim.MarshalOptions{MarshalOptions: proto.MarshalOptions{Deterministic: true}}
	write := func(m proto.Message) error {
		k, err := opts.MarshalTo(bw, m)
		n += int64(k)
		records++
		return err
	}
	hdr := &fsmv1.SnapshotHeader{
		Format:        snapshotFormat,
		ConfigVersion: s.configVersion,
		Identity:      s.identity,
		ConfigTime:    s.configTime,
		AppliedIndex:  s.index,
		Freeze:        s.freeze,
		Epoch:         s.epoch,
	}
	if err := write(hdr); err != nil {
		return n, fmt.Errorf("write snapshot header: %w", err)
	}
	it := s.res.Root().Iterator()
	for _, r, ok := it.Next(); ok; _, r, ok = it.Next() {
		if err := write(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_Resource{Resource: r}}); err != nil {
			return n, fmt.Errorf("write snapshot resource: %w", err)
		}
	}
	ei := s.events.Root().Iterator()
	for _, e, ok := ei.Next(); ok; _, e, ok = ei.Next() {
		if err := write(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_AdminEvent{AdminEvent: e}}); err != nil {
			return n, fmt.Errorf("write snapshot event: %w", err)
		}
	}
	di := s.dedupAge.Root().Iterator()
	for _, key, ok := di.Next(); ok; _, key, ok = di.Next() {
		e, _ := s.dedup.Get([]byte(key))
		if err := write(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_Dedup{Dedup: e}}); err != nil {
			return n, fmt.Errorf("write snapshot dedup entry: %w", err)
		}
	}
	records-- // the header is not counted
	if err := write(&fsmv1.SnapshotRecord{Record: &fsmv1.SnapshotRecord_End{End: &fsmv1.SnapshotEnd{Records: records}}}); err != nil {
		return n, fmt.Errorf("write snapshot end: %w", err)
	}
	return n, bw.Flush()
}

// ErrCorrupt reports a snapshot stream that cannot be read back.
var ErrCorrupt = errors.New("corrupt state snapshot")

// ErrTooNew reports a snapshot written by a newer version than this binary
// reads: a newer format, or a resource kind or record this binary does not
// support. The node must be upgraded; reading on would lose what it does
// not understand.
var ErrTooNew = errors.New("the state snapshot was written by a newer Portcullis version")

// Read rebuilds a State from a snapshot stream written by WriteTo.
func Read(r io.Reader) (*State, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordBytes}
	hdr := &fsmv1.SnapshotHeader{}
	if err := opts.UnmarshalFrom(br, hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	switch f := hdr.GetFormat(); {
	case f > snapshotFormat:
		return nil, fmt.Errorf("%w: its format is %d, this binary reads format %d and older; upgrade this node's binary", ErrTooNew, f, snapshotFormat)
	case f != snapshotFormat:
		return nil, fmt.Errorf("%w: unknown format %d", ErrCorrupt, f)
	}
	s := New()
	s.configVersion = hdr.GetConfigVersion()
	s.configTime = hdr.GetConfigTime()
	s.identity = hdr.GetIdentity()
	s.index = hdr.GetAppliedIndex()
	s.freeze = hdr.GetFreeze()
	s.epoch = hdr.GetEpoch()
	res, events, dedup, age := s.res.Txn(), s.events.Txn(), s.dedup.Txn(), s.dedupAge.Txn()
	var records uint64
	for ended := false; !ended; {
		rec := &fsmv1.SnapshotRecord{}
		err := opts.UnmarshalFrom(br, rec)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated after %d records (no end record)", ErrCorrupt, records)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: record: %w", ErrCorrupt, err)
		}
		switch v := rec.GetRecord().(type) {
		case *fsmv1.SnapshotRecord_End:
			if v.End.GetRecords() != records {
				return nil, fmt.Errorf("%w: end record counts %d records, read %d", ErrCorrupt, v.End.GetRecords(), records)
			}
			ended = true
			continue
		case *fsmv1.SnapshotRecord_Resource:
			if _, err := clusterversion.ResourceNeed(v.Resource); err != nil {
				return nil, fmt.Errorf("%w: %w; upgrade this node's binary", ErrTooNew, err)
			}
			k := resource.KindOf(v.Resource)
			if k == "" || resource.Meta(v.Resource) == nil {
				return nil, fmt.Errorf("%w: resource without kind or metadata", ErrCorrupt)
			}
			res.Insert(resKey(k, resource.Name(v.Resource)), v.Resource)
		case *fsmv1.SnapshotRecord_AdminEvent:
			events.Insert(indexKey(v.AdminEvent.GetIndex()), v.AdminEvent)
		case *fsmv1.SnapshotRecord_Dedup:
			key := dedupKey(v.Dedup.GetTokenId(), v.Dedup.GetRequestId())
			dedup.Insert([]byte(key), v.Dedup)
			age.Insert(append(indexKey(v.Dedup.GetResult().GetIndex()), key...), key)
		default:
			if unknown := clusterversion.UnknownFields(rec.ProtoReflect()); unknown != "" {
				return nil, fmt.Errorf("%w: it holds a record this binary does not know (field %s); upgrade this node's binary", ErrTooNew, unknown)
			}
			return nil, fmt.Errorf("%w: unknown record", ErrCorrupt)
		}
		records++
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the end record", ErrCorrupt)
	}
	s.res, s.events, s.dedup, s.dedupAge = res.CommitOnly(), events.CommitOnly(), dedup.CommitOnly(), age.CommitOnly()
	s.agentIDs = buildAgentIndex(s.res)
	return s, nil
}
