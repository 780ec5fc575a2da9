package mcp

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestUpdatesWhileASubscriptionIsPending: an update that arrives before
// the upstream's answer to the subscription is held, and reaches the
// subscribers (under their names) once the answer confirms it; it is
// dropped with a subscription that fails; past maxHeldUpdates distinct
// URIs the subscribers are told of the followed URI itself.
func TestUpdatesWhileASubscriptionIsPending(t *testing.T) {
	const followed = "demo://invoices"
	many := make([]string, 0, maxHeldUpdates+1)
	for i := range maxHeldUpdates + 1 {
		many = append(many, fmt.Sprintf("%s/%d", followed, i))
	}
	tests := []struct {
		name    string
		updates []string
		err     error
		want    []string // names told, sorted
	}{
		{"the followed URI, twice", []string{followed, followed}, nil, []string{"demo__" + followed}},
		{"a sub-resource", []string{followed + "/7"}, nil, []string{"demo__" + followed + "/7"}},
		{"another resource", []string{"demo://readme"}, nil, nil},
		{"the subscription fails", []string{followed}, errors.New("refused"), nil},
		{"too many to hold", many, nil, []string{"demo__" + followed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubscriptions()
			sub := &Subscriber{Key: "k", Agent: "a", Name: "demo__" + followed, Prefix: "demo"}
			e, first, joined, err := s.add("demo", followed, sub)
			if err != nil || !first || !joined {
				t.Fatalf("add: %v %v %v", first, joined, err)
			}
			for _, uri := range tt.updates {
				if ds := s.targets("demo", uri); len(ds) != 0 {
					t.Errorf("update of %s delivered while pending: %v", uri, ds)
				}
			}
			registered, held := s.settle("demo", followed, e, nil, tt.err)
			if registered != (tt.err == nil) {
				t.Errorf("registered %v after %v", registered, tt.err)
			}
			var got []string
			for _, d := range held {
				if d.sub != sub {
					t.Errorf("delivery to %+v", d.sub)
				}
				got = append(got, d.name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("held updates %v, want %v", got, tt.want)
			}
			// Once confirmed, updates go straight through.
			if tt.err == nil {
				if ds := s.targets("demo", followed); len(ds) != 1 || ds[0].name != "demo__"+followed {
					t.Errorf("update after confirmation: %v", ds)
				}
			}
		})
	}
}
