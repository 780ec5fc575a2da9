package credential_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/credential"
)

func TestMintParseVerify(t *testing.T) {
	m, err := credential.New(credential.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Text, "pck_"+m.ID+"_") {
		t.Fatalf("text %q does not embed id %q", m.Text, m.ID)
	}
	id, ok := credential.Parse(credential.APIKey, m.Text)
	if !ok || id != m.ID {
		t.Fatalf("Parse = %q, %v; want %q, true", id, ok, m.ID)
	}
	if !credential.Verify(m.Text, m.SHA256) {
		t.Fatal("Verify refused the minted text")
	}
	other, _ := credential.New(credential.APIKey)
	if credential.Verify(other.Text, m.SHA256) {
		t.Fatal("Verify accepted another key")
	}
	if credential.Verify(m.Text, m.SHA256[:31]) {
		t.Fatal("Verify accepted a truncated digest")
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, text string
		kind       credential.Kind
	}{
		{"empty", "", credential.APIKey},
		{"wrong kind", "pct_0123456789abcdef_secret", credential.APIKey},
		{"no secret", "pck_0123456789abcdef_", credential.APIKey},
		{"short id", "pck_0123_secret", credential.APIKey},
		{"upper id", "pck_0123456789ABCDEF_secret", credential.APIKey},
		{"not hex", "pck_0123456789abcdeg_secret", credential.APIKey},
		{"too long", "pck_0123456789abcdef_" + strings.Repeat("a", 200), credential.APIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := credential.Parse(tt.kind, tt.text); ok {
				t.Fatalf("Parse(%q) accepted", tt.text)
			}
		})
	}
}

func TestDeriveIsDeterministicAndKeyed(t *testing.T) {
	key := []byte("server-only key")
	a := credential.Derive(credential.AdminToken, key, "tok1", "req-1")
	b := credential.Derive(credential.AdminToken, key, "tok1", "req-1")
	if a.ID != b.ID || a.Text != b.Text {
		t.Fatal("same inputs gave different credentials")
	}
	if id, ok := credential.Parse(credential.AdminToken, a.Text); !ok || id != a.ID || !credential.Verify(a.Text, a.SHA256) {
		t.Fatalf("derived credential does not parse or verify: %q", a.Text)
	}
	for _, other := range []credential.Minted{
		credential.Derive(credential.AdminToken, key, "tok1", "req-2"),
		credential.Derive(credential.AdminToken, []byte("other key"), "tok1", "req-1"),
		credential.Derive(credential.APIKey, key, "tok1", "req-1"),
		credential.Derive(credential.AdminToken, key, "tok1req-1"),
	} {
		if other.Text == a.Text || other.ID == a.ID {
			t.Fatalf("different inputs gave the same credential: %q", other.Text)
		}
	}
}
