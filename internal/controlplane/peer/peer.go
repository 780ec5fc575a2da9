// Package peer is the control plane's node-to-node API: a follower forwards
// writes, read-index requests, membership changes and restores to the
// leader. Callers authenticate twice: with a cluster node certificate
// (mutual TLS, outside --dev) and with a key every node derives from the
// shared key-encryption key, compared in constant time.
package peer

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	clusterv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/cluster/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/cluster/v1/clusterv1connect"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// authHeader carries the node-forward key.
const authHeader = "Portcullis-Node-Key"

// maxMessageBytes bounds peer messages (a restore carries a whole backup).
const maxMessageBytes = 256 << 20

// Leader is what the peer server needs from the local node. Every method
// returns store.ErrNotLeader when this node is not the leader. Implementations
// must be safe for concurrent use.
type Leader interface {
	ApplyLocal(ctx context.Context, command []byte) (*fsmv1.Result, error)
	ReadIndexLocal(ctx context.Context) (uint64, error)
	AddVoterLocal(ctx context.Context, id, raftAddr string) error
	RemoveLocal(ctx context.Context, id string) error
	RestoreLocal(ctx context.Context, data []byte) error
}

// StatusSource lists the data-plane statuses this node holds. It must be
// safe for concurrent use.
type StatusSource interface {
	List() []*adminv1.DataplaneStatus
}

// AuditSource hands out copies of this node's audit store. It must be safe
// for concurrent use.
type AuditSource interface {
	// AuditCopy captures the audit store at a point where every log entry
	// up to applied, and none after it, has been appended: a manifest
	// (auditstore.Manifest: sealed segments by hash, the open segment's
	// bytes) when manifest is set, else a whole copy (auditstore.Snapshot).
	// The caller writes the copy and then releases it.
	AuditCopy(ctx context.Context, manifest bool) (copy AuditCopy, applied uint64, err error)
}

// AuditCopy is a captured copy of an audit store: *auditstore.Snapshot or
// *auditstore.Manifest.
type AuditCopy interface {
	io.WriterTo
	Release()
}

// SegmentSource opens the sealed segments of this node's audit store
// (auditstore.Store). It must be safe for concurrent use.
type SegmentSource interface {
	// OpenSealed opens the sealed segment named name, returning its size.
	OpenSealed(name string) (io.ReadCloser, int64, error)
}

// Granter grants rate-limit leases on the leader. It must be safe for
// concurrent use.
type Granter interface {
	// Grant answers data plane name's demand report, or returns an error
	// when this node does not lead.
	Grant(name string, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error)
}

// Server serves PeerService.
type Server struct {
	leader   Leader
	statuses StatusSource
	audit    AuditSource   // nil: CopyAuditStore is unimplemented
	granter  Granter       // nil: ForwardLease is unimplemented
	segments SegmentSource // nil: FetchAuditSegment is unimplemented
	key      []byte
	tls      bool
	log      *slog.Logger
}

// NewServer returns a peer server. key is the node-forward key; requireCert
// demands a cluster node certificate (false only in --dev).
func NewServer(leader Leader, statuses StatusSource, key []byte, requireCert bool, logger *slog.Logger) *Server {
	return &Server{leader: leader, statuses: statuses, key: key, tls: requireCert, log: logger.With("component", "peer")}
}

// ServeAuditCopies makes the server answer CopyAuditStore from src. Call
// it before serving.
func (s *Server) ServeAuditCopies(src AuditSource) { s.audit = src }

// ServeAuditSegments makes the server answer FetchAuditSegment from src.
// Call it before serving.
func (s *Server) ServeAuditSegments(src SegmentSource) { s.segments = src }

// ServeLeases makes the server answer ForwardLease with g. Call it before
// serving.
func (s *Server) ServeLeases(g Granter) { s.granter = g }

// ForwardLease implements PeerService.
func (s *Server) ForwardLease(_ context.Context, req *connect.Request[clusterv1.ForwardLeaseRequest]) (*connect.Response[clusterv1.ForwardLeaseResponse], error) {
	if s.granter == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this node grants no rate-limit leases"))
	}
	in := req.Msg.GetRequest()
	resp, err := s.granter.Grant(in.GetName(), in)
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, store.ErrNotLeader)
	}
	return connect.NewResponse(&clusterv1.ForwardLeaseResponse{Response: resp}), nil
}

