package resource

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/detector"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Bounds of an inspection rule's numbers.
const (
	// MaxClassifierTimeout bounds how long a data plane waits for a
	// classifier.
	MaxClassifierTimeout = 5 * time.Second
	// MaxClassifierInput bounds the text sent to a classifier.
	MaxClassifierInput = 64 << 10
	// MaxHoldBack bounds how much of a streamed answer a rule may hold
	// back.
	MaxHoldBack = 16 << 20
)

// validateInspectionRule checks a rule on its own: its name, mode and
// side, that it looks for something, that each detector, pattern and
// JSON path is valid, and that its action fits its side and what it looks
// for. Which upstream it names is checked against the state.
func validateInspectionRule(r *configv1.InspectionRule) error {
	if err := ValidateName("meta.name", r.GetMeta().GetName()); err != nil {
		return err
	}
	if err := validateScope(r.GetScope()); err != nil {
		return err
	}
	switch r.GetMode() {
	case configv1.InspectionMode_INSPECTION_MODE_ENFORCE, configv1.InspectionMode_INSPECTION_MODE_SHADOW, configv1.InspectionMode_INSPECTION_MODE_OFF:
	default:
		return invalid("mode", "is required: enforce, shadow or off")
	}
	if _, ok := configv1.InspectionAction_name[int32(r.GetAction())]; !ok {
		return invalid("action", "unknown action %d", r.GetAction())
	}
	seen := map[string]bool{}
	for i, d := range r.GetDetectors() {
		if err := detector.ValidName(d); err != nil {
			return invalid(fmt.Sprintf("detectors[%d]", i), "%v", err)
		}
		if seen[d] {
			return invalid(fmt.Sprintf("detectors[%d]", i), "%q appears more than once", d)
		}
		seen[d] = true
	}
	for i, p := range r.GetPatterns() {
		if _, err := detector.CompilePattern(r.GetMeta().GetName(), p); err != nil {
			return invalid(fmt.Sprintf("patterns[%d]", i), "%v", err)
		}
	}
	if c := r.GetClassifier(); c != nil {
		if err := ValidateURL("classifier.url", c.GetUrl()); err != nil {
			return err
		}
		if d := c.GetTimeout().AsDuration(); c.GetTimeout() != nil && (d <= 0 || d > MaxClassifierTimeout) {
			return invalid("classifier.timeout", "must be more than 0 and at most %s (unset: 500ms)", MaxClassifierTimeout)
		}
		if n := c.GetMaxInputBytes(); n < 0 || n > MaxClassifierInput {
			return invalid("classifier.max_input_bytes", "must be between 0 (default) and %d", MaxClassifierInput)
		}
	}
	textual := len(r.GetDetectors()) > 0 || len(r.GetPatterns()) > 0
	ceilings := r.GetRows() != nil || r.GetMaxResponseBytes() != 0
	if !textual && !ceilings && r.GetClassifier() == nil {
		return invalid("rule", "looks for nothing: give detectors, patterns, a classifier, a row ceiling or a size ceiling")
	}
	redacts := r.GetAction() == configv1.InspectionAction_INSPECTION_ACTION_REDACT || r.GetAction() == configv1.InspectionAction_INSPECTION_ACTION_MASK
	switch r.GetSide() {
	case configv1.InspectionSide_INSPECTION_SIDE_REQUEST:
		switch {
		case ceilings:
			return invalid("rows", "row and size ceilings apply to responses (side response)")
		case r.GetHoldBackBytes() != 0:
			return invalid("hold_back_bytes", "holding back applies to responses (side response)")
		case redacts:
			return invalid("action", "a request rule flags (its findings reach context.findings) or blocks; redact and mask apply to responses")
		}
	case configv1.InspectionSide_INSPECTION_SIDE_RESPONSE:
		if redacts && (ceilings || r.GetClassifier() != nil) {
			return invalid("action", "redact and mask apply to detectors and patterns; a rule with a classifier or a ceiling flags or blocks (split it in two rules)")
		}
	default:
		return invalid("side", "is required: request or response")
	}
	if rows := r.GetRows(); rows != nil {
		if _, err := detector.ParsePath(rows.GetPath()); err != nil {
			return invalid("rows.path", "%v", err)
		}
		if rows.GetMaxRows() < 0 {
			return invalid("rows.max_rows", "must not be negative")
		}
	}
	if n := r.GetMaxResponseBytes(); n < 0 || n > maxRequestBytesCap {
		return invalid("max_response_bytes", "must be between 0 (none) and %d", maxRequestBytesCap)
	}
	if n := r.GetHoldBackBytes(); n < 0 || n > MaxHoldBack {
		return invalid("hold_back_bytes", "must be between 0 (none) and %d", MaxHoldBack)
	}
	return nil
}

func validateScope(s *configv1.InspectionScope) error {
	if s.GetUpstream() != "" {
		if err := ValidateName("scope.upstream", s.GetUpstream()); err != nil {
			return err
		}
	}
	if s.GetTool() != "" {
		if s.GetUpstream() == "" {
			return invalid("scope.tool", "needs scope.upstream: a tool is named as its upstream names it")
		}
		if err := ValidateToolName("scope.tool", s.GetTool()); err != nil {
			return err
		}
	}
	if s.GetTeam() != "" {
		if err := ValidateName("scope.team", s.GetTeam()); err != nil {
			return err
		}
	}
	return nil
}
