package limits

import (
	"fmt"
	"slices"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// This file checks each configuration message against the table: sizes,
// counts and nesting only. Formats (names, URLs, enums, UTF-8) are the
// control plane's rules (package resource); a data plane trusts them but
// still checks these bounds, because a snapshot is bytes from outside.

// Meta checks a resource's metadata.
func Meta(m *configv1.ResourceMeta) error {
	switch {
	case len(m.GetName()) > Name:
		return exceeded("meta.name", "at most %d bytes", Name)
	case len(m.GetOwner()) > Owner:
		return exceeded("meta.owner", "at most %d bytes", Owner)
	case len(m.GetDescription()) > Description:
		return exceeded("meta.description", "at most %d bytes", Description)
	case len(m.GetLabels()) > Labels:
		return exceeded("meta.labels", "at most %d labels", Labels)
	case len(m.GetCreatedBy()) > Actor || len(m.GetUpdatedBy()) > Actor:
		return exceeded("meta", "created_by and updated_by are at most %d bytes", Actor)
	}
	for k, v := range m.GetLabels() {
		if len(k) > Name || len(v) > LabelValue {
			return exceeded("meta.labels", "a label's key is at most %d bytes and its value at most %d", Name, LabelValue)
		}
	}
	return nil
}

// Agent checks an agent.
func Agent(a *configv1.Agent) error {
	if err := Meta(a.GetMeta()); err != nil {
		return err
	}
	if len(a.GetTeam()) > Name {
		return exceeded("team", "at most %d bytes", Name)
	}
	if len(a.GetApiKeys()) > APIKeys {
		return exceeded("api_keys", "at most %d keys (two are enough to rotate)", APIKeys)
	}
	for i, k := range a.GetApiKeys() {
		if len(k.GetId()) > Name || len(k.GetSha256()) > 64 {
			return exceeded(fmt.Sprintf("api_keys[%d]", i), "an id of at most %d bytes and a SHA-256 digest", Name)
		}
	}
	if n := len(a.GetJwtSubjects()) + len(a.GetSpiffeIds()) + len(a.GetCertFingerprints()); n > Identities {
		return exceeded("identities", "at most %d JWT subjects, SPIFFE ids and certificate fingerprints together", Identities)
	}
	for i, s := range a.GetJwtSubjects() {
		if len(s.GetIdentitySource()) > Name || len(s.GetSubject()) > JWTSubject {
			return exceeded(fmt.Sprintf("jwt_subjects[%d]", i), "the subject is at most %d bytes", JWTSubject)
		}
	}
	for i, id := range a.GetSpiffeIds() {
		if len(id) > URL {
			return exceeded(fmt.Sprintf("spiffe_ids[%d]", i), "at most %d bytes", URL)
		}
	}
	for i, fp := range a.GetCertFingerprints() {
		if len(fp) > DefinitionHash {
			return exceeded(fmt.Sprintf("cert_fingerprints[%d]", i), "at most %d bytes", DefinitionHash)
		}
	}
	return nil
}

// Upstream checks an upstream.
func Upstream(u *configv1.Upstream) error {
	if err := Meta(u.GetMeta()); err != nil {
		return err
	}
	if len(u.GetUrl()) > URL {
		return exceeded("url", "at most %d bytes", URL)
	}
	if len(u.GetToolPrefix()) > Name {
		return exceeded("tool_prefix", "at most %d bytes", Name)
	}
	if err := llmUpstream(u.GetLlm()); err != nil {
		return err
	}
	switch k := u.GetCredential().GetKind().(type) {
	case *configv1.UpstreamCredential_Header:
		if len(k.Header.GetHeader()) > Name || len(k.Header.GetSecret()) > Name {
			return exceeded("credential.header", "header and secret names are at most %d bytes", Name)
		}
	case *configv1.UpstreamCredential_Bearer:
		if len(k.Bearer.GetSecret()) > Name {
			return exceeded("credential.bearer.secret", "at most %d bytes", Name)
		}
	case *configv1.UpstreamCredential_OauthClientCredentials:
		o := k.OauthClientCredentials
		switch {
		case len(o.GetTokenUrl()) > URL:
			return exceeded("credential.oauth_client_credentials.token_url", "at most %d bytes", URL)
		case len(o.GetClientId()) > ClientID:
			return exceeded("credential.oauth_client_credentials.client_id", "at most %d bytes", ClientID)
		case len(o.GetClientSecret()) > Name:
			return exceeded("credential.oauth_client_credentials.client_secret", "at most %d bytes", Name)
		case len(o.GetAudience()) > URL:
			return exceeded("credential.oauth_client_credentials.audience", "at most %d bytes", URL)
		case len(o.GetScopes()) > Scopes:
			return exceeded("credential.oauth_client_credentials.scopes", "at most %d scopes", Scopes)
		}
		for i, s := range o.GetScopes() {
			if len(s) > Scope {
				return exceeded(fmt.Sprintf("credential.oauth_client_credentials.scopes[%d]", i), "at most %d bytes", Scope)
			}
		}
	}
	return nil
}

// ToolPin checks a tool pin, including the nesting of every version's
// definition and input schema.
func ToolPin(p *configv1.ToolPin) error {
	if err := Meta(p.GetMeta()); err != nil {
		return err
	}
	if len(p.GetUpstream()) > Name || len(p.GetTool()) > Name {
		return exceeded("tool", "upstream and tool names are at most %d bytes", Name)
	}
	if len(p.GetVersions()) > ToolVersions {
		return exceeded("versions", "at most %d versions are kept", ToolVersions)
	}
	for i, v := range p.GetVersions() {
		f := fmt.Sprintf("versions[%d]", i)
		if len(v.GetDefinitionHash()) > DefinitionHash {
			return exceeded(f+".definition_hash", "at most %d bytes", DefinitionHash)
		}
		if len(v.GetApprovedBy()) > Actor {
			return exceeded(f+".approved_by", "at most %d bytes", Actor)
		}
		if err := CheckJSON(f+".definition", v.GetDefinition(), ToolDefinition); err != nil {
			return err
		}
		if err := CheckJSON(f+".input_schema", v.GetInputSchema(), ToolDefinition); err != nil {
			return err
		}
		if len(v.GetDeprecationMessage()) > DeprecationMessage {
			return exceeded(f+".deprecation_message", "at most %d bytes", DeprecationMessage)
		}
	}
	if len(p.GetAssignments()) > ToolAssignments {
		return exceeded("assignments", "at most %d assignments", ToolAssignments)
	}
	for i, a := range p.GetAssignments() {
		f := fmt.Sprintf("assignments[%d]", i)
		switch {
		case len(a.GetTeam()) > Name:
			return exceeded(f+".team", "at most %d bytes", Name)
		case len(a.GetAgent()) > Name:
			return exceeded(f+".agent", "at most %d bytes", Name)
		case len(a.GetAssignedBy()) > Actor:
			return exceeded(f+".assigned_by", "at most %d bytes", Actor)
		}
	}
	return nil
}

// PolicySet checks a policy set, including its Cedar source (CheckCedar).
func PolicySet(p *configv1.PolicySet) error {
	if err := Meta(p.GetMeta()); err != nil {
		return err
	}
	if len(p.GetFilename()) > PolicyFilename {
		return exceeded("filename", "at most %d bytes", PolicyFilename)
	}
	// Derived fields: the state machine fills them from the source, and
	// a data plane reads them from the snapshot.
	if len(p.GetPolicyIds()) > PoliciesPerSet {
		return exceeded("policy_ids", "at most %d", PoliciesPerSet)
	}
	if len(p.GetValueLists()) > PoliciesPerSet {
		return exceeded("value_lists", "at most %d", PoliciesPerSet)
	}
	if len(p.GetMessage()) > PolicyMessage {
		return exceeded("message", "at most %d bytes", PolicyMessage)
	}
	return CheckCedar([]byte(p.GetSource()))
}

// PolicyHistory checks a policy set's history: its versions, each held
// to the bounds of a policy set's source.
func PolicyHistory(h *configv1.PolicyHistory) error {
	if err := Meta(h.GetMeta()); err != nil {
		return err
	}
	if len(h.GetVersions()) > PolicyHistoryMax {
		return exceeded("versions", "at most %d", PolicyHistoryMax)
	}
	total := 0
	for i, v := range h.GetVersions() {
		total += len(v.GetSource())
		switch {
		case len(v.GetSource()) > PolicySetSource:
			return exceeded(fmt.Sprintf("versions[%d].source", i), "at most %d bytes", PolicySetSource)
		case len(v.GetFilename()) > PolicyFilename:
			return exceeded(fmt.Sprintf("versions[%d].filename", i), "at most %d bytes", PolicyFilename)
		case len(v.GetPolicyIds()) > PoliciesPerSet:
			return exceeded(fmt.Sprintf("versions[%d].policy_ids", i), "at most %d", PoliciesPerSet)
		case len(v.GetMessage()) > PolicyMessage:
			return exceeded(fmt.Sprintf("versions[%d].message", i), "at most %d bytes", PolicyMessage)
		case len(v.GetActor()) > Actor || len(v.GetMethod()) > Method || len(v.GetRollout()) > Name:
			return exceeded(fmt.Sprintf("versions[%d]", i), "actor, method and rollout are at most %d, %d and %d bytes", Actor, Method, Name)
		}
	}
	if total > PolicyHistoryBytes {
		return exceeded("versions", "at most %d bytes of sources in all", PolicyHistoryBytes)
	}
	return nil
}

// PolicyTests checks the test cases stored with a policy set.
func PolicyTests(t *configv1.PolicyTests) error {
	if err := Meta(t.GetMeta()); err != nil {
		return err
	}
	if len(t.GetCases()) > PolicyTestCases {
		return exceeded("cases", "at most %d", PolicyTestCases)
	}
	total := 0
	for i, c := range t.GetCases() {
		field := fmt.Sprintf("cases[%d]", i)
		if total += len(c.GetArgumentsJson()); total > PolicyTestsArguments {
			return exceeded("cases", "at most %d bytes of arguments in all", PolicyTestsArguments)
		}
		for _, s := range []string{c.GetName(), c.GetAgent(), c.GetUser(), c.GetEmail(), c.GetTool(), c.GetSourceIp(), c.GetProtocol(), c.GetExpect()} {
			if len(s) > PolicyTestField {
				return exceeded(field, "text fields are at most %d bytes", PolicyTestField)
			}
		}
		if err := CheckJSON(field+".arguments_json", []byte(c.GetArgumentsJson()), PolicyTestArguments); err != nil {
			return err
		}
		if len(c.GetGroups()) > PolicyTestList || len(c.GetPolicies()) > PolicyTestList || len(c.GetFindings()) > PolicyTestList {
			return exceeded(field, "at most %d groups, %d policies and %d findings", PolicyTestList, PolicyTestList, PolicyTestList)
		}
		for _, s := range slices.Concat(c.GetGroups(), c.GetPolicies(), c.GetFindings()) {
			if len(s) > PolicyTestField {
				return exceeded(field, "a group, policy id or finding is at most %d bytes", PolicyTestField)
			}
		}
	}
	return nil
}

// Rollout checks a policy rollout, including its candidate's Cedar source.
func Rollout(r *configv1.Rollout) error {
	if err := Meta(r.GetMeta()); err != nil {
		return err
	}
	p := r.GetPlan()
	switch {
	case len(r.GetPolicySet()) > Name:
		return exceeded("policy_set", "at most %d bytes", Name)
	case len(r.GetFilename()) > PolicyFilename:
		return exceeded("filename", "at most %d bytes", PolicyFilename)
	case len(r.GetPolicyIds()) > PoliciesPerSet || len(r.GetValueLists()) > PoliciesPerSet:
		return exceeded("policy_ids", "at most %d", PoliciesPerSet)
	case len(r.GetMessage()) > PolicyMessage:
		return exceeded("message", "at most %d bytes", PolicyMessage)
	case len(r.GetReason()) > PolicyMessage:
		return exceeded("reason", "at most %d bytes", PolicyMessage)
	case len(p.GetCanaryBasisPoints()) > CanarySteps:
		return exceeded("plan.canary_basis_points", "at most %d steps", CanarySteps)
	case len(p.GetGates()) > RolloutGates:
		return exceeded("plan.gates", "at most %d", RolloutGates)
	case len(r.GetTransitions()) > RolloutTransitions:
		return exceeded("transitions", "at most %d", RolloutTransitions)
	}
	for _, g := range p.GetGates() {
		if len(g) > RolloutGate {
			return exceeded("plan.gates", "each at most %d bytes", RolloutGate)
		}
	}
	for _, t := range r.GetTransitions() {
		if len(t.GetReason()) > PolicyMessage || len(t.GetActor()) > Actor || len(t.GetAction()) > Name {
			return exceeded("transitions", "a reason is at most %d bytes, an actor %d", PolicyMessage, Actor)
		}
	}
	return CheckCedar([]byte(r.GetSource()))
}

// ValueList checks a value list.
func ValueList(l *configv1.ValueList) error {
	if err := Meta(l.GetMeta()); err != nil {
		return err
	}
	if len(l.GetValues()) > ListValues {
		return exceeded("values", "at most %d values (got %d)", ListValues, len(l.GetValues()))
	}
	for i, v := range l.GetValues() {
		if len(v) > ListValue {
			return exceeded(fmt.Sprintf("values[%d]", i), "at most %d bytes", ListValue)
		}
	}
	return nil
}

// InspectionRule checks an inspection rule.
func InspectionRule(r *configv1.InspectionRule) error {
	if err := Meta(r.GetMeta()); err != nil {
		return err
	}
	sc := r.GetScope()
	switch {
	case len(sc.GetUpstream()) > Name || len(sc.GetTool()) > Name || len(sc.GetTeam()) > Name:
		return exceeded("scope", "names are at most %d bytes", Name)
	case len(r.GetDetectors()) > InspectionDetectors:
		return exceeded("detectors", "at most %d", InspectionDetectors)
	case len(r.GetPatterns()) > InspectionDetectors:
		return exceeded("patterns", "at most %d", InspectionDetectors)
	case len(r.GetClassifier().GetUrl()) > URL:
		return exceeded("classifier.url", "at most %d bytes", URL)
	case len(r.GetRows().GetPath()) > JSONPath:
		return exceeded("rows.path", "at most %d bytes", JSONPath)
	}
	for i, d := range r.GetDetectors() {
		if len(d) > InspectionDetector {
			return exceeded(fmt.Sprintf("detectors[%d]", i), "at most %d bytes", InspectionDetector)
		}
	}
	for i, p := range r.GetPatterns() {
		if len(p) > InspectionPattern {
			return exceeded(fmt.Sprintf("patterns[%d]", i), "at most %d bytes", InspectionPattern)
		}
	}
	return nil
}

// Setting checks a cluster-wide setting.
func Setting(st *configv1.Setting) error {
	if err := Meta(st.GetMeta()); err != nil {
		return err
	}
	if len(st.GetValues()) > SettingValues {
		return exceeded("values", "at most %d values (got %d)", SettingValues, len(st.GetValues()))
	}
	for i, v := range st.GetValues() {
		if len(v) > SettingValue {
			return exceeded(fmt.Sprintf("values[%d]", i), "at most %d bytes", SettingValue)
		}
	}
	return nil
}

// IdentitySource checks an identity source, including the nesting of an
// inline JWKS.
func IdentitySource(s *configv1.IdentitySource) error {
	if err := Meta(s.GetMeta()); err != nil {
		return err
	}
	if j := s.GetJwtIssuer(); j != nil {
		switch {
		case len(j.GetIssuer()) > URL:
			return exceeded("jwt_issuer.issuer", "at most %d bytes", URL)
		case len(j.GetJwksUrl()) > URL:
			return exceeded("jwt_issuer.jwks_url", "at most %d bytes", URL)
		case len(j.GetAudiences()) > Audiences:
			return exceeded("jwt_issuer.audiences", "at most %d audiences", Audiences)
		case len(j.GetAlgorithms()) > Algorithms:
			return exceeded("jwt_issuer.algorithms", "at most %d algorithms", Algorithms)
		case len(j.GetAgentClaim()) > Claim || len(j.GetUserClaim()) > Claim || len(j.GetGroupsClaim()) > Claim:
			return exceeded("jwt_issuer", "claim names are at most %d bytes", Claim)
		}
		for i, a := range j.GetAudiences() {
			if len(a) > Audience {
				return exceeded(fmt.Sprintf("jwt_issuer.audiences[%d]", i), "at most %d bytes", Audience)
			}
		}
		for i, a := range j.GetAlgorithms() {
			if len(a) > Claim {
				return exceeded(fmt.Sprintf("jwt_issuer.algorithms[%d]", i), "at most %d bytes", Claim)
			}
		}
		return CheckJSON("jwt_issuer.jwks", j.GetJwks(), JWKS)
	}
	if len(s.GetMtlsAuthority().GetCaPem()) > CAPEM {
		return exceeded("mtls_authority.ca_pem", "at most %d bytes", CAPEM)
	}
	return nil
}

// SealedSecret checks a stored secret (its value sealed).
func SealedSecret(s *configv1.Secret) error {
	if err := Meta(s.GetMeta()); err != nil {
		return err
	}
	if len(s.GetCiphertext()) > SecretSealed {
		return exceeded("value", "at most %d bytes", SecretValue)
	}
	return nil
}

// AdminToken checks an admin token.
func AdminToken(t *configv1.AdminToken) error {
	if err := Meta(t.GetMeta()); err != nil {
		return err
	}
	if len(t.GetSha256()) > 64 || len(t.GetDataplane()) > Name {
		return exceeded("admin_token", "a SHA-256 digest and a data plane name of at most %d bytes", Name)
	}
	return nil
}

// Node checks a control-plane node's record.
func Node(n *configv1.Node) error {
	if err := Meta(n.GetMeta()); err != nil {
		return err
	}
	if len(n.GetRaftAddr()) > Addr || len(n.GetApiAddr()) > Addr {
		return exceeded("node", "addresses are at most %d bytes", Addr)
	}
	return nil
}

// ClusterIdentity checks the cluster identity a bootstrap records.
func ClusterIdentity(c *configv1.ClusterIdentity) error {
	switch {
	case len(c.GetClusterId()) > ClusterID || len(c.GetKekId()) > ClusterID:
		return exceeded("identity", "the cluster id and key id are at most %d bytes", ClusterID)
	case len(c.GetCaCertPem()) > CAPEM:
		return exceeded("identity.ca_cert_pem", "at most %d bytes", CAPEM)
	case len(c.GetCaKeySealed()) > SecretSealed:
		return exceeded("identity.ca_key_sealed", "at most %d bytes", SecretSealed)
	}
	return nil
}

// In is Error with its field moved under parent ("policy_sets[3]"): for
// callers that check many resources of one message.
func In(parent string, err error) error { return in(parent, err) }
