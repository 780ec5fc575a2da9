package cedarschema_test

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestGenerateSchemaText(t *testing.T) {
	text := string(mustGenerate(t, fixtureTools()).Cedar())
	tests := []struct {
		name     string
		fragment string
	}{
		{name: "agent with tags", fragment: "entity Agent in Team {\n\tname: String,\n\towner: String\n} tags String;"},
		{name: "user with optional email", fragment: "entity User in Group {\n\temail?: String,\n\tname: String\n} tags String;"},
		{name: "tool in upstream", fragment: "entity Tool in Upstream {\n\tname: String,\n\treadOnly: Bool,\n\tversion: Long\n};"},
		{name: "upstream", fragment: "entity Upstream {\n\tname: String,\n\tprotocol: String\n};"},
		{name: "team", fragment: "entity Team;"},
		{name: "group", fragment: "entity Group;"},
		{name: "call_tool group", fragment: "action call_tool;"},
		{name: "issue action", fragment: "action github__create_issue in call_tool appliesTo {\n\tprincipal: Agent,\n\tresource: Tool,"},
		{name: "issue arguments", fragment: "\t\targuments: {\n\t\t\tbody?: String,\n\t\t\tlabels?: Set<String>,\n\t\t\ttitle: String\n\t\t},"},
		{name: "pay arguments", fragment: "\t\targuments: {\n" +
			"\t\t\tamount: Long,\n" +
			"\t\t\tcurrency: String,\n" +
			"\t\t\tmemo?: String,\n" +
			"\t\t\t\"odd-name\"?: String,\n" +
			"\t\t\tprice: decimal,\n" +
			"\t\t\trecipient: {\n\t\t\t\tiban: String,\n\t\t\t\tname?: String\n\t\t\t},\n" +
			"\t\t\ttags?: Set<String>,\n" +
			"\t\t\turgent?: Bool\n" +
			"\t\t},"},
		{name: "common context", fragment: "\t\tdegraded: Bool,\n\t\tfindings: Set<String>,\n\t\tprotocol: String,\n\t\tsourceIp: ipaddr,\n\t\ttime: datetime,\n\t\tuser?: User\n\t}\n};"},
		{name: "pin annotations", fragment: "@tool(\"send\")\n@upstream(\"pay\")\naction pay__send in call_tool"},
		{name: "placeholder", fragment: "action \"portcullis:placeholder\" in call_tool appliesTo {"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(text, tt.fragment) {
				t.Errorf("schema lacks fragment\n%s\nschema:\n%s", tt.fragment, text)
			}
		})
	}
	if strings.Contains(text, "namespace") {
		t.Errorf("schema declares a namespace:\n%s", text)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	tools := fixtureTools()
	first := mustGenerate(t, tools)
	firstJSON, err := first.JSON()
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	reversed := slices.Clone(tools)
	slices.Reverse(reversed)
	for i := range 20 {
		in := tools
		if i%2 == 1 {
			in = reversed
		}
		s := mustGenerate(t, in)
		if !bytes.Equal(s.Cedar(), first.Cedar()) {
			t.Fatalf("run %d: Cedar text differs:\n%s\nvs\n%s", i, s.Cedar(), first.Cedar())
		}
		j, err := s.JSON()
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if !bytes.Equal(j, firstJSON) {
			t.Fatalf("run %d: JSON differs:\n%s\nvs\n%s", i, j, firstJSON)
		}
	}
	if got, want := first.Actions(), []string{"github__create_issue", "pay__send"}; !slices.Equal(got, want) {
		t.Errorf("Actions() = %q, want %q", got, want)
	}
}

// The Cedar text is what `gwctl policy schema` prints; it must resolve to
// the same schema as the JSON form.
func TestGenerateCedarTextRoundTrips(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	var fromCedar schema.Schema
	fromCedar.SetFilename("schema.cedarschema")
	if err := fromCedar.UnmarshalCedar(s.Cedar()); err != nil {
		t.Fatalf("Cedar text does not parse: %v\n%s", err, s.Cedar())
	}
	gotResolved, err := fromCedar.Resolve()
	if err != nil {
		t.Fatalf("Cedar text does not resolve: %v", err)
	}
	j, err := s.JSON()
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	var fromJSON schema.Schema
	if err := fromJSON.UnmarshalJSON(j); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	wantResolved, err := fromJSON.Resolve()
	if err != nil {
		t.Fatalf("JSON does not resolve: %v", err)
	}
	if !reflect.DeepEqual(gotResolved, wantResolved) {
		t.Errorf("Cedar text and JSON resolve differently:\n%+v\nvs\n%+v", gotResolved, wantResolved)
	}
}

