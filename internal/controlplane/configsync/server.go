package configsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultHeartbeat is how often an idle stream carries a heartbeat.
const DefaultHeartbeat = 2 * time.Second

// Server implements ConfigSyncService.
type Server struct {
	auth      *tokenauth.Authenticator
	store     store.Store
	builder   *Builder
	registry  *Registry
	nodeID    string
	heartbeat time.Duration
	leases    Leases
	now       func() time.Time
	log       *slog.Logger
}

// Leases grants data planes' rate-limit leases: the leader itself, any
// other node by forwarding to the leader. Implementations must be safe
// for concurrent use.
type Leases interface {
	// Lease answers the demand report of the data plane req names (the
	// caller checked the credential). It returns an error wrapping
	// store.ErrNoLeader when no leader can be reached.
	Lease(ctx context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error)
}

// Config configures a Server.
type Config struct {
	Store store.Store
	// Auth resolves join credentials (nil: one over Store); share the
	// admin API's.
	Auth      *tokenauth.Authenticator
	Builder   *Builder
	Registry  *Registry
	NodeID    string
	Heartbeat time.Duration
	// Leases grants rate-limit leases (nil: Lease is unavailable).
	Leases Leases
	Now    func() time.Time
	Logger *slog.Logger
}

// NewServer returns a config-sync server.
func NewServer(cfg Config) *Server {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Auth == nil {
		cfg.Auth = tokenauth.NewAuthenticator(cfg.Store, cfg.Now)
	}
	return &Server{auth: cfg.Auth, store: cfg.Store, builder: cfg.Builder, registry: cfg.Registry, nodeID: cfg.NodeID,
		heartbeat: cfg.Heartbeat, leases: cfg.Leases, now: cfg.Now, log: cfg.Logger.With("component", "configsync")}
}

// Read limits of the two requests: a watch is a name and a version; a
// report adds a short reason and up to MaxQuarantined quarantined tools
// (names, hashes, a time: well under 1 KiB each).
const (
	maxWatchBytes  = 4 << 10
	maxReportBytes = MaxQuarantined<<10 + 16<<10
	// A lease request is up to lease.MaxDemands demands of a name, a key
	// of at most lease.MaxKeyBytes and four numbers.
	maxLeaseBytes = 10_000 * (lease.MaxKeyBytes + 320)
)

// Handler returns the path and handler to mount. The edge's gate refuses
// anyone but a data plane's join credential before a byte of the body is
// read; the handlers then check that it is this data plane's.
func (s *Server) Handler() (string, http.Handler) {
	gate := edge.NewGate(s.auth, edge.Rules{
		configsyncv1connect.ConfigSyncServiceWatchProcedure:  {Role: configv1.Role_ROLE_DATAPLANE, MaxBytes: maxWatchBytes},
		configsyncv1connect.ConfigSyncServiceReportProcedure: {Role: configv1.Role_ROLE_DATAPLANE, MaxBytes: maxReportBytes},
		configsyncv1connect.ConfigSyncServiceLeaseProcedure:  {Role: configv1.Role_ROLE_DATAPLANE, MaxBytes: maxLeaseBytes},
	}, s.log)
	// No compression either way: the same snapshot bytes go to every
	// watcher, and gzip-ing them once per watcher would cost the control
	// plane CPU in proportion to the fleet on every change; the requests
	// are too small to gain from it.
	return gate.Mount(edge.Service(configsyncv1connect.NewConfigSyncServiceHandler, configsyncv1connect.ConfigSyncServiceHandler(s),
		connect.WithCompression("gzip", nil, nil)))
}

// authenticate checks that the token the gate verified is the join
// credential of the data plane the caller claims to be.
func (s *Server) authenticate(ctx context.Context, name string) (string, error) {
	tok, ok := tokenauth.FromContext(ctx)
	if !ok || tok.Role != configv1.Role_ROLE_DATAPLANE {
		return "", connect.NewError(connect.CodeUnauthenticated, tokenauth.ErrRefused)
	}
	if tok.Dataplane != name {
		s.log.WarnContext(ctx, "config sync refused: not this data plane's credential", "dataplane", name, "token_id", tok.ID)
		return "", connect.NewError(connect.CodePermissionDenied, fmt.Errorf("this credential does not belong to data plane %q", name))
	}
	return tok.ID, nil
}

