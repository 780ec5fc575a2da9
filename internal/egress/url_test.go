package egress_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/egress"
)

// fakeResolver maps host names to addresses and records lookups.
type fakeResolver struct {
	hosts   map[string][]string
	lookups []string
}

var errNoSuchHost = errors.New("no such host")

func (f *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.lookups = append(f.lookups, network+" "+host)
	ss, ok := f.hosts[host]
	if !ok {
		return nil, errNoSuchHost
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

func TestCheckURL(t *testing.T) {
	hosts := map[string][]string{
		"api.example.com":          {"93.184.216.34", "2606:2800:220:1::1"},
		"internal.svc":             {"10.0.0.7"},
		"localhost":                {"127.0.0.1", "::1"},
		"innocent.example.com":     {"169.254.169.254"},
		"mixed.example.com":        {"93.184.216.34", "169.254.169.254"},
		"mapped.example.com":       {"::ffff:169.254.169.254"},
		"empty.example.com":        {},
		"metadata.google.internal": {"169.254.169.254"},
	}
	linkLocal := egress.Policy{AllowLinkLocal: true}
	tests := []struct {
		name    string
		policy  egress.Policy
		url     string
		wantErr error // nil: allowed
		msg     string
	}{
		{name: "https name", url: "https://api.example.com/v1/chat"},
		{name: "http with port", url: "http://api.example.com:8080/"},
		{name: "uppercase scheme", url: "HTTPS://api.example.com/"},
		{name: "internal service", url: "http://internal.svc/"},
		{name: "localhost", url: "http://localhost:9000/"},
		{name: "loopback literal", url: "http://127.0.0.1:9000/"},
		{name: "private literal", url: "https://10.2.3.4/jwks.json"},
		{name: "IPv6 loopback literal", url: "http://[::1]:8080/"},
		{name: "metadata literal", url: "http://169.254.169.254/latest/meta-data/", wantErr: egress.ErrRefused, msg: "--allow-link-local"},
		{name: "mapped metadata literal", url: "http://[::ffff:169.254.169.254]/", wantErr: egress.ErrRefused, msg: "cloud metadata"},
		{name: "mapped metadata hex literal", url: "http://[::ffff:a9fe:a9fe]/", wantErr: egress.ErrRefused, msg: "cloud metadata"},
		{name: "IPv6 metadata literal", url: "http://[fd00:ec2::254]/", wantErr: egress.ErrRefused, msg: "cloud metadata"},
		{name: "link-local v6 with zone", url: "http://[fe80::1%25eth0]/", wantErr: egress.ErrRefused, msg: "link-local"},
		{name: "unspecified", url: "http://0.0.0.0:8080/", wantErr: egress.ErrRefused, msg: "unspecified"},
		{name: "decimal IPv4", url: "http://2852039166/", wantErr: egress.ErrRefused, msg: "dotted-decimal"},
		{name: "hex IPv4", url: "http://0xa9fea9fe/", wantErr: egress.ErrRefused, msg: "dotted-decimal"},
		{name: "octal IPv4", url: "http://0251.0376.0251.0376/", wantErr: egress.ErrRefused, msg: "dotted-decimal"},
		{name: "short IPv4", url: "http://169.254.43518/", wantErr: egress.ErrRefused, msg: "dotted-decimal"},
		{name: "leading zero IPv4", url: "http://010.0.0.1/", wantErr: egress.ErrRefused, msg: "dotted-decimal"},
		{name: "name resolving to metadata", url: "https://innocent.example.com/token", wantErr: egress.ErrRefused, msg: "innocent.example.com resolves to a refused address"},
		{name: "one bad address among many", url: "https://mixed.example.com/", wantErr: egress.ErrRefused, msg: "cloud metadata"},
		{name: "name resolving to mapped metadata", url: "https://mapped.example.com/", wantErr: egress.ErrRefused, msg: "cloud metadata"},
		{name: "GCP metadata name", url: "http://metadata.google.internal/computeMetadata/v1/", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "GCP metadata name trailing dot", url: "http://Metadata.Google.Internal./", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "GCP short metadata name", url: "http://metadata/", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "metadata.goog", url: "http://metadata.goog/", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "AWS instance-data", url: "http://instance-data/latest/", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "AWS instance-data fqdn", url: "http://instance-data.ec2.internal/", wantErr: egress.ErrRefused, msg: "metadata host name"},
		{name: "allow link-local permits metadata name", policy: linkLocal, url: "http://metadata.google.internal/"},
		{name: "allow link-local permits metadata literal", policy: linkLocal, url: "http://169.254.169.254/"},
		{name: "file scheme", url: "file:///etc/passwd", wantErr: egress.ErrRefused, msg: "scheme"},
		{name: "gopher scheme", url: "gopher://api.example.com/", wantErr: egress.ErrRefused, msg: "scheme"},
		{name: "no scheme", url: "api.example.com/v1", wantErr: egress.ErrRefused, msg: "no scheme"},
		{name: "userinfo", url: "https://user:pass@api.example.com/", wantErr: egress.ErrRefused, msg: "user information"},
		{name: "userinfo confusion", url: "http://api.example.com@169.254.169.254/", wantErr: egress.ErrRefused, msg: "user information"},
		{name: "empty userinfo", url: "http://@api.example.com/", wantErr: egress.ErrRefused, msg: "user information"},
		{name: "no host", url: "https:///path", wantErr: egress.ErrRefused, msg: "no host"},
		{name: "opaque", url: "http:api.example.com", wantErr: egress.ErrRefused, msg: "no host"},
		{name: "unparsable", url: "http://[::1/", wantErr: egress.ErrRefused, msg: "parse URL"},
		{name: "unknown host", url: "https://nope.example.com/", wantErr: egress.ErrResolve},
		{name: "no addresses", url: "https://empty.example.com/", wantErr: egress.ErrResolve},
		{name: "deny range applies to resolved", policy: egress.Policy{Deny: prefixes("10.0.0.0/8")}, url: "http://internal.svc/", wantErr: egress.ErrRefused, msg: "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeResolver{hosts: hosts}
			err := tt.policy.CheckURL(context.Background(), tt.url, r)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckURL(%s) = %v, want allowed", tt.url, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckURL(%s) = %v, want %v", tt.url, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestCheckURLDoesNotResolveLiteralsOrMetadataNames(t *testing.T) {
	r := &fakeResolver{}
	p := egress.Policy{}
	for _, u := range []string{"http://127.0.0.1/", "http://[::1]/", "http://metadata.google.internal/", "http://2852039166/"} {
		_ = p.CheckURL(context.Background(), u, r)
	}
	if len(r.lookups) != 0 {
		t.Errorf("unexpected lookups: %v", r.lookups)
	}
}

func TestCheckURLResolverError(t *testing.T) {
	r := &fakeResolver{}
	err := egress.Policy{}.CheckURL(context.Background(), "https://api.example.com/", r)
	if !errors.Is(err, egress.ErrResolve) || !errors.Is(err, errNoSuchHost) {
		t.Fatalf("error = %v, want ErrResolve wrapping the resolver error", err)
	}
	if errors.Is(err, egress.ErrRefused) {
		t.Errorf("resolution failure reported as a refusal: %v", err)
	}
	if len(r.lookups) != 1 || r.lookups[0] != "ip api.example.com" {
		t.Errorf("lookups = %v, want [ip api.example.com]", r.lookups)
	}
}

func TestCheckURLRedactsQuery(t *testing.T) {
	err := egress.Policy{}.CheckURL(context.Background(), "http://169.254.169.254/?token=s3cr3t#frag", &fakeResolver{})
	if err == nil {
		t.Fatal("metadata URL allowed")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q leaks the query string", err)
	}
}
