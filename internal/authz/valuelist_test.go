package authz_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// payeePolicies permit the payments team to pay only counterparties on the
// "payees" list, and always forbid paying anyone on "blocked".
const payeePolicies = `@id("listed")
permit(principal in Team::"payments", action == Action::"pay__pay", resource)
when { List::"payees".values.contains(context.arguments.to) };
@id("blocked")
forbid(principal, action == Action::"pay__pay", resource)
when { List::"blocked".values.contains(context.arguments.to) };
`

// payeeSnapshot is the fixture with payeePolicies and the two lists at
// version.
func payeeSnapshot(version uint64, payees, blocked []string) *snapshotv1.Snapshot {
	s := authztest.Snapshot()
	s.Version = version
	s.PolicySets[0].Source = payeePolicies
	s.ValueLists = []*configv1.ValueList{
		{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: payees},
		{Meta: &configv1.ResourceMeta{Name: "blocked"}, Values: blocked},
	}
	return s
}

func TestDecideValueLists(t *testing.T) {
	v1 := authztest.Compile(t, payeeSnapshot(1, []string{"acme", "globex"}, []string{"evil"}))
	pay := func(e *authz.Engine, to string) (bool, []string) {
		t.Helper()
		// Twice: the second answer comes from the decision cache.
		var allowed bool
		var policies []string
		for range 2 {
			d := e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, `{"amount": 10, "to": "`+to+`"}`))
			if len(d.Errors) > 0 {
				t.Fatalf("pay %s: errors %q", to, d.Errors)
			}
			allowed, policies = d.Allowed, d.Policies
		}
		return allowed, policies
	}
	if ok, pol := pay(v1, "acme"); !ok || len(pol) != 1 || pol[0] != "payments/listed" {
		t.Errorf("paying a listed payee: allowed %v by %q, want allowed by payments/listed", ok, pol)
	}
	if ok, _ := pay(v1, "initech"); ok {
		t.Error("paying an unlisted payee was allowed")
	}

	// The list changes: a new version, so a new compiled config and cache.
	v2 := authztest.Compile(t, payeeSnapshot(2, []string{"acme", "globex", "initech"}, []string{"evil", "acme"}))
	if ok, _ := pay(v2, "initech"); !ok {
		t.Error("paying a payee added in the new version was refused")
	}
	if ok, pol := pay(v2, "acme"); ok || len(pol) != 1 || pol[0] != "payments/blocked" {
		t.Errorf("paying a payee now blocked: allowed %v by %q, want denied by payments/blocked", ok, pol)
	}
	// The old version still answers as before: its cache is its own.
	if ok, _ := pay(v1, "initech"); ok {
		t.Error("the old version's decision changed")
	}
}

func TestCompileRefusesDanglingListReferences(t *testing.T) {
	s := payeeSnapshot(3, []string{"acme"}, nil)
	s.ValueLists = s.ValueLists[:1] // "blocked" is missing
	_, err := authz.Compile(s)
	var cerr *authz.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Compile() = %v, want an *authz.Error", err)
	}
	msg := cerr.Error()
	for _, want := range []string{`policy set "payments"`, `payments/blocked`, `value list "blocked", which is missing from the snapshot`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}

	dup := payeeSnapshot(4, nil, nil)
	dup.ValueLists = append(dup.ValueLists, &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}})
	if _, err := authz.Compile(dup); err == nil || !strings.Contains(err.Error(), `value list "payees" appears twice`) {
		t.Errorf("Compile() of a snapshot with a list twice = %v", err)
	}
}