// Handler returns the path and handler to mount on the API server.
func (s *Server) Handler() (string, http.Handler) {
	path, h := clusterv1connect.NewPeerServiceHandler(s, connect.WithReadMaxBytes(maxMessageBytes))
	return path, s.authenticate(h)
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tls {
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "a cluster node certificate is required", http.StatusUnauthorized)
				return
			}
			if _, ok := pki.NodeID(r.TLS.PeerCertificates[0]); !ok {
				http.Error(w, "the client certificate is not a cluster node certificate", http.StatusForbidden)
				return
			}
		}
		got, err := hex.DecodeString(r.Header.Get(authHeader))
		if err != nil || subtle.ConstantTimeCompare(got, s.key) != 1 {
			s.log.WarnContext(r.Context(), "peer call refused: bad node key", "remote", r.RemoteAddr)
			http.Error(w, "bad node key: every node must be given the same key-encryption key", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func toConnect(err error) error {
	if errors.Is(err, store.ErrNotLeader) {
		return connect.NewError(connect.CodeFailedPrecondition, store.ErrNotLeader)
	}
	if errors.Is(err, store.ErrShutdown) {
		return connect.NewError(connect.CodeUnavailable, store.ErrShutdown)
	}
	if errors.Is(err, store.ErrInvalid) {
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// Apply implements PeerService.
func (s *Server) Apply(ctx context.Context, req *connect.Request[clusterv1.ApplyRequest]) (*connect.Response[clusterv1.ApplyResponse], error) {
	res, err := s.leader.ApplyLocal(ctx, req.Msg.GetCommand())
	if err != nil {
		return nil, toConnect(err)
	}
	out, err := proto.Marshal(res)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&clusterv1.ApplyResponse{Result: out}), nil
}

// ReadIndex implements PeerService.
func (s *Server) ReadIndex(ctx context.Context, _ *connect.Request[clusterv1.ReadIndexRequest]) (*connect.Response[clusterv1.ReadIndexResponse], error) {
	idx, err := s.leader.ReadIndexLocal(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&clusterv1.ReadIndexResponse{Index: idx}), nil
}

// ChangeMembership implements PeerService.
func (s *Server) ChangeMembership(ctx context.Context, req *connect.Request[clusterv1.ChangeMembershipRequest]) (*connect.Response[clusterv1.ChangeMembershipResponse], error) {
	var err error
	if req.Msg.GetRemove() {
		err = s.leader.RemoveLocal(ctx, req.Msg.GetNodeId())
	} else {
		err = s.leader.AddVoterLocal(ctx, req.Msg.GetNodeId(), req.Msg.GetRaftAddr())
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&clusterv1.ChangeMembershipResponse{}), nil
}

// Restore implements PeerService.
func (s *Server) Restore(ctx context.Context, req *connect.Request[clusterv1.RestoreRequest]) (*connect.Response[clusterv1.RestoreResponse], error) {
	if err := s.leader.RestoreLocal(ctx, req.Msg.GetData()); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&clusterv1.RestoreResponse{}), nil
}

// ListDataplaneStatus implements PeerService.
func (s *Server) ListDataplaneStatus(context.Context, *connect.Request[clusterv1.ListDataplaneStatusRequest]) (*connect.Response[clusterv1.ListDataplaneStatusResponse], error) {
	return connect.NewResponse(&clusterv1.ListDataplaneStatusResponse{Dataplanes: s.statuses.List()}), nil
}

// auditCopyChunk is the size of CopyAuditStore's messages.
const auditCopyChunk = 1 << 20

// CopyAuditStore implements PeerService.
func (s *Server) CopyAuditStore(ctx context.Context, req *connect.Request[clusterv1.CopyAuditStoreRequest], stream *connect.ServerStream[clusterv1.CopyAuditStoreResponse]) error {
	if s.audit == nil {
		return connect.NewError(connect.CodeUnimplemented, errors.New("this node does not hand out copies of its audit store"))
	}
	snap, applied, err := s.audit.AuditCopy(ctx, req.Msg.GetManifest())
	if err != nil {
		return toConnect(err)
	}
	defer snap.Release()
	w := &chunkWriter{send: func(b []byte) error {
		m := &clusterv1.CopyAuditStoreResponse{Chunk: b}
		if applied != 0 {
			m.Applied, applied = applied, 0
		}
		return stream.Send(m)
	}, buf: make([]byte, 0, auditCopyChunk)}
	if _, err := snap.WriteTo(w); err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("copy the audit store: %w", err))
	}
	if err := w.flush(); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "audit store copied to a peer", "manifest", req.Msg.GetManifest())
	return nil
}

