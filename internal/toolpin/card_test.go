package toolpin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/toolpin"
)

const card = `{"name":"Travel","description":"Books trips.","version":"1.0.0",
 "supportedInterfaces":[{"url":"http://agent.internal:9000/rpc","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],
 "capabilities":{"streaming":true},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],
 "skills":[{"id":"search","name":"Search","description":"Finds trips.","tags":[]},{"id":"book","name":"Book","description":"Books.","tags":[]}]}`

func TestHashCardCoversEveryMember(t *testing.T) {
	want, err := toolpin.HashCard([]byte(card))
	if err != nil {
		t.Fatal(err)
	}
	same := strings.NewReplacer(`{"name"`, "{ \"name\" ", `],"capabilities":`, "] ,\n\t\"capabilities\" : ").Replace(card)
	if got, err := toolpin.HashCard([]byte(same)); err != nil || got != want {
		t.Errorf("whitespace changed the hash: %s, %v", got, err)
	}
	tests := []struct{ name, old, new string }{
		{"interface url", `agent.internal:9000`, `evil.example:9000`},
		{"skill", `"id":"book"`, `"id":"book2"`},
		{"capabilities", `"streaming":true`, `"streaming":true,"pushNotifications":true`},
		{"unknown member", `"version":"1.0.0"`, `"version":"1.0.0","signatures":[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toolpin.HashCard([]byte(strings.Replace(card, tt.old, tt.new, 1)))
			if err != nil || got == want {
				t.Errorf("hash did not change: %s, %v", got, err)
			}
		})
	}
}

func TestCardSkills(t *testing.T) {
	ids, err := toolpin.CardSkills([]byte(card))
	if err != nil || !slices.Equal(ids, []string{"search", "book"}) {
		t.Fatalf("CardSkills = %v, %v", ids, err)
	}
	bad := []struct{ name, card string }{
		{"not an object", `[]`},
		{"no name", `{"skills":[]}`},
		{"skill without id", `{"name":"x","skills":[{"name":"s"}]}`},
		{"duplicate skill", `{"name":"x","skills":[{"id":"a"},{"id":"a"}]}`},
		{"skills not a list", `{"name":"x","skills":{}}`},
		{"long id", `{"name":"x","skills":[{"id":"` + strings.Repeat("a", toolpin.MaxSkillID+1) + `"}]}`},
		{"too deep", `{"name":"x","d":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := toolpin.CardSkills([]byte(tt.card)); err == nil {
				t.Errorf("CardSkills accepted %s", tt.card)
			}
			if _, err := toolpin.HashCard([]byte(tt.card)); err == nil {
				t.Errorf("HashCard accepted %s", tt.card)
			}
		})
	}
}
