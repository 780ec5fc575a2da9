package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Defaults for Options.
const (
	DefaultSegmentSize  = 64 << 20
	DefaultSyncInterval = 100 * time.Millisecond
)

// maxBatch bounds the records one group commit takes from the queue, and
// flushAt the bytes it buffers before handing them to the OS.
const (
	maxBatch = 1024
	flushAt  = 1 << 20
)

// Options configures a Log.
type Options struct {
	// Dir holds the segments; it is created (0700) if missing.
	Dir string
	// Async makes Write return once its record is written to the OS, not
	// yet fsynced; the log fsyncs every SyncInterval (and on rotation and
	// Close). That trades durability for latency: a process crash loses
	// nothing, but a machine crash or power loss can lose the records of
	// the last SyncInterval even though their calls were answered, and
	// their sequences are then reused by later records. The default (false)
	// returns only after the record's batch is fsynced.
	Async bool
	// SyncInterval is how often an Async log fsyncs (default 100ms).
	SyncInterval time.Duration
	// SegmentSize is the size past which a new segment is started
	// (default 64 MiB). A segment holds at least one record, so it may
	// exceed this by up to one frame.
	SegmentSize int64
	// Logger receives recovery and failure reports.
	Logger *slog.Logger
	// OnCommit, when set, is called with each record once it is committed
	// (fsynced; with Async, written to the OS), by the Write leading that
	// commit, one commit at a time, in sequence order: it must return at
	// once (queue, never wait) and must not change the record. An export
	// hook.
	OnCommit func(*auditv1.Record)

	// wrapFile wraps every segment file opened for writing (a test seam).
	wrapFile func(segmentFile) segmentFile
}

// segmentFile is what the writer needs of a segment file.
type segmentFile interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// Log is a durable, hash-chained, append-only audit log in a directory
// (see the package documentation for the layout). Write is safe for
// concurrent use, with group commit led by the callers themselves: a
// Write that finds no commit in progress commits its own record at once
// (assigns sequence and hash, appends, fsyncs) on its own goroutine, so a
// lone call pays one write and one fdatasync and no hand-off to another
// goroutine; Writes that arrive meanwhile queue, and when the commit ends
// the first of them leads the next one with every record queued by then
// (one write, one fdatasync for all). A Log must be the only writer of its
// directory.
type Log struct {
	opts Options
	log  *slog.Logger

	// qmu guards the queue and the lead; the commit itself runs outside
	// it, under the lead.
	qmu     sync.Mutex
	closed  bool
	leading bool       // a Write is committing
	pending []*request // queued for the next commit
	spare   []*request // the last batch's slice, reused
	idle    *sync.Cond // on qmu: signalled when leading turns false
	// slots bounds the records queued or committing (a Write waits, up to
	// its ctx, for one).
	slots chan struct{}
	// stopSync ends an Async log's background fsync; syncDone closes once
	// it has.
	stopSync, syncDone chan struct{}
	shutOnce           sync.Once
	closeErr           error

	failed  atomic.Pointer[error]
	durable atomic.Uint64 // last fsynced sequence
	// applied is the newest configuration record (see applied.go), with
	// only what a carried copy needs.
	applied atomic.Pointer[auditv1.Record]

	// fmu guards f and written against the background syncer of an
	// Async log; the leading Write holds it only to change them.
	fmu sync.Mutex

	// Owned by the leading Write (and recover, before Open returns).
	f       segmentFile
	segSize int64
	next    uint64         // sequence of the next record
	head    [hashSize]byte // hash of the last record (zeros for none)
	written uint64         // last sequence handed to the OS
	buf     []byte         // frames not yet handed to the OS
	bufLast uint64         // sequence of the last frame in buf
	lastAt  int            // offset in buf of the last frame
	// tailApplied is whether the last sealed record is a configuration
	// record (a new segment that starts with it needs no carried copy).
	tailApplied bool
	committed   []*auditv1.Record // reused by commit
	scratch     []byte

	// cursor is where the last ReadFrom stopped (read.go).
	cursor readCursor
}

var _ Writer = (*Log)(nil)

// maxQueued bounds the records queued or being committed.
const maxQueued = 4 * maxBatch

// request is one Write waiting for its batch.
type request struct {
	rec  *auditv1.Record
	done chan error // capacity 1: the outcome, or errLead
}

// errLead tells a queued Write that it leads the next commit.
var errLead = errors.New("audit log: lead the next commit")

var requests = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// Open opens the log in opts.Dir, creating it if needed. On an existing
// log it scans the last segment, cuts off a torn or damaged tail (kept in
// a .cut-… file beside it and reported in the log) and continues the
// sequence and hash chain after the last intact record.
func Open(opts Options) (*Log, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("audit log: no directory")
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	l := &Log{
		opts:  opts,
		log:   opts.Logger,
		slots: make(chan struct{}, maxQueued),
	}
	l.idle = sync.NewCond(&l.qmu)
	if err := l.recover(); err != nil {
		return nil, err
	}
	l.written = l.next - 1
	l.durable.Store(l.written)
	if opts.Async {
		// The periodic fsync runs beside the writers, so records keep
		// being written while a slow fsync is in progress.
		l.stopSync, l.syncDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(l.syncDone)
			l.syncLoop(l.stopSync)
		}()
	}
	return l, nil
}

