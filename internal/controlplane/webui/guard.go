package webui

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// contentSecurityPolicy allows the page's own stylesheet and nothing else:
// no script of any origin (the view has none), no inline style, no frames
// around it, forms posting only to itself.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// secureHeaders sets the headers of every response of the view.
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Audit filters are in the URL: no other site learns them. (Not
	// no-referrer: with it, browsers send "Origin: null" on the view's own
	// forms, and sameOrigin could no longer tell them from another site's.)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	// Pages hold audit data: no shared or disk cache keeps them.
	h.Set("Cache-Control", "no-store")
}

// sameOrigin reports whether a state-changing request comes from the
// view's own pages. Browsers send Origin on every POST and Sec-Fetch-Site
// on every request; a request with neither is not from a browser's
// cross-site form (curl, a test), and the CSRF token still guards writes.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	// "null" (an opaque origin: a sandboxed frame, a data: URL) is never
	// the view's own.
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return origin == scheme+r.Host
}

// clientAddr is the address a request came from (the connection's peer:
// the view trusts no forwarding header).
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// Sign-in limits: each source may try a few times in a burst and then
// about once every six seconds; all sources together at most a few a
// second (each successful sign-in is a replicated write).
const (
	signInBurst       = 10
	signInEvery       = 6 * time.Second
	signInGlobalRate  = 5
	signInGlobalBurst = 20
	// maxSignInSources bounds the sources tracked at once.
	maxSignInSources = 4096
)

// signInLimiter rate-limits sign-in attempts per source network (an IPv4
// address, an IPv6 /64) and overall. It is safe for concurrent use.
type signInLimiter struct {
	mu      sync.Mutex
	sources map[netip.Prefix]*rate.Limiter
	global  *rate.Limiter
}

func newSignInLimiter() *signInLimiter {
	return &signInLimiter{sources: map[netip.Prefix]*rate.Limiter{}, global: rate.NewLimiter(signInGlobalRate, signInGlobalBurst)}
}

// sourceKey is the network a source address is limited as.
func sourceKey(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// allow reports whether a sign-in attempt from a may go ahead at now, and
// counts it.
func (l *signInLimiter) allow(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(a)
	lim, ok := l.sources[key]
	if !ok {
		if len(l.sources) >= maxSignInSources {
			// Forget sources that have been quiet long enough to be back
			// at a full burst; if none has, refuse rather than grow.
			for k, v := range l.sources {
				if v.TokensAt(now) >= signInBurst {
					delete(l.sources, k)
				}
			}
			if len(l.sources) >= maxSignInSources {
				return false
			}
		}
		lim = rate.NewLimiter(rate.Every(signInEvery), signInBurst)
		l.sources[key] = lim
	}
	if !lim.AllowN(now, 1) {
		return false
	}
	return l.global.AllowN(now, 1)
}
