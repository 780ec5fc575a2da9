// Package gwctltest is an in-process fake of the control plane's admin API
// for gwctl's tests: a "cluster" of httptest servers (nodes) that share one
// in-memory state, record every request they see, deduplicate writes by
// Portcullis-Request-Id like the real control plane, and can be told to fail.
package gwctltest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
)

// Now is the time the fake stamps on everything it creates.
var Now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Option configures NewCluster.
type Option func(*options)

type options struct {
	token    string
	pageSize int
	tls      bool
}

// WithToken makes every node refuse calls without "Authorization: Bearer
// <token>" (UNAUTHENTICATED).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithMaxPageSize caps the page size of every list (default 100).
func WithMaxPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithTLS serves https with httptest's self-signed certificate; see
// Cluster.CAFile.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// Request is one request a node received.
type Request struct {
	Procedure string
	Header    http.Header
}

// Cluster is a set of nodes sharing one state.
type Cluster struct {
	*State
	Nodes []*Node
	t     testing.TB
}

// Node is one fake control-plane server.
type Node struct {
	URL   string
	state *State
	srv   *httptest.Server
	mux   *http.ServeMux

	mu       sync.Mutex
	requests []Request
	fail     func(procedure string) error
	drop     bool
}

// NewCluster starts n nodes; they are closed when the test ends.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := options{pageSize: 100}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{State: newState(o.token, o.pageSize), t: t}
	for range n {
		node := &Node{state: c.State, mux: http.NewServeMux()}
		node.register()
		node.srv = httptest.NewUnstartedServer(node)
		// Refused TLS handshakes are what some tests are about; keep them
		// out of the test output.
		node.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		if o.tls {
			node.srv.StartTLS()
		} else {
			node.srv.Start()
		}
		node.URL = node.srv.URL
		t.Cleanup(node.srv.Close)
		c.Nodes = append(c.Nodes, node)
	}
	return c
}

// URLs is the nodes' URLs, comma-separated, for --server.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// CAFile writes the PEM certificate the TLS nodes present (self-signed, so
// it is its own CA) to a file and returns its path.
func (c *Cluster) CAFile() string {
	c.t.Helper()
	cert := c.Nodes[0].srv.Certificate()
	if cert == nil {
		c.t.Fatal("gwctltest: CAFile needs WithTLS")
	}
	path := filepath.Join(c.t.TempDir(), "ca.crt")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// Certificate is the node's TLS certificate (nil without WithTLS).
func (n *Node) Certificate() *x509.Certificate { return n.srv.Certificate() }

// Fail makes the node answer every call with fn's error when it is non-nil
// (after recording the request). Pass nil to heal it.
func (n *Node) Fail(fn func(procedure string) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fail = fn
}

// DropResponses makes the node handle every call (applying writes) and then
// close the connection instead of answering: a lost acknowledgement.
func (n *Node) DropResponses(drop bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop = drop
}

// Requests returns a copy of the requests the node received.
func (n *Node) Requests() []Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Request(nil), n.requests...)
}

// Unavailable is a Fail function that answers UNAVAILABLE like a node
// without a leader.
func Unavailable(string) error {
	return connect.NewError(connect.CodeUnavailable, errors.New("no leader elected"))
}

func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	drop := n.drop
	n.mu.Unlock()
	if !drop {
		n.mux.ServeHTTP(w, r)
		return
	}
	n.mux.ServeHTTP(httptest.NewRecorder(), r)
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (n *Node) register() {
	opts := connect.WithInterceptors(&nodeInterceptor{node: n})
	n.mux.Handle(adminv1connect.NewAgentServiceHandler(&agents{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewSecretServiceHandler(&secrets{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewPolicyServiceHandler(&policies{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewTokenServiceHandler(&tokens{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewBackupServiceHandler(&backups{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewClusterServiceHandler(&clusterStatus{state: n.state, node: n}, opts))
	n.mux.Handle(adminv1connect.NewUpstreamServiceHandler(&upstreams{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewToolServiceHandler(&tools{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewIdentitySourceServiceHandler(&identities{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewValueListServiceHandler(&valueLists{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewSettingServiceHandler(&settings{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewInspectionServiceHandler(&inspection{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewAdminLogServiceHandler(&adminLog{state: n.state}, opts))
	n.mux.Handle(adminv1connect.NewAccessServiceHandler(&access{state: n.state}, opts))
	// Alerts and the audit service are not faked: their calls reach the
	// node and are answered unimplemented.
	n.mux.Handle(adminv1connect.NewAlertServiceHandler(adminv1connect.UnimplementedAlertServiceHandler{}, opts))
	n.mux.Handle(auditv1connect.NewAuditServiceHandler(auditv1connect.UnimplementedAuditServiceHandler{}, opts))
}

// admit records a request and applies the token check and Fail.
func (n *Node) admit(procedure string, h http.Header) error {
	n.mu.Lock()
	n.requests = append(n.requests, Request{Procedure: procedure, Header: h.Clone()})
	fail := n.fail
	n.mu.Unlock()
	if fail != nil {
		if err := fail(procedure); err != nil {
			return err
		}
	}
	if tok := n.state.token; tok != "" && h.Get("Authorization") != "Bearer "+tok {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing or unknown token"))
	}
	return nil
}

type nodeInterceptor struct{ node *Node }

func (i *nodeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		if err := i.node.admit(procedure, req.Header()); err != nil {
			return nil, err
		}
		id := req.Header().Get("Portcullis-Request-Id")
		if !isWrite(procedure) || id == "" {
			return next(ctx, req)
		}
		return i.node.state.once(id, procedure, func() (connect.AnyResponse, error) { return next(ctx, req) })
	}
}

func (i *nodeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *nodeInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := i.node.admit(conn.Spec().Procedure, conn.RequestHeader()); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func isWrite(procedure string) bool {
	method := procedure[strings.LastIndexByte(procedure, '/')+1:]
	for _, p := range []string{"Get", "List"} {
		if strings.HasPrefix(method, p) {
			return false
		}
	}
	return true
}