// Write appends r to the log. It assigns r's Sequence, PrevHash and Hash
// (whatever the caller set there is replaced), so the caller must not
// touch r until Write returns. It returns once r is fsynced (or, with
// Options.Async, written to the OS). ctx bounds only the wait for room in
// the queue: once queued, a record is written and Write waits for it.
//
// An error means r is not in the log (or, after a failed write, may be but
// must be treated as not): ErrRecordTooLarge for an oversized record,
// ErrFailed (wrapping the cause) from the first failed write or fsync on,
// ErrClosed after Close.
func (l *Log) Write(ctx context.Context, r *auditv1.Record) error {
	if err := l.err(); err != nil {
		return err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		select {
		case l.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("audit log: %w", ctx.Err())
		}
	}
	defer func() { <-l.slots }()
	req := requests.Get().(*request)
	req.rec = r
	defer func() {
		req.rec = nil
		requests.Put(req)
	}()
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return ErrClosed
	}
	l.pending = append(l.pending, req)
	if l.leading {
		l.qmu.Unlock()
		if err := <-req.done; err != errLead { //nolint:errorlint // a sentinel sent as is
			return err
		}
	} else {
		l.leading = true
		l.qmu.Unlock()
	}
	l.lead()
	return <-req.done
}

// lead commits what is queued (the leading Write's own record among it),
// then passes the lead to the first Write queued meanwhile, or gives it up.
func (l *Log) lead() {
	defer func() {
		if p := recover(); p != nil {
			// A commit that panicked leaves its batch unanswered and the
			// lead taken. The caller's HTTP server would recover the
			// panic and every later Write would wait forever: stop the
			// process instead, as a panic on a writer goroutine of its
			// own would.
			go panic(fmt.Sprintf("audit log: a commit panicked: %v", p))
			select {}
		}
	}()
	l.qmu.Lock()
	n := min(len(l.pending), maxBatch)
	batch := append(l.spare[:0], l.pending[:n]...)
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	l.qmu.Unlock()

	l.commit(batch)

	clear(batch)
	l.qmu.Lock()
	l.spare = batch[:0]
	if len(l.pending) > 0 {
		l.pending[0].done <- errLead
	} else {
		l.leading = false
		l.idle.Broadcast()
	}
	l.qmu.Unlock()
}

// Close writes what is queued, fsyncs and closes the log. Later Writes
// return ErrClosed. It is safe to call more than once.
func (l *Log) Close() error {
	l.qmu.Lock()
	l.closed = true
	for l.leading {
		l.idle.Wait()
	}
	l.qmu.Unlock()
	l.shutOnce.Do(func() {
		if l.stopSync != nil {
			close(l.stopSync)
			<-l.syncDone
		}
		l.shutdown()
	})
	return l.closeErr
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.opts.Dir }

// Durable is the sequence of the last record known to be fsynced (0 for
// none).
func (l *Log) Durable() uint64 { return l.durable.Load() }

// err is the failure that stopped the log, if any.
func (l *Log) err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail stops the log for good (the first failure is the one kept).
func (l *Log) fail(cause error) {
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	if l.failed.CompareAndSwap(nil, &err) {
		l.log.Error("audit log failed; every call will be refused until the data plane is restarted", "err", cause)
	}
}

func (l *Log) wrap(f *os.File) segmentFile {
	sf := segmentFile(dataFile{f})
	if l.opts.wrapFile != nil {
		return l.opts.wrapFile(sf)
	}
	return sf
}

// dataFile is a segment file whose Sync is fdatasync: a segment only
// grows by appends, and fdatasync writes what reading them back needs
// (the data and the file's size) without the timestamps.
type dataFile struct{ *os.File }

func (f dataFile) Sync() error { return dataSync(f.File) }

// syncLoop fsyncs an Async log every SyncInterval until stop closes.
func (l *Log) syncLoop(stop <-chan struct{}) {
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		l.fmu.Lock()
		f, written := l.f, l.written
		l.fmu.Unlock()
		if written <= l.durable.Load() || l.err() != nil {
			continue
		}
		if err := f.Sync(); err != nil {
			if errors.Is(err, os.ErrClosed) {
				continue // rotated meanwhile; the writer synced it before closing
			}
			l.fail(fmt.Errorf("fsync audit segment: %w", err))
			continue
		}
		l.markDurable(written)
	}
}

