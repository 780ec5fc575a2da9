package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/credential"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
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
	if err := s.node.Bootstrap(); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, AdminTokenFile), []byte(b.token.Text+"\n"), 0o600); err != nil {
		return err
	}
	now := time.Now()
	cmd := &fsmv1.Command{
		RequestId: "bootstrap-" + b.identity.GetClusterId(),
		Actor:     &configv1.Actor{TokenId: "node:" + s.cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.New(now),
		Method:    "controlplane --bootstrap",
		Op: &fsmv1.Command_Bootstrap{Bootstrap: &fsmv1.Bootstrap{
			Identity: b.identity,
			Node: &configv1.Node{Meta: &configv1.ResourceMeta{Name: s.cfg.NodeID}, RaftAddr: s.cfg.RaftAdvertise, ApiAddr: s.cfg.APIAdvertise,
				MaxClusterVersion: uint32(clusterversion.Current())},
			AdminToken: &configv1.AdminToken{
				Meta: &configv1.ResourceMeta{Name: b.token.ID, Description: "bootstrap token (break-glass: create your own and revoke this one)"},
				Role: configv1.Role_ROLE_ADMIN, Sha256: b.token.SHA256,
			},
		}},
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.node.WaitLeader(ctx); err != nil {
		return err
	}
	res, err := s.node.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("record bootstrap: %w", err)
	}
	if e := res.GetError(); e != nil {
		return fmt.Errorf("record bootstrap: %s", e.GetMessage())
	}
	s.log.Info("cluster bootstrapped", "cluster_id", b.identity.GetClusterId(),
		"admin_token_file", filepath.Join(s.cfg.DataDir, AdminTokenFile),
		"ca_fingerprint", b.caFingerprint)
	return nil
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
