// Package adminapi serves the control plane's Connect admin API. Handlers
// validate input, turn writes into typed commands for the store, and map
// results to Connect errors; authentication and authorization happen in an
// interceptor (auth.go) before any handler runs.
package adminapi

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	"github.com/portcullis-gw/portcullis/internal/credential"
	"github.com/portcullis-gw/portcullis/internal/egress"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Headers of the admin API (see proto/portcullis/admin/v1/common.proto).
const (
	HeaderRequestID   = "Portcullis-Request-Id"
	HeaderConsistency = "Portcullis-Consistency"
)

// Message size limits.
const (
	MaxRequestBytes int = 4 << 20
	MaxBackupBytes  int = 256 << 20
)

// Cluster is what the admin API needs of Raft membership and backups. The
// methods forward to the leader as needed. Implementations must be safe for
// concurrent use.
type Cluster interface {
	NodeID() string
	Leader() (id, apiAddr string)
	Members() ([]Member, error)
	AddVoter(ctx context.Context, id, raftAddr string) error
	RemoveServer(ctx context.Context, id string) error
	Restore(ctx context.Context, backup []byte) error
	// LastContact is when this node last heard from the leader.
	LastContact() time.Time
	// DataplaneStatuses gathers the data-plane statuses every reachable
	// node holds (this node's own at least).
	DataplaneStatuses(ctx context.Context) ([]*adminv1.DataplaneStatus, error)
}

// Member is one control-plane node in the Raft configuration.
type Member struct {
	ID, RaftAddr, APIAddr, Suffrage string
	Leader                          bool
	// Version is the highest cluster version the node's binary supports,
	// as recorded in the state.
	Version clusterversion.Version
}

// Config configures the API.
type Config struct {
	Store   store.Store
	Cluster Cluster
	// Sealer encrypts secrets and opens the CA key.
	Sealer *seal.Sealer
	Egress egress.Policy
	// Resolver resolves upstream hosts for the egress check (nil: system).
	Resolver egress.Resolver
	Dev      bool
	Logger   *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// NodeCertTTL is the lifetime of node certificates the CA signs.
	NodeCertTTL time.Duration
	// Audit is this node's audit store (nil: AuditService is unavailable).
	Audit *auditstore.Store
}

// API implements every admin service.
type API struct {
	// modifyLocks serialize read-modify-writes of one resource through
	// this node (see modify).
	modifyLocks [modifyStripes]sync.Mutex

	cfg     Config
	log     *slog.Logger
	mintKey []byte
	recheck *rate.Limiter
	// attestKey signs audit attestations; the same on every node.
	attestKey ed25519.PrivateKey
}

// mint derives the credential a create hands out from the caller and the
// request id, so a retried create returns the credential that was stored.
func (a *API) mint(ctx context.Context, k credential.Kind, h http.Header, method string) (credential.Minted, error) {
	reqID, err := requestID(h)
	if err != nil {
		return credential.Minted{}, err
	}
	return credential.Derive(k, a.mintKey, method, callerFrom(ctx).tokenID, reqID), nil
}

// New returns the API.
func New(cfg Config) *API {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeCertTTL == 0 {
		cfg.NodeCertTTL = 3 * 365 * 24 * time.Hour
	}
	return &API{cfg: cfg, log: cfg.Logger.With("component", "adminapi"), mintKey: cfg.Sealer.Derive("credential-mint", 32),
		// Up to 20 unknown-token re-checks a second (shared by every
		// service of this node); beyond that an unknown token is refused
		// from local state alone.
		recheck:   rate.NewLimiter(20, 20),
		attestKey: ed25519.NewKeyFromSeed(cfg.Sealer.Derive(attestKeyPurpose, ed25519.SeedSize))}
}

// modifyStripes is the number of modify locks.
const modifyStripes = 64

// modifyAttempts bounds modify's optimistic retries.
const modifyAttempts = 20

// stripe picks one of the modify locks for a resource key.
func stripe(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % modifyStripes)
}

// Route is one mounted service.
type Route struct {
	Path    string
	Handler http.Handler
}

