package webui

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testKeys(t testing.TB, seed byte) keys {
	t.Helper()
	k, err := newKeys(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testSession(t testing.TB) session {
	t.Helper()
	s, err := newSession("0123456789abcdef", testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSessionRoundTrip(t *testing.T) {
	k := testKeys(t, 1)
	s := testSession(t)
	got, err := k.parseSession(k.encode(s), testNow)
	if err != nil {
		t.Fatalf("parse a fresh session: %v", err)
	}
	if got != s {
		t.Fatalf("parsed %+v, want %+v", got, s)
	}
	if other := testSession(t); other.Nonce == s.Nonce {
		t.Fatal("two sessions share a nonce")
	}
}

// TestSessionRefused: every cookie that is not exactly one this key
// signed, or that has expired, is refused.
func TestSessionRefused(t *testing.T) {
	k := testKeys(t, 1)
	s := testSession(t)
	good := k.encode(s)
	payload, mac, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	resign := func(p string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(p)) + "." + base64.RawURLEncoding.EncodeToString(k.sign([]byte(p)))
	}
	longer := strings.Replace(string(raw), s.TokenID, "fedcba9876543210", 1)
	tests := []struct {
		name, value string
		now         time.Time
	}{
		{"empty", "", testNow},
		{"no MAC", payload, testNow},
		{"MAC of another key", k.encode(s)[:len(payload)+1] + base64.RawURLEncoding.EncodeToString(testKeys(t, 2).sign(raw)), testNow},
		{"other token id under the old MAC", base64.RawURLEncoding.EncodeToString([]byte(longer)) + "." + mac, testNow},
		{"truncated MAC", payload + "." + mac[:10], testNow},
		{"MAC not base64", payload + ".!!!", testNow},
		{"expired", good, s.Expires},
		{"long past expiry", good, s.Expires.Add(time.Hour)},
		{"too long", good + strings.Repeat("A", maxCookieLen), testNow},
		// Correctly signed, but not a payload this version writes.
		{"other version", resign(strings.Replace(string(raw), "v1|", "v2|", 1)), testNow},
		{"token id not hex", resign(strings.Replace(string(raw), s.TokenID, "0123456789abcdeX", 1)), testNow},
		{"short nonce", resign(string(raw[:len(raw)-2])), testNow},
		{"extra field", resign(string(raw) + "|x"), testNow},
		{"negative expiry", resign("v1|" + s.TokenID + "|-5|" + s.Nonce), testNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := k.parseSession(tt.value, tt.now); err == nil {
				t.Fatalf("parseSession(%q) = %+v, want refused", tt.value, got)
			}
		})
	}
}

func TestNewKeysNeedsMaterial(t *testing.T) {
	if _, err := newKeys(make([]byte, 31)); err == nil {
		t.Fatal("newKeys took 31 bytes")
	}
}

// TestCSRFBoundToSession: a session's CSRF token passes for it alone.
func TestCSRFBoundToSession(t *testing.T) {
	k := testKeys(t, 1)
	s, other := testSession(t), testSession(t)
	tok := k.csrfToken(s)
	tests := []struct {
		name string
		s    session
		keys keys
		got  string
		want bool
	}{
		{"own token", s, k, tok, true},
		{"empty", s, k, "", false},
		{"another session's", other, k, tok, false},
		{"another key's", s, testKeys(t, 2), tok, false},
		{"truncated", s, k, tok[:len(tok)-1], false},
		{"the session cookie itself", s, k, k.encode(s), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.keys.checkCSRF(tt.s, tt.got); got != tt.want {
				t.Fatalf("checkCSRF = %v, want %v", got, tt.want)
			}
		})
	}
	if k.csrfToken(s) == k.csrfToken(other) {
		t.Fatal("two sessions have the same CSRF token")
	}
}

// FuzzParseSession: no input panics, and an accepted cookie is exactly
// the encoding of the session it parses to (nothing else passes the MAC).
func FuzzParseSession(f *testing.F) {
	k := testKeys(f, 1)
	f.Add(k.encode(testSession(f)))
	f.Add("")
	f.Add(".")
	f.Add("djF8MDEyMzQ1Njc4OWFiY2RlZnwxfDAw.AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := k.parseSession(v, testNow)
		if err != nil {
			return
		}
		if enc := k.encode(s); enc != v {
			t.Fatalf("accepted %q, which is not the encoding %q of %+v", v, enc, s)
		}
	})
}
