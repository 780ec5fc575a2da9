package linearize_test

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/portcullis-gw/portcullis/test/harness/linearize"
)

// TestModelRejectsStaleRead makes sure the model can fail: a read that
// starts after a write of version 1 returned must not see 0.
func TestModelRejectsStaleRead(t *testing.T) {
	w := linearize.Input{Key: "k", Write: true, Value: "a"}
	r := linearize.Input{Key: "k"}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{name: "read after write sees it", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: linearize.Output{Version: 1}, Call: 0, Return: 10},
			{ClientId: 1, Input: r, Output: linearize.Output{Version: 1}, Call: 20, Return: 30},
		}},
		{name: "stale read", want: false, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: linearize.Output{Version: 1}, Call: 0, Return: 10},
			{ClientId: 1, Input: r, Output: linearize.Output{Version: 0}, Call: 20, Return: 30},
		}},
		{name: "pending write may have happened", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: linearize.Output{Unknown: true}, Call: 0, Return: 100},
			{ClientId: 1, Input: r, Output: linearize.Output{Version: 1}, Call: 20, Return: 30},
		}},
		{name: "pending write may not have happened", want: true, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: linearize.Output{Unknown: true}, Call: 0, Return: 100},
			{ClientId: 1, Input: r, Output: linearize.Output{Version: 0}, Call: 20, Return: 30},
		}},
		{name: "version skipped", want: false, history: []porcupine.Operation{
			{ClientId: 0, Input: w, Output: linearize.Output{Version: 2}, Call: 0, Return: 10},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(linearize.Model, tt.history); got != tt.want {
				t.Errorf("linearizable = %v, want %v", got, tt.want)
			}
		})
	}
}
