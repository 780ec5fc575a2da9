package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Certificate lifetimes.
const (
	caTTL   = 10 * 365 * 24 * time.Hour
	nodeTTL = 3 * 365 * 24 * time.Hour
)

// bootstrapMaterial is what the first node of a cluster creates.
type bootstrapMaterial struct {
	tls           tlsMaterial
	caFingerprint string
	identity      *configv1.ClusterIdentity
	token         credential.Minted
}

func newBootstrapMaterial(cfg Config, sealer *seal.Sealer) (*bootstrapMaterial, error) {
	now := time.Now()
	clusterID := uuid.NewString()
	ca, caKey, err := pki.NewCA("Portcullis cluster "+clusterID, now, caTTL)
	if err != nil {
		return nil, fmt.Errorf("create cluster CA: %w", err)
	}
	cert, key, err := ca.IssueNode(cfg.NodeID, cfg.hosts(), now, nodeTTL)
	if err != nil {
		return nil, fmt.Errorf("issue node certificate: %w", err)
	}
	sealedKey, err := sealer.Seal(caKey, resource.CAKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("seal CA key: %w", err)
	}
	tok, err := credential.New(credential.AdminToken)
	if err != nil {
		return nil, fmt.Errorf("mint admin token: %w", err)
	}
	return &bootstrapMaterial{
		tls:           tlsMaterial{caPEM: ca.CertPEM, certPEM: cert, keyPEM: key},
		caFingerprint: ca.Fingerprint(),
		identity: &configv1.ClusterIdentity{
			ClusterId:   clusterID,
			CaCertPem:   string(ca.CertPEM),
			CaKeySealed: sealedKey,
			KekId:       sealer.KeyID(),
			CreateTime:  timestamppb.New(now),
		},
		token: tok,
	}, nil
}

// bootstrap makes this node a one-node cluster and records the cluster
// identity, the node and the bootstrap admin token. The token text goes to
// <data-dir>/admin.token (mode 0600) before the command is proposed; only
// its hash is replicated.
func (s *Server) bootstrap(ctx context.Context, b *bootstrapMaterial) error {
	if err := s.raft.Bootstrap(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.raft.WaitLeader(ctx); err != nil {
		return err
	}
	return recordBootstrap(ctx, s.b, s.cfg, b, s.log)
}

// recordBootstrap writes the bootstrap token to the data dir, then
// records the cluster identity, this node and the token's hash in the
// store.
func recordBootstrap(ctx context.Context, st store.Store, cfg Config, b *bootstrapMaterial, log *slog.Logger) error {
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, AdminTokenFile), []byte(b.token.Text+"\n"), 0o600); err != nil {
		return err
	}
	now := time.Now()
	cmd := &fsmv1.Command{
		RequestId: "bootstrap-" + b.identity.GetClusterId(),
		Actor:     &configv1.Actor{TokenId: "node:" + cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.New(now),
		Method:    "controlplane --bootstrap",
		Op: &fsmv1.Command_Bootstrap{Bootstrap: &fsmv1.Bootstrap{
			Identity: b.identity,
			Node: &configv1.Node{Meta: &configv1.ResourceMeta{Name: cfg.NodeID}, RaftAddr: cfg.RaftAdvertise, ApiAddr: cfg.APIAdvertise,
				MaxClusterVersion: uint32(clusterversion.Current())},
			AdminToken: &configv1.AdminToken{
				Meta: &configv1.ResourceMeta{Name: b.token.ID, Description: "bootstrap token (break-glass: create your own and revoke this one)"},
				Role: configv1.Role_ROLE_ADMIN, Sha256: b.token.SHA256,
			},
		}},
	}
	res, err := st.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("record bootstrap: %w", err)
	}
	if e := res.GetError(); e != nil {
		return fmt.Errorf("record bootstrap: %s", e.GetMessage())
	}
	log.Info("cluster bootstrapped", "cluster_id", b.identity.GetClusterId(),
		"admin_token_file", filepath.Join(cfg.DataDir, AdminTokenFile),
		"ca_fingerprint", b.caFingerprint)
	return nil
}

// backupFile is a backup a new cluster starts from (--restore-from).
type backupFile struct {
	data []byte
	st   *state.State
}