// Watch implements ConfigSyncService. It wakes on every state change and
// sends the newest version only, so a burst of writes coalesces and no
// watcher ever queues more than the one snapshot being sent.
func (s *Server) Watch(ctx context.Context, req *connect.Request[configsyncv1.WatchRequest], stream *connect.ServerStream[configsyncv1.WatchResponse]) error {
	name := req.Msg.GetName()
	tokenID, err := s.authenticate(ctx, name)
	if err != nil {
		return err
	}
	have := held{version: req.Msg.GetVersion(), epoch: req.Msg.GetEpoch()}
	done := s.registry.Connected(name, have.version, have.epoch)
	defer done()
	s.log.InfoContext(ctx, "data plane connected", "dataplane", name, "version", have.version, "epoch", have.epoch)
	defer s.log.InfoContext(ctx, "data plane disconnected", "dataplane", name)

	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	for {
		changed := s.store.Changed()
		st, err := s.store.State(ctx, false)
		if err != nil {
			return edge.Error(ctx, s.log, err)
		}
		if !tokenauth.Valid(st, tokenID, s.now()) {
			s.log.WarnContext(ctx, "data plane cut off: credential revoked or expired", "dataplane", name)
			return connect.NewError(connect.CodePermissionDenied, errors.New("this data plane's join credential was revoked or has expired"))
		}
		v, epoch := st.ConfigVersion(), st.Epoch()
		if st.Identity() != nil && !have.is(v, epoch) && !s.registry.Nacked(name).is(v, epoch) {
			built, err := s.builder.Build(st)
			if err != nil {
				s.log.ErrorContext(ctx, "build snapshot", "version", v, "epoch", epoch, "err", err)
				return connect.NewError(connect.CodeInternal, errors.New("this node cannot build the snapshot; try another node"))
			}
			if err := stream.Send(&configsyncv1.WatchResponse{Kind: &configsyncv1.WatchResponse_SnapshotGzip{SnapshotGzip: built.Gzip}}); err != nil {
				return err
			}
			have = held{version: v, epoch: epoch}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-hb.C:
			if err := stream.Send(&configsyncv1.WatchResponse{Kind: &configsyncv1.WatchResponse_Heartbeat{Heartbeat: &configsyncv1.Heartbeat{
				Version: v, Epoch: epoch, Time: timestamppb.New(s.now()), NodeId: s.nodeID,
			}}}); err != nil {
				return err
			}
		}
	}
}

// Report implements ConfigSyncService.
func (s *Server) Report(ctx context.Context, req *connect.Request[configsyncv1.ReportRequest]) (*connect.Response[configsyncv1.ReportResponse], error) {
	if _, err := s.authenticate(ctx, req.Msg.GetName()); err != nil {
		return nil, err
	}
	if len(req.Msg.GetReason()) > 4096 {
		req.Msg.Reason = req.Msg.GetReason()[:4096]
	}
	s.registry.Report(req.Msg)
	if !req.Msg.GetApplied() {
		s.log.WarnContext(ctx, "data plane rejected a snapshot", "dataplane", req.Msg.GetName(), "version", req.Msg.GetVersion(), "epoch", req.Msg.GetEpoch(), "reason", req.Msg.GetReason())
	}
	return connect.NewResponse(&configsyncv1.ReportResponse{}), nil
}

// Lease implements ConfigSyncService.
func (s *Server) Lease(ctx context.Context, req *connect.Request[configsyncv1.LeaseRequest]) (*connect.Response[configsyncv1.LeaseResponse], error) {
	if _, err := s.authenticate(ctx, req.Msg.GetName()); err != nil {
		return nil, err
	}
	if err := lease.CheckRequest(req.Msg); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if s.leases == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this node grants no rate-limit leases"))
	}
	resp, err := s.leases.Lease(ctx, req.Msg)
	if err != nil {
		if errors.Is(err, store.ErrNoLeader) || errors.Is(err, lease.ErrNotLeader) {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("no control-plane leader to grant rate-limit leases; keep the current ones and retry"))
		}
		s.log.WarnContext(ctx, "lease request failed", "dataplane", req.Msg.GetName(), "err", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("this node cannot reach the leader for rate-limit leases; retry"))
	}
	return connect.NewResponse(resp), nil
}

// held is a config version a data plane holds or rejected, as it reported
// it. Epoch 0 comes from a data plane that does not know epochs (or means
// no version at all when version is 0 too).
type held struct{ version, epoch uint64 }

// is reports whether h names (version, epoch). A data plane that reports no
// epoch is matched on the version alone, as before epochs: a restore also
// moves the version past every earlier one (the Touch after it), so such a
// data plane still gets the restored state.
func (h held) is(version, epoch uint64) bool {
	return h.version == version && (h.epoch == 0 || h.epoch == epoch)
}
