package webui

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
)

// Clients are the admin API's services as the web view calls them: the
// very handlers gwctl reaches over the network, called in-process with the
// signed-in token (edge.WithVerified), so every call passes the same role
// check, read limit and validation. Pass the context of asUser.
type Clients struct {
	Cluster   adminv1connect.ClusterServiceClient
	Dataplane adminv1connect.DataplaneServiceClient
	Agent     adminv1connect.AgentServiceClient
	Upstream  adminv1connect.UpstreamServiceClient
	Tool      adminv1connect.ToolServiceClient
	Policy    adminv1connect.PolicyServiceClient
	Access    adminv1connect.AccessServiceClient
	Audit     auditv1connect.AuditServiceClient
}

// inProcessBase is the base URL of in-process calls; no connection is
// ever made to it.
const inProcessBase = "http://in-process"

func newClients(api http.Handler) *Clients {
	hc := &http.Client{Transport: inProcess{api}}
	return &Clients{
		Cluster:   adminv1connect.NewClusterServiceClient(hc, inProcessBase),
		Dataplane: adminv1connect.NewDataplaneServiceClient(hc, inProcessBase),
		Agent:     adminv1connect.NewAgentServiceClient(hc, inProcessBase),
		Upstream:  adminv1connect.NewUpstreamServiceClient(hc, inProcessBase),
		Tool:      adminv1connect.NewToolServiceClient(hc, inProcessBase),
		Policy:    adminv1connect.NewPolicyServiceClient(hc, inProcessBase),
		Access:    adminv1connect.NewAccessServiceClient(hc, inProcessBase),
		Audit:     auditv1connect.NewAuditServiceClient(hc, inProcessBase),
	}
}

// asUser returns ctx carrying tok as the verified caller of in-process
// calls.
func asUser(ctx context.Context, tok tokenauth.Token) context.Context {
	return edge.WithVerified(ctx, tok)
}

// inProcess is an http.RoundTripper that serves requests with a handler
// instead of a connection. It suits unary calls: the response is buffered.
type inProcess struct {
	h http.Handler
}

func (p inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.RemoteAddr = "127.0.0.1:0"
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	p.h.ServeHTTP(rec, sr)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()),
		Request: req,
	}, nil
}

// recorder is a buffering http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
