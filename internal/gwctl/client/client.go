// Package client is gwctl's connection to the control plane's admin API: one
// set of Connect clients per server URL, a bearer token on every call, and
// failover between servers for calls that did not reach a working node.
package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
)

// DefaultAttemptTimeout bounds one attempt of a call on one server unless
// Config.AttemptTimeout says otherwise.
const DefaultAttemptTimeout = 10 * time.Second

// Config is how a Client reaches the control plane.
type Config struct {
	// Servers are the control-plane base URLs, tried in order. An entry
	// without a scheme is taken as https.
	Servers []string
	// Token is sent as "Authorization: Bearer <Token>" when non-empty.
	Token string
	// CAFile names a PEM bundle of CAs trusted for https servers; empty means
	// the system roots.
	CAFile string
	// Linearizable makes reads send "Portcullis-Consistency: linearizable".
	Linearizable bool
	// AttemptTimeout bounds one attempt of an ordinary call on one server;
	// zero means DefaultAttemptTimeout. Calls marked Long are bounded by the
	// caller's context only.
	AttemptTimeout time.Duration
	// Warn receives one line for each failover. Nil discards them. It is
	// called from the goroutine that called Do.
	Warn func(line string)
}

// Validate checks the configuration and normalises the server URLs.
func (c *Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("no control-plane server: pass --server")
	}
	for i, raw := range c.Servers {
		u, err := normalizeURL(raw)
		if err != nil {
			return err
		}
		c.Servers[i] = u
	}
	if c.AttemptTimeout < 0 {
		return errors.New("attempt timeout must not be negative")
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	return nil
}

func normalizeURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("empty server URL in --server")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid server URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("invalid server URL %q: scheme must be https or http", raw)
	case u.Host == "":
		return "", fmt.Errorf("invalid server URL %q: no host", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		// Redacted: a password in the URL must not be echoed.
		return "", fmt.Errorf("invalid server URL %q: only scheme, host, port and path are allowed", u.Redacted())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Services is the set of admin API clients bound to one server.
type Services struct {
	// URL is the server's base URL.
	URL       string
	Cluster   adminv1connect.ClusterServiceClient
	Agent     adminv1connect.AgentServiceClient
	Upstream  adminv1connect.UpstreamServiceClient
	Tool      adminv1connect.ToolServiceClient
	Policy    adminv1connect.PolicyServiceClient
	Rollout   adminv1connect.RolloutServiceClient
	Identity  adminv1connect.IdentitySourceServiceClient
	Secret    adminv1connect.SecretServiceClient
	ValueList adminv1connect.ValueListServiceClient
	// Inspection manages runtime inspection rules.
	Inspection adminv1connect.InspectionServiceClient
	Price      adminv1connect.PriceServiceClient
	Budget     adminv1connect.BudgetServiceClient
	RateLimit  adminv1connect.RateLimitServiceClient
	Token      adminv1connect.TokenServiceClient
	Backup     adminv1connect.BackupServiceClient
	AdminLog   adminv1connect.AdminLogServiceClient
	Dataplane  adminv1connect.DataplaneServiceClient
	Setting    adminv1connect.SettingServiceClient
	Access     adminv1connect.AccessServiceClient
	Alert      adminv1connect.AlertServiceClient
	Audit      auditv1connect.AuditServiceClient
}

// Client calls the admin API with failover between servers. Do may be called
// from several goroutines, but a CLI command normally makes its calls one
// after another.
type Client struct {
	cfg       Config
	transport *http.Transport
	servers   []*Services

	mu      sync.Mutex
	current int             // index of the server that last worked
	warned  map[string]bool // failover lines already printed
}

// New builds a Client; it opens no connection until the first call.
func New(cfg Config) (*Client, error) {
	cfg.Servers = append([]string(nil), cfg.Servers...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsConfig, err := clientTLS(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true, // https only; http:// stays HTTP/1.1
		TLSHandshakeTimeout:   5 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ExpectContinueTimeout: time.Second,
	}
	httpClient := &http.Client{Transport: transport}
	opts := []connect.ClientOption{connect.WithInterceptors(headers{token: cfg.Token})}
	c := &Client{cfg: cfg, transport: transport, warned: map[string]bool{}}
	for _, u := range cfg.Servers {
		c.servers = append(c.servers, &Services{
			URL:        u,
			Cluster:    adminv1connect.NewClusterServiceClient(httpClient, u, opts...),
			Agent:      adminv1connect.NewAgentServiceClient(httpClient, u, opts...),
			Upstream:   adminv1connect.NewUpstreamServiceClient(httpClient, u, opts...),
			Tool:       adminv1connect.NewToolServiceClient(httpClient, u, opts...),
			Policy:     adminv1connect.NewPolicyServiceClient(httpClient, u, opts...),
			Rollout:    adminv1connect.NewRolloutServiceClient(httpClient, u, opts...),
			Identity:   adminv1connect.NewIdentitySourceServiceClient(httpClient, u, opts...),
			Secret:     adminv1connect.NewSecretServiceClient(httpClient, u, opts...),
			ValueList:  adminv1connect.NewValueListServiceClient(httpClient, u, opts...),
			Price:      adminv1connect.NewPriceServiceClient(httpClient, u, opts...),
			Budget:     adminv1connect.NewBudgetServiceClient(httpClient, u, opts...),
			RateLimit:  adminv1connect.NewRateLimitServiceClient(httpClient, u, opts...),
			Token:      adminv1connect.NewTokenServiceClient(httpClient, u, opts...),
			Backup:     adminv1connect.NewBackupServiceClient(httpClient, u, opts...),
			AdminLog:   adminv1connect.NewAdminLogServiceClient(httpClient, u, opts...),
			Dataplane:  adminv1connect.NewDataplaneServiceClient(httpClient, u, opts...),
			Setting:    adminv1connect.NewSettingServiceClient(httpClient, u, opts...),
			Access:     adminv1connect.NewAccessServiceClient(httpClient, u, opts...),
			Alert:      adminv1connect.NewAlertServiceClient(httpClient, u, opts...),
			Audit:      auditv1connect.NewAuditServiceClient(httpClient, u, opts...),
			Inspection: adminv1connect.NewInspectionServiceClient(httpClient, u, opts...),
		})
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

func clientTLS(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read --ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
