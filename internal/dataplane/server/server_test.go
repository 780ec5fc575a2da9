package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/mode"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

const payerSPIFFE = "spiffe://test-cluster/agent/payer"

// tlsFiles is a cluster CA, a server certificate for 127.0.0.1 in PEM
// files, and payer's client certificate.
type tlsFiles struct {
	ca             *configtest.CA
	certFile, key  string
	clientCert     tls.Certificate
	clientLeaf     *x509.Certificate
	serverRootPool *x509.CertPool
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	ca := configtest.NewCA(t, "cluster CA")
	// Valid now: the handshake checks the server certificate at wall time.
	now := time.Now()
	srv := ca.Issue(t, configtest.Leaf{Name: "dataplane", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	cli := ca.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})
	dir := t.TempDir()
	f := &tlsFiles{ca: ca, certFile: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key"), clientLeaf: cli.Cert}
	if err := os.WriteFile(f.certFile, []byte(configtest.PEM(srv.Cert)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, []byte(configtest.KeyPEM(t, srv.Key)), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	f.clientCert, err = tls.X509KeyPair([]byte(configtest.PEM(cli.Cert)), []byte(configtest.KeyPEM(t, cli.Key)))
	if err != nil {
		t.Fatal(err)
	}
	f.serverRootPool = x509.NewCertPool()
	f.serverRootPool.AddCert(ca.Cert)
	return f
}

func (f *tlsFiles) client(t *testing.T, withCert bool) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.serverRootPool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{f.clientCert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestValidateTLSFlags(t *testing.T) {
	base := func() Config {
		return Config{DataDir: "d", ControlPlanes: []string{"https://cp.example"}, Listen: "127.0.0.1:0",
			Credential: joincred.Credential{Name: "dp", Token: "pct_x", CAFingerprint: "sha256:00"}}
	}
	tests := []struct {
		name      string
		cert, key string
		wantErr   bool
	}{
		{name: "neither"},
		{name: "both", cert: "tls.crt", key: "tls.key"},
		{name: "cert only", cert: "tls.crt", wantErr: true},
		{name: "key only", key: "tls.key", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.TLSCert, c.TLSKey = tt.cert, tt.key
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--tls-cert and --tls-key") {
				t.Fatalf("error %q does not name the flags", err)
			}
		})
	}
}

func TestValidatePlaintextListen(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		tls, flag    bool
		wantErr      bool
	}{
		{name: "loopback v4", listen: "127.0.0.1:7480"},
		{name: "loopback v6", listen: "[::1]:7480"},
		{name: "localhost", listen: "localhost:7480"},
		{name: "every address", listen: "0.0.0.0:7480", wantErr: true},
		{name: "empty host", listen: ":7480", wantErr: true},
		{name: "a LAN address", listen: "10.0.0.5:7480", wantErr: true},
		{name: "every address with TLS", listen: "0.0.0.0:7480", tls: true},
		{name: "every address, plaintext accepted", listen: "0.0.0.0:7480", flag: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{DataDir: "d", ControlPlanes: []string{"https://cp.example"}, Listen: tc.listen, PlaintextListen: tc.flag,
				Credential: joincred.Credential{Name: "dp", Token: "pct_x", CAFingerprint: "sha256:00"}}
			if tc.tls {
				c.TLSCert, c.TLSKey = "tls.crt", "tls.key"
			}
			err := c.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--plaintext-listen") {
				t.Fatalf("error %q does not say how to proceed", err)
			}
		})
	}
}

