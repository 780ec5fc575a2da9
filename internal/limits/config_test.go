package limits_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

func meta() *configv1.ResourceMeta {
	return &configv1.ResourceMeta{Name: "x", Owner: "team", Description: "d", Labels: map[string]string{"env": "prod"}}
}

func strs(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%0*d", max(size, 1), i)[:size]
	}
	return out
}

func deepJSON(n int) []byte { return []byte(rep(`{"a":`, n) + "1" + rep("}", n)) }

// TestConfigLimits changes one field of a valid message at a time to just
// over its limit (and, where it matters, to the limit itself).
func TestConfigLimits(t *testing.T) {
	agent := func(f func(*configv1.Agent)) func() error {
		a := &configv1.Agent{Meta: meta(), Team: "payments", ApiKeys: []*configv1.ApiKey{{Id: "abcdefgh", Sha256: make([]byte, 32)}}}
		f(a)
		return func() error { return limits.Agent(a) }
	}
	oauth := func(f func(*configv1.OAuthClientCredentials)) func() error {
		o := &configv1.OAuthClientCredentials{TokenUrl: "https://idp/token", ClientId: "c", ClientSecret: "s", Scopes: []string{"a"}}
		f(o)
		u := &configv1.Upstream{Meta: meta(), Url: "https://u/mcp", Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_OauthClientCredentials{OauthClientCredentials: o}}}
		return func() error { return limits.Upstream(u) }
	}
	upstream := func(f func(*configv1.Upstream)) func() error {
		u := &configv1.Upstream{Meta: meta(), Url: "https://u/mcp"}
		f(u)
		return func() error { return limits.Upstream(u) }
	}
	pin := func(f func(*configv1.ToolPin, *configv1.ToolVersion)) func() error {
		v := &configv1.ToolVersion{Version: 1, DefinitionHash: "sha256:00", Definition: []byte(`{"name":"t"}`), InputSchema: []byte(`{"type":"object"}`), ApprovedBy: "tok"}
		p := &configv1.ToolPin{Meta: meta(), Upstream: "u", Tool: "t", Versions: []*configv1.ToolVersion{v}}
		f(p, v)
		return func() error { return limits.ToolPin(p) }
	}
	policy := func(f func(*configv1.PolicySet)) func() error {
		p := &configv1.PolicySet{Meta: meta(), Source: "permit(principal, action, resource);", Filename: "x.cedar"}
		f(p)
		return func() error { return limits.PolicySet(p) }
	}
	jwt := func(f func(*configv1.JwtIssuer)) func() error {
		j := &configv1.JwtIssuer{Issuer: "https://idp", Jwks: []byte(`{"keys":[]}`), Audiences: []string{"gw"}, Algorithms: []string{"RS256"}, AgentClaim: "sub"}
		f(j)
		s := &configv1.IdentitySource{Meta: meta(), Kind: &configv1.IdentitySource_JwtIssuer{JwtIssuer: j}}
		return func() error { return limits.IdentitySource(s) }
	}
	list := func(values []string) func() error {
		return func() error { return limits.ValueList(&configv1.ValueList{Meta: meta(), Values: values}) }
	}
	rule := func(f func(*configv1.InspectionRule)) func() error {
		r := &configv1.InspectionRule{Meta: meta(), Scope: &configv1.InspectionScope{Upstream: "u", Tool: "t", Team: "x"},
			Detectors: []string{"pii"}, Patterns: []string{"a+"}, Rows: &configv1.InspectionRowLimit{Path: "$.rows", MaxRows: 1}}
		f(r)
		return func() error { return limits.InspectionRule(r) }
	}
	settingOf := func(values []string) func() error {
		return func() error {
			return limits.Setting(&configv1.Setting{Meta: &configv1.ResourceMeta{Name: "mcp.allowed-origins"}, Values: values})
		}
	}
	tests := []struct {
		name  string
		check func() error
		field string // "" means within the limits
	}{
		{name: "inspection rule at its limits", check: rule(func(r *configv1.InspectionRule) {
			r.Detectors = strs(limits.InspectionDetectors, limits.InspectionDetector)
			r.Patterns = strs(limits.InspectionDetectors, limits.InspectionPattern)
			r.Rows.Path = rep("a", limits.JSONPath)
		})},
		{name: "rule scope", check: rule(func(r *configv1.InspectionRule) { r.Scope.Team = rep("t", limits.Name+1) }), field: "scope"},
		{name: "rule detectors", check: rule(func(r *configv1.InspectionRule) { r.Detectors = strs(limits.InspectionDetectors+1, 3) }), field: "detectors"},
		{name: "rule detector", check: rule(func(r *configv1.InspectionRule) { r.Detectors = []string{rep("d", limits.InspectionDetector+1)} }), field: "detectors[0]"},
		{name: "rule patterns", check: rule(func(r *configv1.InspectionRule) { r.Patterns = strs(limits.InspectionDetectors+1, 3) }), field: "patterns"},
		{name: "rule pattern", check: rule(func(r *configv1.InspectionRule) { r.Patterns = []string{rep("p", limits.InspectionPattern+1)} }), field: "patterns[0]"},
		{name: "rule classifier", check: rule(func(r *configv1.InspectionRule) {
			r.Classifier = &configv1.InspectionClassifier{Url: rep("u", limits.URL+1)}
		}), field: "classifier.url"},
		{name: "rule path", check: rule(func(r *configv1.InspectionRule) { r.Rows.Path = rep("a", limits.JSONPath+1) }), field: "rows.path"},

		{name: "meta at its limits", check: agent(func(a *configv1.Agent) {
			a.Meta.Owner, a.Meta.Description = rep("o", limits.Owner), rep("d", limits.Description)
			a.Meta.Labels = map[string]string{}
			for i := range limits.Labels {
				a.Meta.Labels[fmt.Sprint("k", i)] = rep("v", limits.LabelValue)
			}
		})},
		{name: "name", check: agent(func(a *configv1.Agent) { a.Meta.Name = rep("n", limits.Name+1) }), field: "meta.name"},
		{name: "owner", check: agent(func(a *configv1.Agent) { a.Meta.Owner = rep("o", limits.Owner+1) }), field: "meta.owner"},
		{name: "description", check: agent(func(a *configv1.Agent) { a.Meta.Description = rep("d", limits.Description+1) }), field: "meta.description"},
		{name: "label count", check: agent(func(a *configv1.Agent) {
			for i := range limits.Labels + 1 {
				a.Meta.Labels[fmt.Sprint("k", i)] = "v"
			}
		}), field: "meta.labels"},
		{name: "label value", check: agent(func(a *configv1.Agent) { a.Meta.Labels["env"] = rep("v", limits.LabelValue+1) }), field: "meta.labels"},
		{name: "updated by", check: agent(func(a *configv1.Agent) { a.Meta.UpdatedBy = rep("t", limits.Actor+1) }), field: "meta"},
		{name: "team", check: agent(func(a *configv1.Agent) { a.Team = rep("t", limits.Name+1) }), field: "team"},
		{name: "api keys", check: agent(func(a *configv1.Agent) {
			for range limits.APIKeys {
				a.ApiKeys = append(a.ApiKeys, &configv1.ApiKey{Id: "k"})
			}
		}), field: "api_keys"},
		{name: "api key id", check: agent(func(a *configv1.Agent) { a.ApiKeys[0].Id = rep("k", limits.Name+1) }), field: "api_keys[0]"},
		{name: "identities", check: agent(func(a *configv1.Agent) {
			a.SpiffeIds = strs(limits.Identities/2+1, 8)
			a.CertFingerprints = strs(limits.Identities/2, 8)
		}), field: "identities"},
		{name: "jwt subject", check: agent(func(a *configv1.Agent) {
			a.JwtSubjects = []*configv1.JwtSubject{{IdentitySource: "idp", Subject: rep("s", limits.JWTSubject+1)}}
		}), field: "jwt_subjects[0]"},
		{name: "spiffe id", check: agent(func(a *configv1.Agent) { a.SpiffeIds = []string{rep("s", limits.URL+1)} }), field: "spiffe_ids[0]"},
		{name: "fingerprint", check: agent(func(a *configv1.Agent) { a.CertFingerprints = []string{rep("f", limits.DefinitionHash+1)} }), field: "cert_fingerprints[0]"},

		{name: "url", check: upstream(func(u *configv1.Upstream) { u.Url = rep("u", limits.URL+1) }), field: "url"},
		{name: "tool prefix", check: upstream(func(u *configv1.Upstream) { p := rep("p", limits.Name+1); u.ToolPrefix = &p }), field: "tool_prefix"},
		{name: "header credential", check: upstream(func(u *configv1.Upstream) {
			u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{Header: &configv1.HeaderCredential{Header: rep("h", limits.Name+1), Secret: "s"}}}
		}), field: "credential.header"},
		{name: "bearer credential", check: upstream(func(u *configv1.Upstream) {
			u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: rep("s", limits.Name+1)}}}
		}), field: "credential.bearer.secret"},
		{name: "oauth at its limits", check: oauth(func(o *configv1.OAuthClientCredentials) { o.Scopes = strs(limits.Scopes, limits.Scope) })},
		{name: "oauth token url", check: oauth(func(o *configv1.OAuthClientCredentials) { o.TokenUrl = rep("u", limits.URL+1) }), field: "credential.oauth_client_credentials.token_url"},
		{name: "oauth client id", check: oauth(func(o *configv1.OAuthClientCredentials) { o.ClientId = rep("c", limits.ClientID+1) }), field: "credential.oauth_client_credentials.client_id"},
		{name: "oauth audience", check: oauth(func(o *configv1.OAuthClientCredentials) { o.Audience = rep("a", limits.URL+1) }), field: "credential.oauth_client_credentials.audience"},
		{name: "oauth scopes", check: oauth(func(o *configv1.OAuthClientCredentials) { o.Scopes = strs(limits.Scopes+1, 4) }), field: "credential.oauth_client_credentials.scopes"},
		{name: "oauth scope", check: oauth(func(o *configv1.OAuthClientCredentials) { o.Scopes = []string{rep("s", limits.Scope+1)} }), field: "credential.oauth_client_credentials.scopes[0]"},

		{name: "pin at its limits", check: pin(func(p *configv1.ToolPin, v *configv1.ToolVersion) {
			v.InputSchema = deepJSON(limits.JSONNesting)
			for range limits.ToolVersions - 1 {
				p.Versions = append(p.Versions, v)
			}
		})},
		{name: "pin versions", check: pin(func(p *configv1.ToolPin, v *configv1.ToolVersion) {
			for range limits.ToolVersions {
				p.Versions = append(p.Versions, v)
			}
		}), field: "versions"},
		{name: "pin tool name", check: pin(func(p *configv1.ToolPin, _ *configv1.ToolVersion) { p.Tool = rep("t", limits.Name+1) }), field: "tool"},
		{name: "definition hash", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) {
			v.DefinitionHash = rep("h", limits.DefinitionHash+1)
		}), field: "versions[0].definition_hash"},
		{name: "approved by", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) { v.ApprovedBy = rep("a", limits.Actor+1) }), field: "versions[0].approved_by"},
		{name: "definition size", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) {
			v.Definition = []byte(`{"d":"` + rep("x", limits.ToolDefinition) + `"}`)
		}), field: "versions[0].definition"},
		{name: "definition nesting", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) { v.Definition = deepJSON(limits.JSONNesting + 1) }), field: "versions[0].definition"},
		{name: "input schema nesting", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) { v.InputSchema = deepJSON(100_000) }), field: "versions[0].input_schema"},
		{name: "deprecation message", check: pin(func(_ *configv1.ToolPin, v *configv1.ToolVersion) {
			v.DeprecationMessage = rep("m", limits.DeprecationMessage+1)
		}), field: "versions[0].deprecation_message"},
		{name: "assignments at their limits", check: pin(func(p *configv1.ToolPin, v *configv1.ToolVersion) {
			v.DeprecationMessage = rep("m", limits.DeprecationMessage)
			for i := range limits.ToolAssignments {
				p.Assignments = append(p.Assignments, &configv1.ToolAssignment{Version: 1, Agent: fmt.Sprint("a", i), AssignedBy: rep("t", limits.Actor)})
			}
			p.Assignments[0].Agent, p.Assignments[1].Team = rep("a", limits.Name), rep("t", limits.Name)
		})},
		{name: "assignments", check: pin(func(p *configv1.ToolPin, _ *configv1.ToolVersion) {
			for i := range limits.ToolAssignments + 1 {
				p.Assignments = append(p.Assignments, &configv1.ToolAssignment{Version: 1, Agent: fmt.Sprint("a", i)})
			}
		}), field: "assignments"},
		{name: "assignment team", check: pin(func(p *configv1.ToolPin, _ *configv1.ToolVersion) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 1, Team: rep("t", limits.Name+1)}}
		}), field: "assignments[0].team"},
		{name: "assignment agent", check: pin(func(p *configv1.ToolPin, _ *configv1.ToolVersion) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 1, Agent: rep("a", limits.Name+1)}}
		}), field: "assignments[0].agent"},
		{name: "assigned by", check: pin(func(p *configv1.ToolPin, _ *configv1.ToolVersion) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 1, Agent: "a", AssignedBy: rep("t", limits.Actor+1)}}
		}), field: "assignments[0].assigned_by"},

		{name: "policy filename", check: policy(func(p *configv1.PolicySet) { p.Filename = rep("f", limits.PolicyFilename+1) }), field: "filename"},
		{name: "policy source nesting", check: policy(func(p *configv1.PolicySet) { p.Source = when(rep("(", 500_000) + "1" + rep(")", 500_000)) }), field: "source"},
		{name: "policy source size", check: policy(func(p *configv1.PolicySet) { p.Source = rep(" ", limits.PolicySetSource+1) }), field: "source"},
		{name: "policy ids", check: policy(func(p *configv1.PolicySet) { p.PolicyIds = strs(limits.PoliciesPerSet+1, 1) }), field: "policy_ids"},

		{name: "list at its limits", check: list(strs(limits.ListValues, 8))},
		{name: "list values", check: list(strs(limits.ListValues+1, 8)), field: "values"},
		{name: "list value", check: list([]string{"a", rep("v", limits.ListValue+1)}), field: "values[1]"},
		{name: "setting at its limits", check: settingOf(strs(limits.SettingValues, limits.SettingValue))},
		{name: "setting values", check: settingOf(strs(limits.SettingValues+1, 8)), field: "values"},
		{name: "setting value", check: settingOf([]string{"a", rep("v", limits.SettingValue+1)}), field: "values[1]"},

		{name: "issuer at its limits", check: jwt(func(j *configv1.JwtIssuer) {
			j.Audiences = strs(limits.Audiences, limits.Audience)
			j.Jwks = deepJSON(limits.JSONNesting)
		})},
		{name: "issuer", check: jwt(func(j *configv1.JwtIssuer) { j.Issuer = rep("i", limits.URL+1) }), field: "jwt_issuer.issuer"},
		{name: "jwks url", check: jwt(func(j *configv1.JwtIssuer) { j.JwksUrl = rep("u", limits.URL+1) }), field: "jwt_issuer.jwks_url"},
		{name: "audiences", check: jwt(func(j *configv1.JwtIssuer) { j.Audiences = strs(limits.Audiences+1, 2) }), field: "jwt_issuer.audiences"},
		{name: "audience", check: jwt(func(j *configv1.JwtIssuer) { j.Audiences = []string{rep("a", limits.Audience+1)} }), field: "jwt_issuer.audiences[0]"},
		{name: "algorithms", check: jwt(func(j *configv1.JwtIssuer) { j.Algorithms = strs(limits.Algorithms+1, 5) }), field: "jwt_issuer.algorithms"},
		{name: "algorithm", check: jwt(func(j *configv1.JwtIssuer) { j.Algorithms = []string{rep("a", limits.Claim+1)} }), field: "jwt_issuer.algorithms[0]"},
		{name: "claim", check: jwt(func(j *configv1.JwtIssuer) { j.GroupsClaim = rep("c", limits.Claim+1) }), field: "jwt_issuer"},
		{name: "jwks size", check: jwt(func(j *configv1.JwtIssuer) { j.Jwks = []byte(`{"k":"` + rep("x", limits.JWKS) + `"}`) }), field: "jwt_issuer.jwks"},
		{name: "jwks nesting", check: jwt(func(j *configv1.JwtIssuer) { j.Jwks = deepJSON(limits.JSONNesting + 1) }), field: "jwt_issuer.jwks"},
		{name: "ca pem", check: func() error {
			return limits.IdentitySource(&configv1.IdentitySource{Meta: meta(), Kind: &configv1.IdentitySource_MtlsAuthority{MtlsAuthority: &configv1.MtlsAuthority{CaPem: rep("p", limits.CAPEM+1)}}})
		}, field: "mtls_authority.ca_pem"},

		{name: "sealed secret", check: func() error {
			return limits.SealedSecret(&configv1.Secret{Meta: meta(), Ciphertext: make([]byte, limits.SecretSealed+1)})
		}, field: "value"},
		{name: "admin token", check: func() error {
			return limits.AdminToken(&configv1.AdminToken{Meta: meta(), Sha256: make([]byte, 32), Dataplane: rep("d", limits.Name+1)})
		}, field: "admin_token"},
		{name: "node", check: func() error {
			return limits.Node(&configv1.Node{Meta: meta(), RaftAddr: rep("a", limits.Addr+1)})
		}, field: "node"},
		{name: "cluster id", check: func() error {
			return limits.ClusterIdentity(&configv1.ClusterIdentity{ClusterId: rep("c", limits.ClusterID+1)})
		}, field: "identity"},
		{name: "cluster ca", check: func() error {
			return limits.ClusterIdentity(&configv1.ClusterIdentity{ClusterId: "c", CaCertPem: rep("p", limits.CAPEM+1)})
		}, field: "identity.ca_cert_pem"},
		{name: "cluster ca key", check: func() error {
			return limits.ClusterIdentity(&configv1.ClusterIdentity{ClusterId: "c", CaKeySealed: make([]byte, limits.SecretSealed+1)})
		}, field: "identity.ca_key_sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("= %v, want nil", err)
				}
				return
			}
			var le *limits.Error
			if !errors.As(err, &le) || le.Field != tt.field {
				t.Fatalf("= %v, want a *limits.Error for field %q", err, tt.field)
			}
			if !strings.Contains(le.Msg, "at most") && !strings.Contains(le.Msg, "more than") {
				t.Errorf("message %q does not state the limit", le.Msg)
			}
		})
	}
}

func TestIn(t *testing.T) {
	err := limits.In("tool_pins[3]", limits.ToolPin(&configv1.ToolPin{Versions: []*configv1.ToolVersion{{Definition: deepJSON(100)}}}))
	if err == nil || !strings.HasPrefix(err.Error(), "tool_pins[3].versions[0].definition: ") {
		t.Fatalf("In = %v", err)
	}
	if limits.In("x", nil) != nil {
		t.Fatal("In(nil) is not nil")
	}
}
