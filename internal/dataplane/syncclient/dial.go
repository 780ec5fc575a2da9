package syncclient

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// Transport returns the base URL and an HTTP/2 transport for one
// control-plane URL, set up as the config-sync stream's are: https pinned
// to the join credential's cluster CA fingerprint, or plaintext h2c only
// when dev is set. idle is how long a connection may stay silent before
// an HTTP/2 ping checks it. Other data-plane clients of the control plane
// (the audit uploader) use it so that they trust exactly what the config
// stream trusts.
func Transport(rawURL string, cred joincred.Credential, dev bool, idle time.Duration) (string, *http.Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("control-plane URL %q: %w", rawURL, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", nil, fmt.Errorf("control-plane URL %q: want scheme://host:port", rawURL)
	}
	var tr *http.Transport
	switch u.Scheme {
	case "https":
		cfg, err := PinnedTLSConfig(cred.CAFingerprint)
		if err != nil {
			return "", nil, fmt.Errorf("https needs the cluster CA fingerprint from the join credential: %w", err)
		}
		tr = newTransport(cfg, idle)
	case "http":
		if !dev {
			return "", nil, fmt.Errorf("control-plane URL %q: plaintext http:// is allowed only in dev mode", rawURL)
		}
		tr = newTransport(nil, idle)
	default:
		return "", nil, fmt.Errorf("control-plane URL %q: scheme must be https", rawURL)
	}
	return strings.TrimSuffix(u.String(), "/"), tr, nil
}