// Routes returns every admin service, each behind the authentication
// interceptor, strict decoding and size limits.
func (a *API) Routes() []Route {
	opts := func(limit int) []connect.HandlerOption {
		return []connect.HandlerOption{
			connect.WithInterceptors(newAuthInterceptor(a), strictInterceptor{}),
			connect.WithCodec(strictJSONCodec{}),
			connect.WithReadMaxBytes(limit),
		}
	}
	var out []Route
	add := func(path string, h http.Handler) { out = append(out, Route{path, h}) }
	add(adminv1connect.NewAgentServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewUpstreamServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewValueListServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewToolServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewPolicyServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewIdentitySourceServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewSecretServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewTokenServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewClusterServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewBackupServiceHandler(a, opts(MaxBackupBytes)...))
	add(adminv1connect.NewAdminLogServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewDataplaneServiceHandler(a, opts(MaxRequestBytes)...))
	add(adminv1connect.NewAccessServiceHandler(a, opts(MaxRequestBytes)...))
	add(auditv1connect.NewAuditServiceHandler(a, opts(MaxUploadBytes+64<<10)...))
	if testRoutes != nil {
		out = append(out, testRoutes(a, opts(MaxRequestBytes))...)
	}
	return out
}

// testRoutes mounts the services of a test build (-tags upgradetest); nil
// in a release build.
var testRoutes func(a *API, opts []connect.HandlerOption) []Route

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// requestID returns the client's request id, or a fresh one (recorded in h
// so that every later call for the same request sees the same id).
func requestID(h http.Header) (string, error) {
	id := h.Get(HeaderRequestID)
	if id == "" {
		id = uuid.NewString()
		h.Set(HeaderRequestID, id)
		return id, nil
	}
	if !requestIDRE.MatchString(id) {
		return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'", HeaderRequestID))
	}
	return id, nil
}

// read returns the state a read should see, honouring the consistency
// header.
func (a *API) read(ctx context.Context, h http.Header) (*state.State, error) {
	lin := false
	switch h.Get(HeaderConsistency) {
	case "", "local":
	case "linearizable":
		lin = true
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s must be local or linearizable", HeaderConsistency))
	}
	st, err := a.cfg.Store.State(ctx, lin)
	if err != nil {
		return nil, storeError(err)
	}
	return st, nil
}

// command builds a command from the caller's identity and request id.
func (a *API) command(ctx context.Context, reqID, method string) *fsmv1.Command {
	return &fsmv1.Command{
		RequestId: reqID,
		Actor:     callerFrom(ctx).actor(),
		Time:      timestamppb.New(a.cfg.Now()),
		Method:    method,
	}
}

// apply sends cmd to the store and maps a refusal to a Connect error.
func (a *API) apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error) {
	res, err := a.cfg.Store.Apply(ctx, cmd)
	if err != nil {
		return nil, storeError(err)
	}
	if e := res.GetError(); e != nil {
		return nil, connect.NewError(resultCode(e.GetCode()), errors.New(e.GetMessage()))
	}
	return res, nil
}

// put stores r with the given mode.
func (a *API) put(ctx context.Context, h http.Header, method string, r *fsmv1.Resource, mode fsmv1.WriteMode, rev uint64) (*fsmv1.Resource, error) {
	reqID, err := requestID(h)
	if err != nil {
		return nil, err
	}
	if err := resource.Validate(r); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	cmd := a.command(ctx, reqID, method)
	cmd.Op = &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: r, Mode: mode, ExpectedRevision: rev}}
	res, err := a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res.GetResource(), nil
}

// remove deletes a resource.
func (a *API) remove(ctx context.Context, h http.Header, method string, k resource.Kind, name string, rev uint64) error {
	reqID, err := requestID(h)
	if err != nil {
		return err
	}
	cmd := a.command(ctx, reqID, method)
	cmd.Op = &fsmv1.Command_Delete{Delete: &fsmv1.Delete{Kind: string(k), Name: name, ExpectedRevision: rev}}
	_, err = a.apply(ctx, cmd)
	return err
}

