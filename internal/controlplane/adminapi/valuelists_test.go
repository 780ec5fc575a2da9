package adminapi_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

const listedPolicy = `permit(principal, action in Action::"call_tool", resource) when { List::"payees".values.contains("acme") };`

func TestValueLists(t *testing.T) {
	n := startNode(t)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	operator, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)

	t.Run("roles", func(t *testing.T) {
		_, err := n.lists.CreateValueList(ctx(t), req(auditor, &adminv1.CreateValueListRequest{ValueList: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "by-auditor"}}}))
		wantCode(t, err, connect.CodePermissionDenied, "token lacks role operator (it has auditor)")
		_, err = n.lists.AddValues(ctx(t), req(auditor, &adminv1.AddValuesRequest{Name: "payees", Values: []string{"x"}}))
		wantCode(t, err, connect.CodePermissionDenied, "token lacks role operator")
		if _, err := n.lists.CreateValueList(ctx(t), req(operator, &adminv1.CreateValueListRequest{ValueList: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"globex", "acme"}}})); err != nil {
			t.Fatalf("operator create: %v", err)
		}
		got, err := n.lists.GetValueList(ctx(t), req(auditor, &adminv1.GetValueListRequest{Name: "payees"}))
		if err != nil {
			t.Fatalf("auditor get: %v", err)
		}
		if v := got.Msg.GetValueList().GetValues(); !slices.Equal(v, []string{"acme", "globex"}) {
			t.Errorf("values = %q, want sorted [acme globex]", v)
		}
		if _, err := n.lists.ListValueLists(ctx(t), req(auditor, &adminv1.ListValueListsRequest{})); err != nil {
			t.Errorf("auditor list: %v", err)
		}
	})

	t.Run("add and remove", func(t *testing.T) {
		res, err := n.lists.AddValues(ctx(t), req(operator, &adminv1.AddValuesRequest{Name: "payees", Values: []string{"initech", "acme", "initech"}}))
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Msg.GetValueList().GetValues(); !slices.Equal(v, []string{"acme", "globex", "initech"}) {
			t.Errorf("after add: %q", v)
		}
		res2, err := n.lists.RemoveValues(ctx(t), req(operator, &adminv1.RemoveValuesRequest{Name: "payees", Values: []string{"globex", "never-there"}}))
		if err != nil {
			t.Fatal(err)
		}
		if v := res2.Msg.GetValueList().GetValues(); !slices.Equal(v, []string{"acme", "initech"}) {
			t.Errorf("after remove: %q", v)
		}
		_, err = n.lists.AddValues(ctx(t), req(operator, &adminv1.AddValuesRequest{Name: "payees", Values: []string{""}}))
		wantCode(t, err, connect.CodeInvalidArgument, "values[0]")
		_, err = n.lists.AddValues(ctx(t), req(operator, &adminv1.AddValuesRequest{Name: "ghost", Values: []string{"x"}}))
		wantCode(t, err, connect.CodeNotFound, `value_list "ghost" does not exist`)
	})

	t.Run("concurrent adds are all kept", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				_, err := n.lists.AddValues(ctx(t), req(operator, &adminv1.AddValuesRequest{Name: "payees", Values: []string{fmt.Sprintf("c%d", i)}}))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent add: %v", err)
			}
		}
		got, err := n.lists.GetValueList(ctx(t), req(auditor, &adminv1.GetValueListRequest{Name: "payees"}, "Portcullis-Consistency", "linearizable"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			if !slices.Contains(got.Msg.GetValueList().GetValues(), fmt.Sprintf("c%d", i)) {
				t.Errorf("value c%d was lost: %q", i, got.Msg.GetValueList().GetValues())
			}
		}
	})

	t.Run("references", func(t *testing.T) {
		_, err := n.policies.ApplyPolicySet(ctx(t), req(operator, &adminv1.ApplyPolicySetRequest{Name: "listed", Source: `permit(principal, action in Action::"call_tool", resource) when { List::"ghost".values.contains("x") };`}))
		wantCode(t, err, connect.CodeFailedPrecondition, `value list "ghost", which does not exist`, "gwctl valuelist create ghost")
		if _, err := n.policies.ApplyPolicySet(ctx(t), req(operator, &adminv1.ApplyPolicySetRequest{Name: "listed", Source: listedPolicy})); err != nil {
			t.Fatalf("apply a policy on an existing list: %v", err)
		}
		_, err = n.lists.DeleteValueList(ctx(t), req(operator, &adminv1.DeleteValueListRequest{Name: "payees"}))
		wantCode(t, err, connect.CodeFailedPrecondition, `value list "payees" is used by policy set "listed"`)
	})
}
