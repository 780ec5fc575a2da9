// Package adminapi serves the control plane's Connect admin API and audit
// service. Handlers validate input, turn writes into typed commands for the
// store, and map results to Connect errors. Authentication, roles and read
// limits (auth.go) are enforced by the edge's gate from the headers, before
// Connect reads a request body; failures of the store and the cluster reach
// clients only as edge.Error's safe messages.
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
	"github.com/portcullis-gw/portcullis/internal/controlplane/access"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	"github.com/portcullis-gw/portcullis/internal/credential"
	"github.com/portcullis-gw/portcullis/internal/egress"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Headers of the admin API (see proto/portcullis/admin/v1/common.proto).
const (
	HeaderRequestID   = edge.HeaderRequestID
	HeaderConsistency = "Portcullis-Consistency"
)

// MaxBackupBytes bounds a backup to restore (see auth.go for every
// procedure's read limit).
const MaxBackupBytes int = 256 << 20

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
	// Auth resolves bearer tokens (nil: one over Store). Share one with
	// config sync, so its re-check budget is the node's.
	Auth *tokenauth.Authenticator
}

// API implements every admin service.
type API struct {
	// modifyLocks serialize read-modify-writes of one resource through
	// this node (see modify).
	modifyLocks [modifyStripes]sync.Mutex

	cfg     Config
	log     *slog.Logger
	mintKey []byte
	// attestKey signs audit attestations; the same on every node.
	attestKey ed25519.PrivateKey
	// engines holds the policy engine of the newest configuration version
	// an access question was asked about.
	engines access.Engines
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
	if cfg.Auth == nil {
		cfg.Auth = tokenauth.NewAuthenticator(cfg.Store, cfg.Now)
	}
	return &API{cfg: cfg, log: cfg.Logger.With("component", "adminapi"), mintKey: cfg.Sealer.Derive("credential-mint", 32),
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

// Routes returns every admin service and the audit service, each behind
// the edge's gate (token, role and read limit checked from the headers
// before the body is read), with strict decoding.
func (a *API) Routes() []Route {
	gate := edge.NewGate(a.cfg.Auth, procedures, a.cfg.Logger)
	own := []connect.HandlerOption{
		connect.WithInterceptors(gatedInterceptor{}, strictInterceptor{}),
		connect.WithCodec(strictJSONCodec{}),
	}
	var out []Route
	add := func(b edge.Build) {
		path, h := gate.Mount(b)
		out = append(out, Route{path, h})
	}
	add(edge.Service(adminv1connect.NewAgentServiceHandler, adminv1connect.AgentServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewUpstreamServiceHandler, adminv1connect.UpstreamServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewValueListServiceHandler, adminv1connect.ValueListServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewInspectionServiceHandler, adminv1connect.InspectionServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewPriceServiceHandler, adminv1connect.PriceServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewBudgetServiceHandler, adminv1connect.BudgetServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewRateLimitServiceHandler, adminv1connect.RateLimitServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewToolServiceHandler, adminv1connect.ToolServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewPolicyServiceHandler, adminv1connect.PolicyServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewRolloutServiceHandler, adminv1connect.RolloutServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewIdentitySourceServiceHandler, adminv1connect.IdentitySourceServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewSecretServiceHandler, adminv1connect.SecretServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewTokenServiceHandler, adminv1connect.TokenServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewClusterServiceHandler, adminv1connect.ClusterServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewBackupServiceHandler, adminv1connect.BackupServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewAdminLogServiceHandler, adminv1connect.AdminLogServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewDataplaneServiceHandler, adminv1connect.DataplaneServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewSettingServiceHandler, adminv1connect.SettingServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewAccessServiceHandler, adminv1connect.AccessServiceHandler(a), own...))
	add(edge.Service(adminv1connect.NewAlertServiceHandler, adminv1connect.AlertServiceHandler(a), own...))
	add(edge.Service(auditv1connect.NewAuditServiceHandler, auditv1connect.AuditServiceHandler(a), own...))
	if testRoutes != nil {
		for _, b := range testRoutes(a, own) {
			add(b)
		}
	}
	return out
}

// testRoutes mounts the services of a test build (-tags upgradetest); nil
// in a release build.
var testRoutes func(a *API, own []connect.HandlerOption) []edge.Build

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
		return nil, a.storeError(ctx, err)
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

// apply sends cmd to the store and maps a refusal to a Connect error. A
// command over a limit is refused here, before it is proposed; the state
// machine would refuse it the same way (resource.ValidateCommand).
func (a *API) apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error) {
	if err := resource.ValidateCommand(cmd); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	res, err := a.cfg.Store.Apply(ctx, cmd)
	if err != nil {
		return nil, a.storeError(ctx, err)
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
			return nil, a.storeError(ctx, err)
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
				return nil, a.storeError(ctx, ctx.Err())
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
	case fsmv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED:
		return connect.CodePermissionDenied
	default:
		return connect.CodeInternal
	}
}

// storeError maps an error of the store or the cluster to a Connect error
// safe to show the client (edge.Error), logging the detail.
func (a *API) storeError(ctx context.Context, err error) error {
	return edge.Error(ctx, a.log, err)
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
