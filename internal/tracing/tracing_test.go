package tracing_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/portcullis-gw/portcullis/internal/tracing"
)

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     tracing.Config
		wantErr string // "" for valid
	}{
		{name: "off", cfg: tracing.Config{SampleRatio: 1}},
		{name: "http default", cfg: tracing.Config{Endpoint: "http://127.0.0.1:4318", SampleRatio: 0.5}},
		{name: "grpc over TLS", cfg: tracing.Config{Endpoint: "https://collector:4317", Protocol: tracing.ProtocolGRPC}},
		{name: "unknown protocol", cfg: tracing.Config{Endpoint: "http://c:4318", Protocol: "thrift"}, wantErr: "--trace-otlp-protocol"},
		{name: "ratio above 1", cfg: tracing.Config{SampleRatio: 1.5}, wantErr: "--trace-sample-ratio"},
		{name: "ratio below 0", cfg: tracing.Config{SampleRatio: -0.1}, wantErr: "--trace-sample-ratio"},
		{name: "ratio NaN", cfg: tracing.Config{SampleRatio: math.NaN()}, wantErr: "--trace-sample-ratio"},
		{name: "a negative stage minimum", cfg: tracing.Config{StageMin: -time.Microsecond}, wantErr: "--trace-stage-min"},
		{name: "not a URL with a host", cfg: tracing.Config{Endpoint: "collector:4318"}, wantErr: "http:// or https://"},
		{name: "another scheme", cfg: tracing.Config{Endpoint: "ftp://collector"}, wantErr: "http:// or https://"},
		{name: "credentials in the URL", cfg: tracing.Config{Endpoint: "https://user:secret@collector:4318"}, wantErr: "OTEL_EXPORTER_OTLP_HEADERS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error naming %q", err, tt.wantErr)
			case tt.wantErr != "" && strings.Contains(err.Error(), "secret"):
				t.Fatalf("the error repeats the credential: %v", err)
			}
		})
	}
}

func TestNewOffIsNil(t *testing.T) {
	p, err := tracing.New(context.Background(), tracing.Config{}, tracing.Options{Service: "s"})
	if err != nil || p != nil {
		t.Fatalf("New without an endpoint = %v, %v; want nil, nil", p, err)
	}
	if p.Tracer("x") != nil || p.Shutdown(context.Background()) != nil || p.ForceFlush(context.Background()) != nil {
		t.Fatal("a nil provider must have no tracer and do nothing")
	}
}

func TestNewExportsWithResourceAndRatio(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ratio float64
		want  int
	}{
		{name: "every trace", ratio: 1, want: 10},
		{name: "none started here", ratio: 0, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			p, err := tracing.New(context.Background(), tracing.Config{Endpoint: "http://unused", SampleRatio: tt.ratio},
				tracing.Options{Service: "portcullis-dataplane", Instance: "dp1", Version: "v1", Exporter: exp, Batch: tracing.BatchOptions{Timeout: time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			tr := p.Tracer("test")
			for range 10 {
				_, span := tr.Start(context.Background(), "op")
				span.End()
			}
			if err := p.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := exp.GetSpans()
			if len(got) != tt.want {
				t.Fatalf("exported %d spans, want %d", len(got), tt.want)
			}
			if len(got) > 0 {
				attrs := map[string]string{}
				for _, kv := range got[0].Resource.Attributes() {
					attrs[string(kv.Key)] = kv.Value.String()
				}
				if attrs["service.name"] != "portcullis-dataplane" || attrs["service.instance.id"] != "dp1" || attrs["service.version"] != "v1" {
					t.Errorf("resource %v", attrs)
				}
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