// readBackupFile reads and checks the backup at path: a bootstrapped
// cluster's state, sealed with this node's key-encryption key.
func readBackupFile(path string, sealer *seal.Sealer) (*backupFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--restore-from: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(adminapi.MaxBackupBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("--restore-from: %w", err)
	}
	if len(data) > adminapi.MaxBackupBytes {
		return nil, fmt.Errorf("--restore-from %s: larger than %d MiB, the most a backup may be", path, adminapi.MaxBackupBytes>>20)
	}
	st, err := state.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("--restore-from %s is not a backup this version can read (gwctl snapshot save writes one): %w", path, err)
	}
	if st.Identity() == nil {
		return nil, fmt.Errorf("--restore-from %s holds no cluster (taken before bootstrap)", path)
	}
	if err := checkKEK(st.Identity(), sealer); err != nil {
		return nil, fmt.Errorf("--restore-from %s: %w", path, err)
	}
	return &backupFile{data: data, st: st}, nil
}

// checkKEK refuses a key-encryption key other than the one the cluster
// identity was sealed with.
func checkKEK(id *configv1.ClusterIdentity, sealer *seal.Sealer) error {
	if id != nil && id.GetKekId() != "" && id.GetKekId() != sealer.KeyID() {
		return fmt.Errorf("the key-encryption key (id %s) is not the one this cluster was bootstrapped with (id %s): give every node the same key", sealer.KeyID(), id.GetKekId())
	}
	return nil
}

