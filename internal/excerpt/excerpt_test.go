package excerpt_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/excerpt"
)

func TestText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		hide []string
		want string
	}{
		{name: "plain", in: "  upstream said:\n\tnot found  ", want: "upstream said: not found"},
		{name: "bearer echoed", in: "got Authorization: Bearer s3cr3t-value-123 from you", want: "got Authorization: [masked] from you"},
		{name: "bearer alone", in: "token was Bearer abcdef.ghi", want: "token was Bearer [masked]"},
		{name: "basic", in: "Basic dXNlcjpwYXNz rejected", want: "Basic [masked] rejected"},
		{name: "json field", in: `{"error":"bad","api_key":"k-123456","x":1}`, want: `{"error":"bad","api_key":[masked],"x":1}`},
		{name: "query parameter", in: "GET /x?access_token=abc123&y=2", want: "GET /x?access_token=[masked]&y=2"},
		{name: "cookie header", in: "Cookie: sid=1; Set-Cookie: a=b", want: "Cookie: [masked]; Set-Cookie: [masked]"},
		{name: "url userinfo", in: "dial postgres://admin:hunter2@db.internal:5432/x failed", want: "dial postgres://[masked]@db.internal:5432/x failed"},
		{name: "known value", in: "echo: xyz-the-secret-xyz", hide: []string{"the-secret"}, want: "echo: xyz-[masked]-xyz"},
		{name: "short values are not hidden", in: "abc", hide: []string{"ab"}, want: "abc"},
		{name: "non ascii", in: "caf\u00e9 \x00\x01 ok", want: "caf? ? ok"},
		{name: "escape sequences", in: "\x1b[31mred\x1b[0m", want: "?[31mred?[0m"},
		{name: "cut", in: strings.Repeat("a", 50), n: 10, want: "aaaaaaa..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := excerpt.Text(tt.in, tt.n, tt.hide...); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzText(f *testing.F) {
	f.Add("Authorization: Bearer abc\r\n\x00\xff", "abc")
	f.Add(strings.Repeat("é", 300), "")
	f.Fuzz(func(t *testing.T, in, hide string) {
		got := excerpt.Text(in, 64, hide)
		if len(got) > 64 {
			t.Fatalf("len %d > 64", len(got))
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Fatalf("byte %#x at %d is not printable ASCII: %q", got[i], i, got)
			}
		}
		// An alphanumeric value cannot be formed anew by masking (every
		// mark has brackets or spaces), so it must not appear.
		if len(hide) >= 8 && alnum(hide) && strings.Contains(got, hide) {
			t.Fatalf("hidden value %q shown in %q", hide, got)
		}
	})
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
