package cedarschema_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestActionName(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		tool   string
		want   string
	}{
		{name: "prefixed", prefix: "github", tool: "create_issue", want: "github__create_issue"},
		{name: "no prefix", prefix: "", tool: "create_issue", want: "create_issue"},
		{name: "dotted tool", prefix: "fs", tool: "read.file", want: "fs__read.file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cedarschema.ActionName(tt.prefix, tt.tool); got != tt.want {
				t.Errorf("ActionName(%q, %q) = %q, want %q", tt.prefix, tt.tool, got, tt.want)
			}
		})
	}
}

func TestActionUID(t *testing.T) {
	got := cedarschema.ActionUID("github__create_issue").String()
	if want := `Action::"github__create_issue"`; got != want {
		t.Errorf("ActionUID = %s, want %s", got, want)
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name    string
		tools   []cedarschema.Tool
		wantErr string
	}{
		{name: "empty", tools: []cedarschema.Tool{{Action: ""}}, wantErr: "empty action name"},
		{name: "space", tools: []cedarschema.Tool{{Action: "pay send"}}, wantErr: "not allowed"},
		{name: "quote", tools: []cedarschema.Tool{{Action: `pay"send`}}, wantErr: "not allowed"},
		{name: "group name", tools: []cedarschema.Tool{{Action: cedarschema.CallToolGroup}}, wantErr: "reserved"},
		{name: "placeholder name", tools: []cedarschema.Tool{{Action: cedarschema.PlaceholderAction}}, wantErr: "not allowed"},
		{name: "too long", tools: []cedarschema.Tool{{Action: strings.Repeat("a", cedarschema.MaxActionNameLen+1)}}, wantErr: "longer than"},
		{name: "duplicate", tools: []cedarschema.Tool{{Action: "pay__send"}, {Action: "x__y"}, {Action: "pay__send"}}, wantErr: `duplicate action "pay__send"`},
		{name: "malformed input schema", tools: []cedarschema.Tool{{Action: "pay__send", InputSchema: []byte(`{"type":`)}}, wantErr: "input schema"},
		{name: "input schema nested beyond the JSON decoder", tools: []cedarschema.Tool{{Action: "pay__send", InputSchema: []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))}}, wantErr: "max depth"},
		{name: "oversized input schema", tools: []cedarschema.Tool{{Action: "pay__send", InputSchema: []byte(`{"x":"` + strings.Repeat("a", cedarschema.MaxInputSchemaBytes) + `"}`)}}, wantErr: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := cedarschema.Generate(tt.tools)
			if err == nil {
				t.Fatalf("Generate succeeded, want error containing %q; schema:\n%s", tt.wantErr, s.Cedar())
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Generate error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestGenerateAcceptsLongestName(t *testing.T) {
	name := strings.Repeat("a", cedarschema.MaxActionNameLen)
	s := mustGenerate(t, []cedarschema.Tool{{Action: name}})
	if got := s.Actions(); len(got) != 1 || got[0] != name {
		t.Errorf("Actions() = %q, want [%q]", got, name)
	}
}
