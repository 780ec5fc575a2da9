package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/internal/egress"
)

// fetchTimeout bounds one JWKS fetch, connection included.
const fetchTimeout = 5 * time.Second

var errRedirect = errors.New("the JWKS URL redirected; redirects are not followed")

// newClient is the JWKS HTTP client: it dials only addresses the egress
// policy permits (checked on the address actually dialed, after DNS), uses
// no proxy (the policy must judge the real destination), follows no
// redirects and keeps no idle connections, so a replaced Verifier leaves
// nothing behind.
func newClient(p egress.Policy) *http.Client {
	d := &net.Dialer{Timeout: fetchTimeout, ControlContext: p.DialControlContext}
	return &http.Client{
		Timeout: fetchTimeout,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    fetchTimeout,
			ResponseHeaderTimeout:  fetchTimeout,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 16 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
}

// fetchJWKS gets and parses the key set at url.
func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: read: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("fetch JWKS: the document exceeds %d bytes", MaxJWKSBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	return keys, nil
}