// FetchAuditSegment implements PeerService: it streams a sealed segment,
// its size first. The receiver checks the bytes against the size and hash
// its snapshot names.
func (s *Server) FetchAuditSegment(ctx context.Context, req *connect.Request[clusterv1.FetchAuditSegmentRequest], stream *connect.ServerStream[clusterv1.FetchAuditSegmentResponse]) error {
	if s.segments == nil {
		return connect.NewError(connect.CodeUnimplemented, errors.New("this node does not hand out audit segments"))
	}
	name := req.Msg.GetName()
	if _, ok := auditstore.ParseSegmentName(name); !ok {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("not an audit segment name: 20 decimal digits and .seg"))
	}
	rc, size, err := s.segments.OpenSealed(name)
	if err != nil {
		return connect.NewError(connect.CodeNotFound, err)
	}
	defer rc.Close()
	first := true
	w := &chunkWriter{send: func(b []byte) error {
		m := &clusterv1.FetchAuditSegmentResponse{Chunk: b}
		if first {
			m.Size, first = size, false
		}
		return stream.Send(m)
	}, buf: make([]byte, 0, auditCopyChunk)}
	if _, err := io.Copy(w, io.LimitReader(rc, size)); err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("send audit segment %s: %w", name, err))
	}
	if first {
		if err := stream.Send(&clusterv1.FetchAuditSegmentResponse{Size: size}); err != nil {
			return err
		}
		first = false
	}
	if err := w.flush(); err != nil {
		return err
	}
	s.log.DebugContext(ctx, "audit segment sent to a peer", "segment", name, "bytes", size)
	return nil
}

// chunkWriter cuts what is written into messages of at most cap(buf)
// bytes.
type chunkWriter struct {
	send func([]byte) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = w.buf[:0]
	return err
}

// Client calls other nodes' PeerService. It is safe for concurrent use.
type Client struct {
	http   *http.Client
	scheme string
	key    string

	mu      sync.Mutex
	clients map[string]clusterv1connect.PeerServiceClient
}

// NewClient returns a client. tlsConfig is the node's peer client config
// (nil in --dev, which uses plain HTTP).
func NewClient(tlsConfig *tls.Config, key []byte) *Client {
	// The transport gets its own copy: setting up HTTP/2 adds "h2" to the
	// config's NextProtos in place, and the caller's config is shared
	// with the Raft stream layer, which reads it on every dial.
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsConfig,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	scheme := "https://"
	if tlsConfig == nil {
		scheme = "http://"
	}
	return &Client{
		http:    &http.Client{Transport: tr},
		scheme:  scheme,
		key:     hex.EncodeToString(key),
		clients: map[string]clusterv1connect.PeerServiceClient{},
	}
}

func (c *Client) client(addr string) clusterv1connect.PeerServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl
	}
	cl := clusterv1connect.NewPeerServiceClient(c.http, c.scheme+addr,
		connect.WithReadMaxBytes(maxMessageBytes), connect.WithSendMaxBytes(maxMessageBytes))
	c.clients[addr] = cl
	return cl
}

func request[T any](c *Client, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set(authHeader, c.key)
	return r
}

func fromConnect(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch {
		case ce.Code() == connect.CodeFailedPrecondition && strings.Contains(ce.Message(), store.ErrNotLeader.Error()):
			return store.ErrNotLeader
		case ce.Code() == connect.CodeFailedPrecondition && strings.HasPrefix(ce.Message(), store.ErrInvalid.Error()):
			// The leader refused the request itself (a backup it cannot
			// restore); its message is written for the caller.
			return fmt.Errorf("%w%s", store.ErrInvalid, strings.TrimPrefix(ce.Message(), store.ErrInvalid.Error()))
		case ce.Code() == connect.CodeUnavailable:
			return fmt.Errorf("%w: %w", store.ErrNoLeader, err)
		}
	}
	return err
}

// fromForward is fromConnect for a forwarded call made under ctx: a call
// cut off while ctx is still live (the leader died mid-request; HTTP/2
// reports the reset stream as "canceled") means the leader went away,
// which callers retry like any leader change. A forwarded write's retry is
// safe: the command carries its request id, and the state machine
// applies a request id once.
func fromForward(ctx context.Context, err error) error {
	var ce *connect.Error
	if ctx.Err() == nil && errors.As(err, &ce) && (ce.Code() == connect.CodeCanceled || ce.Code() == connect.CodeUnknown) {
		return fmt.Errorf("%w: the leader went away during the forwarded call: %w", store.ErrNoLeader, err)
	}
	return fromConnect(err)
}