// TestBeginCarriesPeerCertificates serves Begin behind the listener's own
// TLS configuration: a client certificate reaches the call and
// authenticates its agent against the snapshot's cluster CA; a client
// without one is still served.
func TestBeginCarriesPeerCertificates(t *testing.T) {
	f := newTLSFiles(t)
	s := configtest.Snapshot()
	s.ClusterCaPem = f.ca.PEM
	configtest.Agent(t, s, "payer").SpiffeIds = []string{payerSPIFFE}
	dp := &Server{tracker: mode.NewTracker(DefaultDegradedAfter, DefaultMaxStale, time.Now)}
	dp.current.Store(configtest.Compile(t, s))

	tlsConfig, err := listenerTLS(Config{TLSCert: f.certFile, TLSKey: f.key})
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig.MinVersion != tls.VersionTLS13 || tlsConfig.ClientAuth != tls.RequestClientCert {
		t.Fatalf("listener TLS: min version %x, client auth %v", tlsConfig.MinVersion, tlsConfig.ClientAuth)
	}
	calls := make(chan *pipeline.Call, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls <- dp.Begin(r)
	}))
	srv.TLS = tlsConfig
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, withCert := range []bool{true, false} {
		resp, err := f.client(t, withCert).Get(srv.URL + "/mcp")
		if err != nil {
			t.Fatalf("with a client certificate %v: %v", withCert, err)
		}
		_ = resp.Body.Close()
		call := <-calls
		if !withCert {
			if call.PeerCertificates != nil {
				t.Fatalf("PeerCertificates = %d certificates, want none", len(call.PeerCertificates))
			}
			continue
		}
		if len(call.PeerCertificates) != 1 || !call.PeerCertificates[0].Equal(f.clientLeaf) {
			t.Fatalf("PeerCertificates = %d certificates, want the client's", len(call.PeerCertificates))
		}
		call.Start = configtest.VersionTime
		_, err = stages.Authenticate{}.Handle(context.Background(), call, func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return &pipeline.Result{}, nil
		})
		if err != nil || call.Agent.GetMeta().GetName() != "payer" {
			t.Fatalf("Authenticate = %v, agent %q; want payer", err, call.Agent.GetMeta().GetName())
		}
	}
}

// TestStartServesTLS starts a real data plane with --tls-cert/--tls-key
// (its control plane never answers, which Start does not wait for) and
// checks the listener speaks TLS 1.3 and h2, with and without a client
// certificate.
func TestStartServesTLS(t *testing.T) {
	f := newTLSFiles(t)
	dp, err := Start(context.Background(), Config{
		DataDir: t.TempDir(), ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
		Listen:     "127.0.0.1:0", TLSCert: f.certFile, TLSKey: f.key,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp.Close() })
	for _, withCert := range []bool{true, false} {
		resp, err := f.client(t, withCert).Get("https://" + dp.Addr() + "/healthz")
		if err != nil {
			t.Fatalf("with a client certificate %v: %v", withCert, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Fatalf("GET /healthz = %d %q", resp.StatusCode, body)
		}
		if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("served %s, TLS %v; want HTTP/2 over TLS 1.3", resp.Proto, resp.TLS)
		}
	}
	// The 401 challenge's resource_metadata document is served (RFC 9728).
	mresp, err := f.client(t, false).Get("https://" + dp.Addr() + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	_ = mresp.Body.Close()
	if mresp.StatusCode != http.StatusOK || !strings.Contains(string(mbody), `"resource":"https://`+dp.Addr()+`/mcp"`) {
		t.Fatalf("protected-resource metadata = %d %s", mresp.StatusCode, mbody)
	}
	// net/http answers plain HTTP on a TLS listener with a 400.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + dp.Addr() + "/healthz")
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS listener: %s, want 400", resp.Status)
		}
	}
}

func TestStartRefusesABadKeyPair(t *testing.T) {
	f := newTLSFiles(t)
	_, err := Start(context.Background(), Config{
		DataDir: t.TempDir(), ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
		Listen:     "127.0.0.1:0", TLSCert: f.certFile, TLSKey: f.certFile,
	})
	if err == nil || !strings.Contains(err.Error(), "--tls-cert/--tls-key") {
		t.Fatalf("Start = %v, want the key pair refused", err)
	}
}

// TestStartKeepsTheAuditLogInTheDataDir checks the data plane writes its
// audit log under <data-dir>/audit, in both --audit-sync modes, and that a
// restart continues it.
func TestStartKeepsTheAuditLogInTheDataDir(t *testing.T) {
	dataDir := t.TempDir()
	for i, async := range []bool{false, true, false} {
		dp, err := Start(context.Background(), Config{
			DataDir: dataDir, ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
			Credential: joincred.Credential{Name: "dp1", Token: "pct_test"},
			Listen:     "127.0.0.1:0", AuditAsync: async,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := &auditv1.Record{Dataplane: "dp1", Outcome: "ok"}
		werr := dp.audit.Write(context.Background(), r)
		if err := dp.Close(); err != nil {
			t.Fatal(err)
		}
		if werr != nil || r.Sequence != uint64(i+1) {
			t.Fatalf("start %d (async %v): Write = %v, sequence %d; want sequence %d", i+1, async, werr, r.Sequence, i+1)
		}
	}
	sum, err := audit.Verify(filepath.Join(dataDir, "audit"))
	if err != nil || sum.Last != 3 {
		t.Fatalf("Verify = %+v, %v; want 3 intact records", sum, err)
	}
}
