package auditredact_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditredact"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl", "jwt"},
		{"jwt inside text", "token=eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.abc please", "jwt"},
		{"bearer", "Authorization: Bearer abc.def-ghi_123", "bearer"},
		{"aws access key", "key AKIAIOSFODNN7EXAMPLE here", "aws_access_key"},
		{"aws temporary key", "ASIAIOSFODNN7EXAMPLE", "aws_access_key"},
		{"pem private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIB...", "private_key"},
		{"pem ec private key", "-----BEGIN PRIVATE KEY-----", "private_key"},
		{"github token", "ghp_0123456789abcdefghijABCDEFGHIJ", "github_token"},
		{"github fine-grained", "github_pat_11ABCDEFG0123456789_abcdefghij", "github_token"},
		{"slack token", "xoxb-1234567890-abcdefghij", "slack_token"},
		{"portcullis api key", "pck_0123456789abcdef_payer-secret", "portcullis_api_key"},
		{"portcullis join credential", "pcj1_eyJuIjoiZHAifQ", "portcullis_join_credential"},
		{"high entropy", "k8Jd92LmQpZx7VbN3cRt5YwE1uHsGf4A", "high_entropy"},
		{"basic", "Authorization: Basic YWxpY2U6aHVudGVyMg==", "basic"},
		{"basic unpadded", "basic YWxpY2U6aHVudGVyMg", "basic"},
		{"basic prose", "a basic understanding of the topic", ""},
		{"basic base64 without a colon", "Basic aGVsbG8gd29ybGQ=", ""},
		{"postgres url", "postgres://app:s3cret@db.internal:5432/orders", "url_credentials"},
		{"https url with token", "clone https://oauth2:abcdef123@gitlab.example/x.git", "url_credentials"},
		{"url without password", "ssh://git@github.com/org/repo", ""},
		{"url with empty password", "https://user:@example.com/", ""},
		{"plain url", "https://example.com/a:b@c", ""},
		{"gitlab pat", "glpat-xxxxxxxxxxxxxxxxxxxx", "gitlab_token"},
		{"gitlab deploy token", "token gldt-AbCdEf0123456789AbCd", "gitlab_token"},
		{"short stripe live key", "sk_live_51Habc", "stripe_key"},
		{"stripe test key", "key=sk_test_4eC39HqLyjWD", "stripe_key"},
		{"stripe restricted key", "rk_live_abcdef12", "stripe_key"},
		{"not stripe", "see task_live_stream and sk_test_x", ""},
		{"plain text", "please refund order 1234 for the customer", ""},
		{"hex digest", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", ""},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000", ""},
		{"long word", "Supercalifragilisticexpialidocious2", ""},
		{"short", "abc", ""},
		{"email", "alice@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditredact.Detect(tt.in); got != tt.want {
				t.Errorf("Detect(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestArguments(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		in     string
		want   string
	}{
		{name: "none", in: ``, want: ``},
		{name: "null", in: `null`, want: ``},
		{name: "kept and sorted", in: `{"b":1,"a":"x","n":12.50}`, want: `{"a":"x","b":1,"n":12.50}`},
		{name: "name at any depth", fields: []string{"password"},
			in:   `{"password":"hunter2","user":{"Password":"x","name":"bob"}}`,
			want: `{"password":"[REDACTED]","user":{"Password":"[REDACTED]","name":"bob"}}`},
		{name: "dotted path from the top", fields: []string{"card.number"},
			in:   `{"card":{"number":"4111","exp":"12/30"},"other":{"card":{"number":"5"}}}`,
			want: `{"card":{"exp":"12/30","number":"[REDACTED]"},"other":{"card":{"number":"5"}}}`},
		{name: "json pointer", fields: []string{"/card/number"},
			in:   `{"card":{"number":"4111"}}`,
			want: `{"card":{"number":"[REDACTED]"}}`},
		{name: "path through arrays", fields: []string{"items.token"},
			in:   `{"items":[{"token":"a"},{"token":"b","id":1}]}`,
			want: `{"items":[{"token":"[REDACTED]"},{"id":1,"token":"[REDACTED]"}]}`},
		{name: "object replaced whole", fields: []string{"card"},
			in:   `{"card":{"number":"4111"}}`,
			want: `{"card":"[REDACTED]"}`},
		{name: "secrets detected without configuration",
			in:   `{"q":"hello","auth":"Bearer abcdefghijkl","keys":["AKIAIOSFODNN7EXAMPLE"]}`,
			want: `{"auth":"[REDACTED:bearer]","keys":["[REDACTED:aws_access_key]"],"q":"hello"}`},
		{name: "members named like secrets, without configuration",
			in:   `{"Password":"hunter2","db-password":"x","API_KEY":"k","x-api-key":"k","apiKey":"k","client_secret":"c","Authorization":"Basic x","private_key":{"pem":"…"},"accessToken":"t","aws_secret_access_key":"s","token":["a","b"],"Cookie":"sid=1"}`,
			want: `{"API_KEY":"[REDACTED]","Authorization":"[REDACTED]","Cookie":"[REDACTED]","Password":"[REDACTED]","accessToken":"[REDACTED]","apiKey":"[REDACTED]","aws_secret_access_key":"[REDACTED]","client_secret":"[REDACTED]","db-password":"[REDACTED]","private_key":"[REDACTED]","token":"[REDACTED]","x-api-key":"[REDACTED]"}`},
		{name: "names that only look close are kept",
			in:   `{"max_tokens":256,"tokens_used":3,"key":"k1","token_count":2,"author":"bob","secretary":"ann"}`,
			want: `{"author":"bob","key":"k1","max_tokens":256,"secretary":"ann","token_count":2,"tokens_used":3}`},
		{name: "new secret shapes in values",
			in:   `{"dsn":"postgres://u:p4ss@db/x","h":"Basic YWxpY2U6aHVudGVyMg==","gl":"glpat-xxxxxxxxxxxxxxxxxxxx","s":"sk_live_51Habc"}`,
			want: `{"dsn":"[REDACTED:url_credentials]","gl":"[REDACTED:gitlab_token]","h":"[REDACTED:basic]","s":"[REDACTED:stripe_key]"}`},
		{name: "not json", in: `{"password":`, want: `"[REDACTED:invalid_json]"`},
		{name: "trailing data", in: `{} {"x":1}`, want: `"[REDACTED:invalid_json]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := auditredact.New(tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Arguments(json.RawMessage(tt.in), nil); got != tt.want {
				t.Errorf("Arguments(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestArgumentsNilRedactorDetects(t *testing.T) {
	var r *auditredact.Redactor
	got := r.Arguments(json.RawMessage(`{"k":"pck_abcdef_123456"}`), nil)
	if got != `{"k":"[REDACTED:portcullis_api_key]"}` {
		t.Fatalf("got %s", got)
	}
}

func TestArgumentsDecodedIsNotChanged(t *testing.T) {
	r, _ := auditredact.New([]string{"password"})
	decoded := map[string]any{"password": "hunter2", "n": json.Number("1")}
	got := r.Arguments(json.RawMessage(`{"password":"hunter2","n":1}`), decoded)
	if got != `{"n":1,"password":"[REDACTED]"}` {
		t.Fatalf("got %s", got)
	}
	if decoded["password"] != "hunter2" {
		t.Fatal("the shared decoded arguments were changed")
	}
}

func TestArgumentsBounded(t *testing.T) {
	r := (&auditredact.Redactor{}).WithMaxBytes(64)
	in := `{"text":"` + strings.Repeat("é", 100) + `"}`
	got := r.Arguments(json.RawMessage(in), nil)
	if len(got) > 64 {
		t.Fatalf("len %d > 64: %s", len(got), got)
	}
	if !strings.Contains(got, "[truncated: ") {
		t.Fatalf("no marker: %s", got)
	}
	if !strings.HasPrefix(got, `{"text":"é`) {
		t.Fatalf("start not kept: %s", got)
	}
}

func TestNewRejectsEmptySegment(t *testing.T) {
	for _, f := range []string{"card..number", "/card//number", "a."} {
		if _, err := auditredact.New([]string{f}); err == nil {
			t.Errorf("New(%q) accepted", f)
		}
	}
}

// FuzzArguments: whatever a caller sends, Arguments does not panic, keeps
// to its bound, gives JSON unless it cut, and keeps no value of a member
// named like a secret.
func FuzzArguments(f *testing.F) {
	f.Add(`{"password":"hunter2","card":{"number":"4111"}}`)
	f.Add(`[{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig"}]`)
	f.Add(`{"a":`)
	f.Add(`{"x":{"Client-Secret":{"v":1},"DB_PASSWORD":"p"},"dsn":"mysql://a:b@h/d"}`)
	f.Add(`{"h":"Basic YWxpY2U6aHVudGVyMg==","k":"sk_live_51Habc","g":"glpat-xxxxxxxxxxxxxxxxxxxx"}`)
	r, _ := auditredact.New([]string{"password", "card.number"})
	r = r.WithMaxBytes(256)
	f.Fuzz(func(t *testing.T, in string) {
		got := r.Arguments(json.RawMessage(in), nil)
		if len(got) > 256 {
			t.Fatalf("len %d > 256", len(got))
		}
		if len(got) < 200 && got != "" && !json.Valid([]byte(got)) {
			t.Fatalf("not JSON although not cut: %s", got)
		}
		var v any
		if json.Unmarshal([]byte(got), &v) == nil {
			if name, ok := secretNamedValue(v); ok {
				t.Fatalf("member %q, named like a secret, kept its value: %s", name, got)
			}
		}
	})
}

// secretNamedValue finds a member named like a secret (auditredact's
// documented rule) whose value is not the redaction marker.
func secretNamedValue(v any) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(k))
			for _, s := range auditredact.SecretNames() {
				if strings.HasSuffix(n, s) && x != auditredact.Redacted {
					return k, true
				}
			}
			if name, ok := secretNamedValue(x); ok {
				return name, true
			}
		}
	case []any:
		for _, x := range v {
			if name, ok := secretNamedValue(x); ok {
				return name, true
			}
		}
	}
	return "", false
}
