package webui

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"
)

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name          string
		tls           bool
		host          string
		origin, fetch string
		want          bool
	}{
		{"own origin over TLS", true, "cp.example:7440", "https://cp.example:7440", "same-origin", true},
		{"own origin in --dev", false, "127.0.0.1:7440", "http://127.0.0.1:7440", "same-origin", true},
		{"no browser headers (curl)", true, "cp.example:7440", "", "", true},
		{"another site", true, "cp.example:7440", "https://evil.example", "cross-site", false},
		{"another site without Sec-Fetch-Site", true, "cp.example:7440", "https://evil.example", "", false},
		{"same site, other origin", true, "cp.example:7440", "https://cp.example:8443", "same-site", false},
		{"http origin to a TLS listener", true, "cp.example:7440", "http://cp.example:7440", "", false},
		{"opaque origin", true, "cp.example:7440", "null", "", false},
		{"cross-site fetch without Origin", true, "cp.example:7440", "", "cross-site", false},
		{"typed into the address bar", true, "cp.example:7440", "", "none", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Host: tt.host, Header: http.Header{}}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.fetch != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetch)
			}
			if got := sameOrigin(r); got != tt.want {
				t.Fatalf("sameOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSecureHeaders(t *testing.T) {
	h := http.Header{}
	secureHeaders(h)
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestSignInLimiter: a source gets its burst and then a slow trickle; other
// sources are not held up by it; IPv6 sources count per /64.
func TestSignInLimiter(t *testing.T) {
	l := newSignInLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("192.0.2.1")
	for i := range signInBurst {
		if !l.allow(a, now) {
			t.Fatalf("attempt %d of the burst refused", i+1)
		}
	}
	if l.allow(a, now) {
		t.Fatal("an attempt beyond the burst was allowed")
	}
	if !l.allow(netip.MustParseAddr("192.0.2.2"), now) {
		t.Fatal("another source was refused")
	}
	if !l.allow(a, now.Add(signInEvery)) {
		t.Fatal("no attempt allowed after the refill interval")
	}
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:1")
	for range signInBurst {
		l.allow(v6a, now)
	}
	if l.allow(v6b, now) {
		t.Fatal("another address of the same IPv6 /64 got a fresh burst")
	}
}

// TestSignInLimiterGlobal: many sources together are held to the global
// rate.
func TestSignInLimiterGlobal(t *testing.T) {
	l := newSignInLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	for i := range 100 {
		if l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now) {
			allowed++
		}
	}
	if allowed != signInGlobalBurst {
		t.Fatalf("%d attempts from 100 sources allowed at once, want the global burst %d", allowed, signInGlobalBurst)
	}
}

// TestSignInLimiterBounded: the table of sources never grows past its
// bound; quiet sources make room, and with none quiet a new source is
// refused.
func TestSignInLimiterBounded(t *testing.T) {
	l := newSignInLimiter()
	l.global.SetBurst(1 << 30)
	l.global.SetLimit(1 << 30)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxSignInSources {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if l.allow(netip.MustParseAddr("203.0.113.9"), now) {
		t.Fatal("a new source was let in while every tracked source is busy")
	}
	if len(l.sources) > maxSignInSources {
		t.Fatalf("%d sources tracked, bound %d", len(l.sources), maxSignInSources)
	}
	later := now.Add(signInEvery * signInBurst)
	if !l.allow(netip.MustParseAddr("203.0.113.9"), later) {
		t.Fatal("a new source was refused after the others went quiet")
	}
	if len(l.sources) > maxSignInSources {
		t.Fatalf("%d sources tracked, bound %d", len(l.sources), maxSignInSources)
	}
}

// FuzzAuditFilter: no query string makes the audit filter panic, and an
// accepted one asks for a page size the API takes.
func FuzzAuditFilter(f *testing.F) {
	f.Add("search=1&agent=ops-agent&from=2026-01-31&limit=10")
	f.Add("from=2026-01-31T00:00:00Z&to=2026-02-01T10:00&limit=1000&page_token=abc")
	f.Add("limit=-1&from=%ff")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		af, err := parseAuditFilter(q)
		if err != nil {
			return
		}
		req, err := af.query()
		if err != nil {
			return
		}
		if req.GetLimit() < 1 || req.GetLimit() > maxAuditLimit {
			t.Fatalf("page size %d from %q", req.GetLimit(), raw)
		}
		if _, err := parseAuditFilter(af.values()); err != nil {
			t.Fatalf("the filter's own link %q does not parse: %v", af.values().Encode(), err)
		}
	})
}
