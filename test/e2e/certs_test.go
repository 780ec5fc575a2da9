package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// testCA is a certificate authority the test plays: the agents' PKI.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf: a server certificate for 127.0.0.1 when spiffeID is
// empty, else a client certificate carrying spiffeID as its URI SAN. It
// returns the pair and its PEM files' contents.
func (ca *testCA) issue(t *testing.T, spiffeID string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if spiffeID == "" {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		u, err := url.Parse(spiffeID)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// tlsDataplane is a data plane serving TLS with a certificate of ca, and
// the client side's view of it.
type tlsDataplane struct {
	dp       *harness.Dataplane
	endpoint string
	roots    *x509.CertPool
}

// startTLSDataplane starts a data plane serving /mcp over TLS with a
// server certificate from ca, and waits until it serves version.
func (g *gateway) startTLSDataplane(t *testing.T, name string, ca *testCA, version uint64) *tlsDataplane {
	t.Helper()
	_, certPEM, keyPEM := ca.issue(t, "")
	certFile := g.writeFile(t, name+".crt", string(certPEM))
	keyFile := g.writeFile(t, name+".key", string(keyPEM))
	dp := g.startDataplane(t, name, "--tls-cert", certFile, "--tls-key", keyFile)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	td := &tlsDataplane{dp: dp, endpoint: "https://" + dp.Listen + "/mcp", roots: roots}
	// /readyz is on the TLS listener too, and the harness's probes speak
	// plain HTTP, so the test asks it here.
	harness.Await(t, 30*time.Second, fmt.Sprintf("TLS data plane %s serving version %d", name, version), func() error {
		if !dp.Running() {
			t.Fatalf("data plane %s exited:\n%s", name, dp.Log.String())
		}
		st, err := td.readyz()
		if err != nil {
			return err
		}
		if st.Version < version || st.Mode != "normal" {
			return fmt.Errorf("readyz %+v, want version ≥ %d in normal mode", st, version)
		}
		return nil
	})
	return td
}

// opts are call options presenting cert (nil: none) and bearer.
func (td *tlsDataplane) opts(cert *tls.Certificate, bearer string) harness.CallOptions {
	cfg := &tls.Config{RootCAs: td.roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return harness.CallOptions{Bearer: bearer, TLS: cfg}
}

// readyz asks the TLS data plane's /readyz once.
func (td *tlsDataplane) readyz() (harness.ReadyStatus, error) {
	var st harness.ReadyStatus
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: td.roots, MinVersion: tls.VersionTLS13}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("https://" + td.dp.Listen + "/readyz")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}

// callAt calls tool through the TLS data plane as opts present the caller.
func (td *tlsDataplane) call(t *testing.T, opts harness.CallOptions, tool string, args any) harness.ToolCall {
	t.Helper()
	c, err := harness.CallToolAt(context.Background(), td.dp.Name, td.endpoint, opts, tool, args)
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return c
}
