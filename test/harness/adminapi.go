package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
)

// AdminAPI holds Connect clients of one node's admin API, authenticated
// with the cluster's bootstrap admin token. Unlike gwctl (and its client
// package) it makes exactly one attempt per call, with no failover and no
// retry: a program that measures the cluster (test/bench) sees every
// refusal as it happens. The clients are safe for concurrent use.
type AdminAPI struct {
	URL       string
	Agent     adminv1connect.AgentServiceClient
	Backup    adminv1connect.BackupServiceClient
	Dataplane adminv1connect.DataplaneServiceClient

	transport *http.Transport
}

// AdminAPI returns clients of the admin API at url (a node of c), trusting
// the cluster CA. Close them with CloseIdleConnections when done; the test
// does so at cleanup as well.
func (c *Cluster) AdminAPI(t testing.TB, url string) *AdminAPI {
	t.Helper()
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatalf("read the cluster CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", c.CAFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	opts := []connect.ClientOption{
		connect.WithInterceptors(bearer(c.Token)),
		connect.WithReadMaxBytes(256 << 20), connect.WithSendMaxBytes(256 << 20),
	}
	return &AdminAPI{
		URL:       url,
		Agent:     adminv1connect.NewAgentServiceClient(hc, url, opts...),
		Backup:    adminv1connect.NewBackupServiceClient(hc, url, opts...),
		Dataplane: adminv1connect.NewDataplaneServiceClient(hc, url, opts...),
		transport: tr,
	}
}

// CloseIdleConnections closes the clients' idle connections.
func (a *AdminAPI) CloseIdleConnections() { a.transport.CloseIdleConnections() }

// bearer is a client interceptor that sends "Authorization: Bearer
// <token>" on unary and streaming calls (SaveBackup streams).
type bearer string

var _ connect.Interceptor = bearer("")

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
