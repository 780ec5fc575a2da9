package resource_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestValidateInspectionRule(t *testing.T) {
	const (
		request  = configv1.InspectionSide_INSPECTION_SIDE_REQUEST
		response = configv1.InspectionSide_INSPECTION_SIDE_RESPONSE
		enforce  = configv1.InspectionMode_INSPECTION_MODE_ENFORCE
		block    = configv1.InspectionAction_INSPECTION_ACTION_BLOCK
		redact   = configv1.InspectionAction_INSPECTION_ACTION_REDACT
	)
	rule := func(f func(*configv1.InspectionRule)) *configv1.InspectionRule {
		r := &configv1.InspectionRule{Meta: &configv1.ResourceMeta{Name: "no-exfil"}, Mode: enforce, Side: request, Detectors: []string{"exfiltration"}}
		f(r)
		return r
	}
	rows := &configv1.InspectionRowLimit{Path: "$.rows", MaxRows: 1000}
	tests := []struct {
		name   string
		rule   *configv1.InspectionRule
		errMsg string // "" means valid
	}{
		{name: "request detectors", rule: rule(func(*configv1.InspectionRule) {})},
		{name: "kinds and patterns", rule: rule(func(r *configv1.InspectionRule) {
			r.Detectors = []string{"pii.email", "secrets"}
			r.Patterns = []string{`ACME-[0-9]{6}`}
		})},
		{name: "scoped", rule: rule(func(r *configv1.InspectionRule) {
			r.Scope = &configv1.InspectionScope{Upstream: "demo", Tool: "get_weather", Team: "payments"}
		})},
		{name: "response row ceiling", rule: rule(func(r *configv1.InspectionRule) {
			r.Side, r.Detectors, r.Rows, r.Action = response, nil, rows, block
		})},
		{name: "response redaction", rule: rule(func(r *configv1.InspectionRule) {
			r.Side, r.Detectors, r.Action, r.HoldBackBytes = response, []string{"pii"}, redact, 1<<20
		})},
		{name: "classifier", rule: rule(func(r *configv1.InspectionRule) {
			r.Detectors = nil
			r.Classifier = &configv1.InspectionClassifier{Url: "http://127.0.0.1:9/judge", Timeout: durationpb.New(time.Second), FailClosed: true}
		})},
		{name: "no mode", rule: rule(func(r *configv1.InspectionRule) { r.Mode = 0 }), errMsg: "mode: is required"},
		{name: "no side", rule: rule(func(r *configv1.InspectionRule) { r.Side = 0 }), errMsg: "side: is required"},
		{name: "looks for nothing", rule: rule(func(r *configv1.InspectionRule) { r.Detectors = nil }), errMsg: "looks for nothing"},
		{name: "unknown detector", rule: rule(func(r *configv1.InspectionRule) { r.Detectors = []string{"pii.ssn"} }), errMsg: "detectors[0]: detector pii has no kind"},
		{name: "duplicate detector", rule: rule(func(r *configv1.InspectionRule) { r.Detectors = []string{"pii", "pii"} }), errMsg: "appears more than once"},
		{name: "bad pattern", rule: rule(func(r *configv1.InspectionRule) { r.Patterns = []string{`(a`} }), errMsg: "patterns[0]: not an RE2"},
		{name: "backreference", rule: rule(func(r *configv1.InspectionRule) { r.Patterns = []string{`(a)\1`} }), errMsg: "patterns[0]"},
		{name: "empty-matching pattern", rule: rule(func(r *configv1.InspectionRule) { r.Patterns = []string{`x*`} }), errMsg: "matches the empty string"},
		{name: "tool without upstream", rule: rule(func(r *configv1.InspectionRule) { r.Scope = &configv1.InspectionScope{Tool: "t"} }), errMsg: "scope.tool: needs scope.upstream"},
		{name: "bad team", rule: rule(func(r *configv1.InspectionRule) { r.Scope = &configv1.InspectionScope{Team: "Pay Ments"} }), errMsg: "scope.team"},
		{name: "rows on requests", rule: rule(func(r *configv1.InspectionRule) { r.Rows = rows }), errMsg: "apply to responses"},
		{name: "redact on requests", rule: rule(func(r *configv1.InspectionRule) { r.Action = redact }), errMsg: "redact and mask apply to responses"},
		{name: "hold back on requests", rule: rule(func(r *configv1.InspectionRule) { r.HoldBackBytes = 10 }), errMsg: "hold_back_bytes"},
		{name: "redact a ceiling", rule: rule(func(r *configv1.InspectionRule) { r.Side, r.Rows, r.Action = response, rows, redact }), errMsg: "flags or blocks"},
		{name: "bad path", rule: rule(func(r *configv1.InspectionRule) {
			r.Side, r.Rows = response, &configv1.InspectionRowLimit{Path: "$..rows"}
		}), errMsg: "rows.path"},
		{name: "negative ceiling", rule: rule(func(r *configv1.InspectionRule) {
			r.Side, r.Rows = response, &configv1.InspectionRowLimit{Path: "$.rows", MaxRows: -1}
		}), errMsg: "rows.max_rows"},
		{name: "classifier url", rule: rule(func(r *configv1.InspectionRule) {
			r.Classifier = &configv1.InspectionClassifier{Url: "ftp://x/judge"}
		}), errMsg: "classifier.url"},
		{name: "classifier timeout", rule: rule(func(r *configv1.InspectionRule) {
			r.Classifier = &configv1.InspectionClassifier{Url: "http://x/judge", Timeout: durationpb.New(time.Minute)}
		}), errMsg: "classifier.timeout"},
		{name: "hold back too much", rule: rule(func(r *configv1.InspectionRule) {
			r.Side, r.HoldBackBytes = response, resource.MaxHoldBack+1
		}), errMsg: "hold_back_bytes"},
		{name: "too many detectors", rule: rule(func(r *configv1.InspectionRule) {
			r.Detectors = strings.Split(strings.Repeat("pii,", 17), ",")[:17]
		}), errMsg: "detectors: at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(tt.rule))
			if tt.errMsg == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.errMsg)
			}
			if !errors.Is(err, resource.ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
		})
	}
}