// Apply implements raftstore.Forwarder.
func (c *Client) Apply(ctx context.Context, addr string, command []byte) ([]byte, error) {
	res, err := c.client(addr).Apply(ctx, request(c, &clusterv1.ApplyRequest{Command: command}))
	if err != nil {
		return nil, fromForward(ctx, err)
	}
	return res.Msg.GetResult(), nil
}

// ReadIndex implements raftstore.Forwarder.
func (c *Client) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	res, err := c.client(addr).ReadIndex(ctx, request(c, &clusterv1.ReadIndexRequest{}))
	if err != nil {
		return 0, fromForward(ctx, err)
	}
	return res.Msg.GetIndex(), nil
}

// ChangeMembership asks the leader at addr to add or remove a voter.
func (c *Client) ChangeMembership(ctx context.Context, addr, id, raftAddr string, remove bool) error {
	_, err := c.client(addr).ChangeMembership(ctx, request(c, &clusterv1.ChangeMembershipRequest{NodeId: id, RaftAddr: raftAddr, Remove: remove}))
	return fromConnect(err)
}

// Restore asks the leader at addr to restore a backup.
func (c *Client) Restore(ctx context.Context, addr string, data []byte) error {
	_, err := c.client(addr).Restore(ctx, request(c, &clusterv1.RestoreRequest{Data: data}))
	return fromConnect(err)
}

// CopyAuditStore fetches a copy of the audit store of the node at addr and
// hands it to into as a stream, with the position it is consistent with.
// It asks for a manifest, which a node of an older release answers with a
// whole copy; auditstore.Store.Restore reads either (given sources to
// fetch the sealed segments a manifest lists, see FetchAuditSegment).
func (c *Client) CopyAuditStore(ctx context.Context, addr string, into func(applied uint64, r io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client(addr).CopyAuditStore(ctx, request(c, &clusterv1.CopyAuditStoreRequest{Manifest: true}))
	if err != nil {
		return fromConnect(err)
	}
	defer func() { _ = stream.Close() }()
	if !stream.Receive() {
		if err := stream.Err(); err != nil {
			return fromConnect(err)
		}
		return errors.New("the peer sent an empty audit store copy")
	}
	first := stream.Msg()
	r := &streamReader{stream: stream, buf: first.GetChunk()}
	if err := into(first.GetApplied(), r); err != nil {
		return err
	}
	return nil
}

// streamReader reads the chunks of a CopyAuditStore stream.
type streamReader struct {
	stream *connect.ServerStreamForClient[clusterv1.CopyAuditStoreResponse]
	buf    []byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if !r.stream.Receive() {
			if err := r.stream.Err(); err != nil {
				return 0, fromConnect(err)
			}
			return 0, io.EOF
		}
		r.buf = r.stream.Msg().GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// FetchAuditSegment fetches the sealed audit segment name from the node at
// addr and writes its bytes to w (which bounds and checks them).
func (c *Client) FetchAuditSegment(ctx context.Context, addr, name string, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Uncompressed: gzip of a segment costs more CPU than the transfer
	// it saves between nodes (it was the most of a fetch's time on 2
	// cores).
	cl := clusterv1connect.NewPeerServiceClient(c.http, c.scheme+addr,
		connect.WithReadMaxBytes(maxMessageBytes), connect.WithAcceptCompression("gzip", nil, nil))
	stream, err := cl.FetchAuditSegment(ctx, request(c, &clusterv1.FetchAuditSegmentRequest{Name: name}))
	if err != nil {
		return fromConnect(err)
	}
	defer func() { _ = stream.Close() }()
	for stream.Receive() {
		if _, err := w.Write(stream.Msg().GetChunk()); err != nil {
			return fmt.Errorf("audit segment %s from %s: %w", name, addr, err)
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("audit segment %s from %s: %w", name, addr, fromConnect(err))
	}
	return nil
}

// ForwardLease asks the leader at addr for a data plane's leases.
func (c *Client) ForwardLease(ctx context.Context, addr string, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
	res, err := c.client(addr).ForwardLease(ctx, request(c, &clusterv1.ForwardLeaseRequest{Request: req}))
	if err != nil {
		return nil, fromForward(ctx, err)
	}
	return res.Msg.GetResponse(), nil
}

// ListDataplaneStatus asks the node at addr for the statuses it holds.
func (c *Client) ListDataplaneStatus(ctx context.Context, addr string) ([]*adminv1.DataplaneStatus, error) {
	res, err := c.client(addr).ListDataplaneStatus(ctx, request(c, &clusterv1.ListDataplaneStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetDataplanes(), nil
}