// bootstrapFromBackup makes this node a one-node Raft cluster whose state
// is the backup, in a new epoch.
func (s *Server) bootstrapFromBackup(ctx context.Context, b *backupFile) error {
	if err := s.raft.Bootstrap(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.raft.WaitLeader(ctx); err != nil {
		return err
	}
	if err := s.raft.RestoreLocal(ctx, b.data); err != nil {
		return fmt.Errorf("--restore-from %s: %w", s.cfg.RestoreFrom, err)
	}
	return adopted(ctx, s.b, s.cfg, s.log)
}

// adopted finishes a cluster started from a backup: it records this node
// (the backup's node records are the old cluster's) and moves the config
// version past every version data planes saw, as RestoreBackup does.
func adopted(ctx context.Context, st store.Store, cfg Config, log *slog.Logger) error {
	if err := registerNode(ctx, st, cfg); err != nil {
		return err
	}
	res, err := st.Apply(ctx, &fsmv1.Command{
		RequestId: "restore-from-" + uuid.NewString(),
		Actor:     &configv1.Actor{TokenId: "node:" + cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.Now(),
		Method:    "controlplane --bootstrap --restore-from",
		Op:        &fsmv1.Command_Touch{Touch: &fsmv1.Touch{}},
	})
	if err != nil {
		return fmt.Errorf("record the restore: %w", err)
	}
	if e := res.GetError(); e != nil {
		return fmt.Errorf("record the restore: %s", e.GetMessage())
	}
	cur, err := st.State(ctx, true)
	if err != nil {
		return err
	}
	log.Info("cluster bootstrapped from a backup", "cluster_id", cur.Identity().GetClusterId(), "epoch", cur.Epoch(),
		"backup", cfg.RestoreFrom, "ca_fingerprint", fingerprintOf(cur.Identity()))
	return nil
}

// registerNode records this node (its API address, and the cluster
// version its binary supports) unless the state already does.
func registerNode(ctx context.Context, st store.Store, cfg Config) error {
	cur, err := st.State(ctx, false)
	if err != nil {
		return err
	}
	want := &configv1.Node{Meta: &configv1.ResourceMeta{Name: cfg.NodeID}, RaftAddr: cfg.RaftAdvertise, ApiAddr: cfg.APIAdvertise,
		MaxClusterVersion: uint32(clusterversion.Current())}
	if r, ok := cur.Get(resource.Node, cfg.NodeID); ok {
		n := r.GetNode()
		if n.GetRaftAddr() == want.GetRaftAddr() && n.GetApiAddr() == want.GetApiAddr() && n.GetMaxClusterVersion() == want.GetMaxClusterVersion() {
			return nil
		}
		want.Meta = proto.Clone(n.GetMeta()).(*configv1.ResourceMeta)
	}
	res, err := st.Apply(ctx, &fsmv1.Command{
		RequestId: "register-" + uuid.NewString(),
		Actor:     &configv1.Actor{TokenId: "node:" + cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.Now(),
		Method:    "controlplane start: register node",
		Op:        &fsmv1.Command_Put{Put: &fsmv1.Put{Resource: resource.Wrap(want), Mode: fsmv1.WriteMode_WRITE_MODE_UPSERT}},
	})
	if err != nil {
		return fmt.Errorf("register this node: %w", err)
	}
	if e := res.GetError(); e != nil {
		return fmt.Errorf("register this node: %s", e.GetMessage())
	}
	return nil
}

// fingerprintOf is the fingerprint of the cluster CA in id ("" when none).
func fingerprintOf(id *configv1.ClusterIdentity) string {
	ca, err := pki.ParseCertificatePEM([]byte(id.GetCaCertPem()))
	if err != nil {
		return ""
	}
	return pki.Fingerprint(ca.Raw)
}

// nodeTLS returns this node's TLS material: from the data dir, or, when
// there is none, a certificate it issues itself with the cluster CA (whose
// key it opens with the key-encryption key), saved to the data dir.
func nodeTLS(cfg Config, sealer *seal.Sealer, id *configv1.ClusterIdentity) (tlsMaterial, error) {
	m, ok, err := loadTLS(cfg.DataDir)
	if err != nil {
		return m, err
	}
	if ok {
		if strings.TrimSpace(string(m.caPEM)) != strings.TrimSpace(id.GetCaCertPem()) {
			return m, fmt.Errorf("the TLS material in %s belongs to another cluster than %s: give this node an empty --data-dir", filepath.Join(cfg.DataDir, tlsDir), id.GetClusterId())
		}
		return m, nil
	}
	keyPEM, err := sealer.Open(id.GetCaKeySealed(), resource.CAKeyAAD)
	if err != nil {
		return m, fmt.Errorf("open the cluster CA key (is this node given the cluster's key-encryption key?): %w", err)
	}
	ca, err := pki.LoadCA([]byte(id.GetCaCertPem()), keyPEM)
	if err != nil {
		return m, fmt.Errorf("load the cluster CA: %w", err)
	}
	cert, key, err := ca.IssueNode(cfg.NodeID, cfg.hosts(), time.Now(), nodeTTL)
	if err != nil {
		return m, fmt.Errorf("issue this node's certificate: %w", err)
	}
	m = tlsMaterial{caPEM: []byte(id.GetCaCertPem()), certPEM: cert, keyPEM: key}
	if err := saveTLS(cfg.DataDir, m); err != nil {
		return m, err
	}
	return m, nil
}

// joinClient talks to the member named by --join with the join token,
// trusting only the pinned cluster CA (or plain HTTP in --dev).
func joinClient(cfg Config) (adminv1connect.ClusterServiceClient, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	if !cfg.Dev {
		tc, err := pki.ClientConfig(nil, cfg.JoinCAFingerprint, "")
		if err != nil {
			return nil, fmt.Errorf("--join-ca-fingerprint: %w", err)
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
	}
	return adminv1connect.NewClusterServiceClient(hc, cfg.Join), nil
}

func withToken[T any](msg *T, token string) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+token)
	return r
}

// fetchNodeCertificate has a member sign a certificate for this node.
func fetchNodeCertificate(ctx context.Context, cfg Config) (tlsMaterial, error) {
	cl, err := joinClient(cfg)
	if err != nil {
		return tlsMaterial{}, err
	}
	key, csr, err := pki.NewKeyAndCSR(cfg.NodeID)
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("create key: %w", err)
	}
	res, err := cl.IssueNodeCertificate(ctx, withToken(&adminv1.IssueNodeCertificateRequest{
		NodeId: cfg.NodeID, CsrPem: string(csr), Hosts: cfg.hosts(),
	}, cfg.JoinToken))
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("join %s: get a node certificate: %w", cfg.Join, err)
	}
	ca, err := pki.ParseCertificatePEM([]byte(res.Msg.GetCaCertPem()))
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("join: cluster CA: %w", err)
	}
	want, err := pki.ParseFingerprint(cfg.JoinCAFingerprint)
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("--join-ca-fingerprint: %w", err)
	}
	got, _ := pki.ParseFingerprint(pki.Fingerprint(ca.Raw))
	if string(got) != string(want) {
		return tlsMaterial{}, errors.New("join: the cluster CA the member returned does not match --join-ca-fingerprint")
	}
	return tlsMaterial{caPEM: []byte(res.Msg.GetCaCertPem()), certPEM: []byte(res.Msg.GetCertPem()), keyPEM: key}, nil
}

// join asks the cluster to add this (running) node as a voter, retrying
// while the cluster elects a leader or the member is briefly unreachable.
func (s *Server) join(ctx context.Context) error {
	cl, err := joinClient(s.cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	backoff := 200 * time.Millisecond
	for {
		_, err := cl.AddNode(ctx, withToken(&adminv1.AddNodeRequest{
			NodeId: s.cfg.NodeID, RaftAddr: s.cfg.RaftAdvertise, ApiAddr: s.cfg.APIAdvertise,
		}, s.cfg.JoinToken))
		if err == nil {
			s.log.Info("joined cluster", "via", s.cfg.Join)
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeUnknown:
		default:
			return fmt.Errorf("join %s: %w", s.cfg.Join, err)
		}
		s.log.Warn("join: retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w (last error: %w)", s.cfg.Join, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}
