package stages_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name        string
		args        string
		validator   func(any) error
		wantArgs    any // what the validator must see
		wantReason  pipeline.Reason
		wantMessage string
	}{
		{name: "valid", args: `{"n": 1.50}`, wantArgs: map[string]any{"n": json.Number("1.50")}},
		{name: "absent arguments are an empty object", args: ``, wantArgs: map[string]any{}},
		{name: "null arguments are an empty object", args: `null`, wantArgs: map[string]any{}},
		{name: "invalid", args: `{"x": 1}`, validator: func(any) error { return errBad },
			wantReason: pipeline.ReasonInvalidArguments, wantMessage: "the arguments do not match the input schema of up__write: bad arguments at arguments/x"},
		{name: "validator message bounded", args: `{}`, validator: func(any) error { return &longError{} },
			wantReason: pipeline.ReasonInvalidArguments, wantMessage: "…"},
		{name: "not JSON", args: `{"x":`, wantReason: pipeline.ReasonInvalidArguments, wantMessage: "the arguments are not valid JSON"},
		{name: "trailing data", args: `{} {}`, wantReason: pipeline.ReasonInvalidArguments, wantMessage: "the arguments are not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(newFake(), writeTool.Action)
			call.Arguments = json.RawMessage(tt.args)
			var seen any
			call.Target = toolTarget(writeTool)
			call.Target.Tool.ValidateArguments = func(args any) error {
				seen = args
				if tt.validator != nil {
					return tt.validator(args)
				}
				return nil
			}
			term := &terminal{}
			_, err := stages.Validate{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			if term.reached != (tt.wantReason == "") {
				t.Errorf("next reached = %v", term.reached)
			}
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.wantMessage)
			}
			if len(msg) > 1200 {
				t.Errorf("message is %d bytes", len(msg))
			}
			if tt.wantArgs != nil && !reflect.DeepEqual(seen, tt.wantArgs) {
				t.Errorf("validator saw %#v, want %#v", seen, tt.wantArgs)
			}
		})
	}
}

func TestValidateWithoutTool(t *testing.T) {
	term := &terminal{}
	_, err := stages.Validate{}.Handle(context.Background(), fakeCall(newFake(), writeTool.Action), term.handle)
	wantRefusal(t, err, pipeline.ReasonInternal)
	if term.reached {
		t.Error("next reached without a resolved tool")
	}
}

type longError struct{}

func (*longError) Error() string { return strings.Repeat("x", 10000) }
