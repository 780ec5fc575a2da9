// Package otlptest is an in-process OTLP/HTTP logs receiver for tests: it
// decodes what arrives (protobuf or JSON) and keeps it.
package otlptest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	collogsv1 "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	logsv1 "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Receiver is an OTLP/HTTP logs endpoint at URL()+"/v1/logs". Safe for
// concurrent use.
type Receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	bodies   [][]byte
	records  []*logsv1.LogRecord
	resource []*logsv1.ResourceLogs
	status   int // answered instead of 200 when set
}

// NewReceiver starts a receiver; Close stops it.
func NewReceiver() *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// URL is the receiver's base URL.
func (r *Receiver) URL() string { return r.srv.URL }

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// FailWith makes the receiver answer every request with status (0: 200).
func (r *Receiver) FailWith(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/logs" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msg := &collogsv1.ExportLogsServiceRequest{}
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		err = protojson.Unmarshal(b, msg)
	} else {
		err = proto.Unmarshal(b, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	status := r.status
	r.requests++
	if status == 0 {
		r.bodies = append(r.bodies, b)
		for _, rl := range msg.GetResourceLogs() {
			r.resource = append(r.resource, rl)
			for _, sl := range rl.GetScopeLogs() {
				r.records = append(r.records, sl.GetLogRecords()...)
			}
		}
	}
	r.mu.Unlock()
	if status != 0 {
		http.Error(w, "refused by the test", status)
		return
	}
	out, _ := proto.Marshal(&collogsv1.ExportLogsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Records returns the log records accepted so far.
func (r *Receiver) Records() []*logsv1.LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*logsv1.LogRecord(nil), r.records...)
}

// ResourceLogs returns the accepted requests' resource logs.
func (r *Receiver) ResourceLogs() []*logsv1.ResourceLogs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*logsv1.ResourceLogs(nil), r.resource...)
}

// Bodies returns the raw bodies of the accepted requests, as sent.
func (r *Receiver) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// Requests counts every request, accepted or refused.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Attributes returns a log record's attributes as strings (ints, floats
// and bools formatted, arrays joined with ",").
func Attributes(lr *logsv1.LogRecord) map[string]string {
	out := map[string]string{}
	for _, kv := range lr.GetAttributes() {
		out[kv.GetKey()] = valueString(kv.GetValue())
	}
	return out
}

func valueString(v *commonv1.AnyValue) string {
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
			parts[i] = valueString(e)
		}
		return strings.Join(parts, ",")
	}
	return ""
}
