// Package tracingtest is an in-process OTLP trace receiver for tests: it
// accepts spans over OTLP/HTTP (protobuf or JSON, at /v1/traces) and
// OTLP/gRPC on two loopback listeners, and keeps them with the service
// that sent each.
package tracingtest

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions.
type Span struct {
	// Service is the resource's service.name.
	Service string
	Name    string
	Kind    tracev1.Span_SpanKind
	// TraceID, SpanID and ParentID are lower-case hex ("" for no parent).
	TraceID, SpanID, ParentID string
	// Attributes are the span's attributes as strings (see Value).
	Attributes map[string]string
	Status     *tracev1.Status
	Start, End time.Time
}

// Receiver is an OTLP trace endpoint. Safe for concurrent use.
type Receiver struct {
	http *httptest.Server
	grpc *grpc.Server
	ln   net.Listener

	mu      sync.Mutex
	spans   []Span
	discard bool
	count   int
}

// NewReceiver starts a receiver; it stops when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	return newReceiver(t, false)
}

// NewCounter starts a receiver that only counts the spans it receives
// (Count), keeping none: for benchmarks that export many.
func NewCounter(t testing.TB) *Receiver {
	t.Helper()
	return newReceiver(t, true)
}

func newReceiver(t testing.TB, discard bool) *Receiver {
	t.Helper()
	r := &Receiver{discard: discard}
	r.http = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.ln = ln
	r.grpc = grpc.NewServer()
	coltracev1.RegisterTraceServiceServer(r.grpc, grpcService{r: r})
	go func() { _ = r.grpc.Serve(ln) }()
	t.Cleanup(func() {
		r.grpc.Stop()
		r.http.Close()
	})
	return r
}

// HTTPURL is the base URL of the OTLP/HTTP endpoint (spans go to
// HTTPURL()+"/v1/traces").
func (r *Receiver) HTTPURL() string { return r.http.URL }

// GRPCURL is the URL of the OTLP/gRPC endpoint, http://host:port.
func (r *Receiver) GRPCURL() string { return "http://" + r.ln.Addr().String() }

// Spans returns the spans received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Trace returns the received spans of one trace.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Count is how many spans have been received.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func (r *Receiver) keep(req *coltracev1.ExportTraceServiceRequest) {
	if r.discard {
		n := 0
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				n += len(ss.GetSpans())
			}
		}
		r.mu.Lock()
		r.count += n
		r.mu.Unlock()
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = Value(kv.GetValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Service: service, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Attributes: map[string]string{},
					Status: s.GetStatus(),
					Start:  time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
				}
				for _, kv := range s.GetAttributes() {
					sp.Attributes[kv.GetKey()] = Value(kv.GetValue())
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.count += len(got)
	r.mu.Unlock()
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msg := &coltracev1.ExportTraceServiceRequest{}
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		err = protojson.Unmarshal(b, msg)
	} else {
		err = proto.Unmarshal(b, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.keep(msg)
	out, _ := proto.Marshal(&coltracev1.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

type grpcService struct {
	coltracev1.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcService) Export(_ context.Context, req *coltracev1.ExportTraceServiceRequest) (*coltracev1.ExportTraceServiceResponse, error) {
	g.r.keep(req)
	return &coltracev1.ExportTraceServiceResponse{}, nil
}

// Value formats an attribute value as a string (ints, floats and bools
// formatted, arrays joined with ",").
func Value(v *commonv1.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonv1.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonv1.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonv1.AnyValue_ArrayValue:
		parts := make([]string, len(x.ArrayValue.GetValues()))
		for i, e := range x.ArrayValue.GetValues() {
			parts[i] = Value(e)
		}
		return strings.Join(parts, ",")
	case *commonv1.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	}
	return ""
}