// markDurable raises the durable sequence to seq (never lowers it).
func (l *Log) markDurable(seq uint64) {
	for {
		cur := l.durable.Load()
		if seq <= cur || l.durable.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// commit appends batch and answers each request.
func (l *Log) commit(batch []*request) {
	if err := l.err(); err != nil {
		for _, req := range batch {
			req.done <- err
		}
		return
	}
	accepted := batch[:0]
	// committed is every record of the batch in sequence order, with the
	// copies of the configuration record new segments start with.
	committed := l.committed[:0]
	var err error
	for i, req := range batch {
		if serr := l.seal(req.rec); serr != nil {
			req.done <- serr
			continue
		}
		accepted = append(accepted, req)
		committed = append(committed, req.rec)
		var carried *auditv1.Record
		if carried, err = l.maybeRotateOrFlush(); err != nil {
			// The rest share the failure, unwritten.
			accepted = append(accepted, batch[i+1:]...)
			break
		}
		if carried != nil {
			committed = append(committed, carried)
		}
	}
	if err == nil {
		err = l.flush()
	}
	if err == nil && !l.opts.Async {
		err = l.sync()
	}
	if err != nil {
		l.fail(err)
		err = l.err()
	}
	if err == nil && l.opts.OnCommit != nil {
		for _, r := range committed {
			l.opts.OnCommit(r)
		}
	}
	clear(committed)
	l.committed = committed[:0]
	for _, req := range accepted {
		req.done <- err
	}
}

// seal assigns r the next sequence and the chain, and appends its frame to
// l.buf. A record that is too large or does not encode is refused without
// spending a sequence, and r is left without sequence or hashes.
func (l *Log) seal(r *auditv1.Record) error {
	r.Sequence = l.next
	// The record's two hashes share one allocation.
	hashes := make([]byte, 2*hashSize)
	r.PrevHash = hashes[:copy(hashes, l.head[:]):hashSize]
	sum, scratch, err := chainHash(r, l.scratch)
	l.scratch = scratch
	if err == nil {
		r.Hash = hashes[hashSize:]
		copy(r.Hash, sum[:])
		start := len(l.buf)
		l.buf = append(l.buf, make([]byte, frameHeaderSize)...)
		l.buf, err = deterministic.MarshalAppend(l.buf, r)
		switch n := len(l.buf) - start - frameHeaderSize; {
		case err != nil:
			err = fmt.Errorf("encode audit record: %w", err)
		case n > MaxRecordSize:
			err = fmt.Errorf("%w: %d bytes encoded, at most %d allowed", ErrRecordTooLarge, n, MaxRecordSize)
		default:
			putFrameHeader(l.buf[start:start+frameHeaderSize], l.buf[start+frameHeaderSize:])
			l.lastAt = start
			l.next++
			l.head = sum
			l.bufLast = r.Sequence
			l.tailApplied = r.GetApplied() != nil
			if l.tailApplied {
				l.noteApplied(r)
			}
			return nil
		}
		l.buf = l.buf[:start]
	}
	r.Sequence, r.PrevHash, r.Hash = 0, nil, nil
	return err
}

// maybeRotateOrFlush runs after each sealed frame: when the segment would
// pass its size bound with the newest frame, it finishes the segment with
// what came before and starts a new one with the newest frame, followed by
// a copy of the newest configuration record (returned; nil when none was
// sealed); when the buffer is large, it hands it to the OS.
func (l *Log) maybeRotateOrFlush() (*auditv1.Record, error) {
	var carried *auditv1.Record
	frame := len(l.buf) - l.lastAt
	if pending := l.segSize + int64(l.lastAt); pending > 0 && pending+int64(frame) > l.opts.SegmentSize {
		first := l.bufLast
		tail := append([]byte(nil), l.buf[l.lastAt:]...)
		tailApplied := l.tailApplied
		l.buf = l.buf[:l.lastAt]
		l.bufLast = first - 1
		if err := l.flush(); err != nil {
			return nil, err
		}
		if err := l.sync(); err != nil {
			return nil, err
		}
		l.fmu.Lock()
		err := l.f.Close()
		if err == nil {
			err = l.createSegment(first)
		} else {
			err = fmt.Errorf("close audit segment: %w", err)
		}
		l.fmu.Unlock()
		if err != nil {
			return nil, err
		}
		l.buf = append(l.buf[:0], tail...)
		l.bufLast, l.lastAt = first, 0
		if c := l.carry(); c != nil && !tailApplied {
			// Reopening the log finds the mark in the last segment.
			if err := l.seal(c); err != nil {
				return nil, fmt.Errorf("start audit segment with the applied configuration version: %w", err)
			}
			carried = c
		}
	}
	if len(l.buf) >= flushAt {
		return carried, l.flush()
	}
	return carried, nil
}

// flush hands l.buf to the OS.
func (l *Log) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	n, err := l.f.Write(l.buf)
	l.segSize += int64(n)
	if err != nil {
		return fmt.Errorf("write audit segment: %w", err)
	}
	l.fmu.Lock()
	l.written = l.bufLast
	l.fmu.Unlock()
	l.buf = l.buf[:0]
	return nil
}

// sync fsyncs what was handed to the OS.
func (l *Log) sync() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync audit segment: %w", err)
	}
	l.markDurable(l.written)
	return nil
}

// shutdown runs once the log is closed and no commit is in progress.
func (l *Log) shutdown() {
	var err error
	if l.err() == nil {
		err = l.flush()
		if err == nil {
			err = l.sync()
		}
	}
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close audit segment: %w", cerr)
	}
	l.closeErr = err
}