// modify is a read-modify-write of one resource with optimistic
// concurrency: it reads linearizably, lets fn change a copy, and writes it
// back only if nothing changed in between, retrying a few times. Each
// attempt has its own derived request id so that a refused attempt's
// remembered result never answers the next one, while a client's retry of
// the whole call still deduplicates attempt by attempt.
//
// Modifications of one resource through this node are serialized (a
// striped lock), so they never race each other; a race with another node
// is retried with jittered backoff, up to modifyAttempts times.
func (a *API) modify(ctx context.Context, h http.Header, method string, k resource.Kind, name string, fn func(*fsmv1.Resource) error) (*fsmv1.Resource, error) {
	reqID, err := requestID(h)
	if err != nil {
		return nil, err
	}
	lock := &a.modifyLocks[stripe(string(k)+"/"+name)]
	lock.Lock()
	defer lock.Unlock()
	for attempt := 1; ; attempt++ {
		st, err := a.cfg.Store.State(ctx, true)
		if err != nil {
			return nil, storeError(err)
		}
		cur, ok := st.Get(k, name)
		if !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q does not exist", k, name))
		}
		next := cloneResource(cur)
		if err := fn(next); err != nil {
			return nil, err
		}
		cmd := a.command(ctx, fmt.Sprintf("%s#%d", reqID, attempt), method)
		cmd.Op = &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: next, Mode: fsmv1.WriteMode_WRITE_MODE_UPDATE, ExpectedRevision: resource.Meta(cur).GetRevision()}}
		res, err := a.apply(ctx, cmd)
		if connect.CodeOf(err) == connect.CodeAborted && attempt < modifyAttempts {
			select {
			case <-time.After(time.Duration(1+rand.IntN(10*attempt)) * time.Millisecond): //nolint:gosec // retry jitter, not a secret
			case <-ctx.Done():
				return nil, storeError(ctx.Err())
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return res.GetResource(), nil
	}
}

func resultCode(c fsmv1.ErrorCode) connect.Code {
	switch c {
	case fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
		return connect.CodeInvalidArgument
	case fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return connect.CodeNotFound
	case fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS:
		return connect.CodeAlreadyExists
	case fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION:
		return connect.CodeFailedPrecondition
	case fsmv1.ErrorCode_ERROR_CODE_ABORTED:
		return connect.CodeAborted
	default:
		return connect.CodeInternal
	}
}

// storeError maps a store error to a Connect error whose message says what
// to do next.
func storeError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("the write's outcome is unknown (timed out); retry with the same %s: %w", HeaderRequestID, err))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrNotLeader):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%w; retry shortly or on another node", store.ErrNoLeader))
	case errors.Is(err, store.ErrShutdown):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, store.ErrInvalid):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	default:
		var ce *connect.Error
		if errors.As(err, &ce) {
			return ce
		}
		return connect.NewError(connect.CodeUnavailable, err)
	}
}

// Pagination.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, connect.NewError(connect.CodeInvalidArgument, errors.New("page_size must not be negative"))
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	default:
		return int(n), nil
	}
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) > 512 {
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this API issued"))
	}
	return string(b), nil
}

func encodePageToken(after string) string {
	if after == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(after))
}

// list pages through resources of kind k.
func (a *API) list(ctx context.Context, h http.Header, k resource.Kind, size int32, token string) ([]*fsmv1.Resource, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken(token)
	if err != nil {
		return nil, "", err
	}
	st, err := a.read(ctx, h)
	if err != nil {
		return nil, "", err
	}
	items, next := st.List(k, after, n)
	return items, encodePageToken(next), nil
}

// get reads one resource or answers NotFound.
func (a *API) get(ctx context.Context, h http.Header, k resource.Kind, name string) (*fsmv1.Resource, error) {
	st, err := a.read(ctx, h)
	if err != nil {
		return nil, err
	}
	r, ok := st.Get(k, name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q does not exist", k, name))
	}
	return r, nil
}
