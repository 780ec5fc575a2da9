package resource_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestValidateValueList(t *testing.T) {
	distinct := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "v" + strconv.Itoa(i)
		}
		return out
	}
	tests := []struct {
		name   string
		list   *configv1.ValueList
		errMsg string // "" means valid
	}{
		{name: "empty list", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}}},
		{name: "some values in any order", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"zeta", "acme", "DE89 3704 0044 0532 0130 00", "Ünïcödé"}}},
		{name: "the most values", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: distinct(resource.MaxListValues)}},
		{name: "the longest value", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{strings.Repeat("a", resource.MaxListValueLen)}}},
		{name: "bad name", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "Payees"}}, errMsg: "meta.name"},
		{name: "no meta", list: &configv1.ValueList{}, errMsg: "meta: is required"},
		{name: "too many values", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: distinct(resource.MaxListValues + 1)}, errMsg: "values: at most 10000 values"},
		{name: "empty value", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"acme", ""}}, errMsg: "values[1]: must be 1-256 bytes"},
		{name: "value too long", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{strings.Repeat("a", resource.MaxListValueLen+1)}}, errMsg: "values[0]: at most 256 bytes"},
		{name: "invalid UTF-8", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"ok", "\xff\xfe"}}, errMsg: "values[1]: must be 1-256 bytes of UTF-8"},
		{name: "duplicate", list: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"acme", "globex", "acme"}}, errMsg: `values[2]: "acme" appears more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(tt.list))
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

// TestValidateNamesTheFirstBadLabel: the error names the first bad label in
// key order, so every replica records the same message (map order is
// random).
func TestValidateNamesTheFirstBadLabel(t *testing.T) {
	labels := map[string]string{}
	for i := range 20 {
		labels[strconv.Itoa(10+i)] = "\xff"
	}
	for range 20 {
		err := resource.Validate(resource.Wrap(&configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees", Labels: labels}}))
		if err == nil || !strings.Contains(err.Error(), `value of "10" must be valid UTF-8`) {
			t.Fatalf("Validate = %v, want the error about label 10", err)
		}
	}
}