func TestGenerateWithoutTools(t *testing.T) {
	s := mustGenerate(t, nil)
	text := string(s.Cedar())
	for _, fragment := range []string{"action call_tool;", `action "portcullis:placeholder" in call_tool`, "entity Agent in Team"} {
		if !strings.Contains(text, fragment) {
			t.Errorf("schema lacks %q:\n%s", fragment, text)
		}
	}
	if got := s.Actions(); len(got) != 0 {
		t.Errorf("Actions() = %q, want none", got)
	}
}

func TestActionEntities(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	got := s.ActionEntities()
	group := cedarschema.ActionUID(cedarschema.CallToolGroup)
	tests := []struct {
		name        string
		action      string
		wantParents []types.EntityUID
	}{
		{name: "group", action: cedarschema.CallToolGroup, wantParents: nil},
		{name: "placeholder", action: cedarschema.PlaceholderAction, wantParents: []types.EntityUID{group}},
		{name: "pay", action: "pay__send", wantParents: []types.EntityUID{group}},
		{name: "issue", action: "github__create_issue", wantParents: []types.EntityUID{group}},
		{name: "model group", action: cedarschema.LLMCompleteGroup, wantParents: nil},
		{name: "model call", action: cedarschema.ActionLLMComplete, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.LLMCompleteGroup)}},
		{name: "send group", action: cedarschema.A2ASendGroup, wantParents: nil},
		{name: "read group", action: cedarschema.A2AReadGroup, wantParents: nil},
		{name: "send message", action: cedarschema.ActionA2ASendMessage, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.A2ASendGroup)}},
		{name: "cancel task", action: cedarschema.ActionA2ACancelTask, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.A2ASendGroup)}},
		{name: "get task", action: cedarschema.ActionA2AGetTask, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.A2AReadGroup)}},
		{name: "list tasks", action: cedarschema.ActionA2AListTasks, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.A2AReadGroup)}},
		{name: "subscribe", action: cedarschema.ActionA2ASubscribeTask, wantParents: []types.EntityUID{cedarschema.ActionUID(cedarschema.A2AReadGroup)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := got[cedarschema.ActionUID(tt.action)]
			if !ok {
				t.Fatalf("no entity for %s", tt.action)
			}
			if !e.Parents.Equal(types.NewEntityUIDSet(tt.wantParents...)) {
				t.Errorf("parents of %s = %v, want %v", tt.action, e.Parents, tt.wantParents)
			}
		})
	}
	if len(got) != len(tests) {
		t.Errorf("got %d action entities, want %d", len(got), len(tests))
	}
}

// The schema hands out copies: callers cannot corrupt the shared text.
func TestSchemaTextIsCopied(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	text := s.Cedar()
	want := string(text)
	for i := range text {
		text[i] = 'x'
	}
	if got := string(s.Cedar()); got != want {
		t.Errorf("Cedar() changed after caller mutation")
	}
}

// Run with -race: a generated schema is shared by every request goroutine.
func TestSchemaConcurrentUse(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	want := string(s.Cedar())
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 8 {
		wg.Go(func() {
			if _, err := s.ParsePolicies("payments", "payments.cedar", []byte(paymentsPolicies)); err != nil {
				errs <- err
			}
			if string(s.Cedar()) != want {
				errs <- errors.New("Cedar text changed")
			}
			if _, err := s.JSON(); err != nil {
				errs <- err
			}
			_ = s.ActionEntities()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A cluster that has not turned A2A on validates policies without it.
func TestGenerateWithoutRemoteAgents(t *testing.T) {
	s, err := cedarschema.Generate(fixtureTools(), cedarschema.WithoutRemoteAgents())
	if err != nil {
		t.Fatal(err)
	}
	src := `permit(principal, action in Action::"a2a_send", resource);`
	if _, err := s.ParsePolicies("main", "main.cedar", []byte(src)); err == nil {
		t.Errorf("a schema without remote agents accepted %s", src)
	}
	if _, ok := s.ActionEntities()[cedarschema.ActionUID(cedarschema.ActionA2ASendMessage)]; ok {
		t.Errorf("a schema without remote agents declares %s", cedarschema.ActionA2ASendMessage)
	}
	full := mustGenerate(t, fixtureTools())
	if _, err := full.ParsePolicies("main", "main.cedar", []byte(src)); err != nil {
		t.Errorf("the full schema refused %s: %v", src, err)
	}
}
