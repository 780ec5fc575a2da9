package adminapi_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestInspectionRules(t *testing.T) {
	n := startNode(t)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	operator, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	rule := func(name string, edit func(*configv1.InspectionRule)) *configv1.InspectionRule {
		r := &configv1.InspectionRule{
			Meta: &configv1.ResourceMeta{Name: name},
			Mode: configv1.InspectionMode_INSPECTION_MODE_ENFORCE, Side: configv1.InspectionSide_INSPECTION_SIDE_REQUEST,
			Detectors: []string{"exfiltration"},
		}
		if edit != nil {
			edit(r)
		}
		return r
	}

	_, err := n.rules.CreateInspectionRule(ctx(t), req(auditor, &adminv1.CreateInspectionRuleRequest{Rule: rule("by-auditor", nil)}))
	wantCode(t, err, connect.CodePermissionDenied, "token lacks role operator")

	created, err := n.rules.CreateInspectionRule(ctx(t), req(operator, &adminv1.CreateInspectionRuleRequest{Rule: rule("no-exfil", nil)}))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Msg.GetRule().GetMeta().GetRevision() == 0 {
		t.Error("created rule has no revision")
	}

	tests := []struct {
		name string
		rule *configv1.InspectionRule
		code connect.Code
		msg  string
	}{
		{"unknown detector", rule("bad", func(r *configv1.InspectionRule) { r.Detectors = []string{"pii.ssn"} }), connect.CodeInvalidArgument, "detectors[0]"},
		{"pattern that is not RE2", rule("bad", func(r *configv1.InspectionRule) { r.Patterns = []string{`(?=x)`} }), connect.CodeInvalidArgument, "patterns[0]"},
		{"scope on a missing upstream", rule("bad", func(r *configv1.InspectionRule) { r.Scope = &configv1.InspectionScope{Upstream: "ghost"} }), connect.CodeFailedPrecondition, `upstream "ghost" does not exist`},
		{"classifier at a metadata address", rule("bad", func(r *configv1.InspectionRule) {
			r.Classifier = &configv1.InspectionClassifier{Url: "http://169.254.169.254/judge"}
		}), connect.CodeInvalidArgument, "classifier.url"},
		{"no rule", nil, connect.CodeInvalidArgument, "rule is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.rules.CreateInspectionRule(ctx(t), req(operator, &adminv1.CreateInspectionRuleRequest{Rule: tt.rule}))
			wantCode(t, err, tt.code, tt.msg)
		})
	}

	shadow := rule("no-exfil", func(r *configv1.InspectionRule) { r.Mode = configv1.InspectionMode_INSPECTION_MODE_SHADOW })
	if _, err := n.rules.UpdateInspectionRule(ctx(t), req(operator, &adminv1.UpdateInspectionRuleRequest{Rule: shadow})); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := n.rules.GetInspectionRule(ctx(t), req(auditor, &adminv1.GetInspectionRuleRequest{Name: "no-exfil"}, "Portcullis-Consistency", "linearizable"))
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Msg.GetRule().GetMode() != configv1.InspectionMode_INSPECTION_MODE_SHADOW {
		t.Errorf("mode after update = %v, want shadow", got.Msg.GetRule().GetMode())
	}
	list, err := n.rules.ListInspectionRules(ctx(t), req(auditor, &adminv1.ListInspectionRulesRequest{}))
	if err != nil || len(list.Msg.GetRules()) != 1 {
		t.Fatalf("list: %v, %d rules", err, len(list.Msg.GetRules()))
	}
	_, err = n.rules.DeleteInspectionRule(ctx(t), req(auditor, &adminv1.DeleteInspectionRuleRequest{Name: "no-exfil"}))
	wantCode(t, err, connect.CodePermissionDenied, "token lacks role operator")
	if _, err := n.rules.DeleteInspectionRule(ctx(t), req(operator, &adminv1.DeleteInspectionRuleRequest{Name: "no-exfil"})); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = n.rules.GetInspectionRule(ctx(t), req(auditor, &adminv1.GetInspectionRuleRequest{Name: "no-exfil"}, "Portcullis-Consistency", "linearizable"))
	wantCode(t, err, connect.CodeNotFound)
}
