package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"github.com/portcullis-gw/portcullis/internal/setting"
	"github.com/portcullis-gw/portcullis/internal/toolpin"
)

// Limits on what a caller controls, from the one table in package limits
// (kept here under their old names for callers of this package).
const (
	MaxLabels          = limits.Labels
	MaxOwnerLen        = limits.Owner
	MaxDescriptionLen  = limits.Description
	MaxLabelValueLen   = limits.LabelValue
	MaxAPIKeys         = limits.APIKeys
	MaxIdentities      = limits.Identities
	MaxPolicySource    = limits.PolicySetSource
	MaxToolDefinition  = limits.ToolDefinition
	MaxToolVersions    = limits.ToolVersions
	MaxSecretSealed    = limits.SecretSealed
	MaxJWKSBytes       = limits.JWKS
	MaxURLLen          = limits.URL
	MaxPolicyFilename  = limits.PolicyFilename
	MaxScopes          = limits.Scopes
	MaxListValues      = limits.ListValues
	MaxListValueLen    = limits.ListValue
	maxRequestBytesCap = 64 << 20
)

// InvalidError says which field of a resource is wrong and why. Its message
// is safe to show to clients.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

// ErrInvalid is matched by every *InvalidError via errors.Is.
var ErrInvalid = errors.New("invalid resource")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	labelKeyRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$`)
	toolNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	prefixRE    = regexp.MustCompile(`^[A-Za-z0-9.-]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9.-])?$`)
	headerRE    = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
	keyIDRE     = regexp.MustCompile(`^[a-z0-9]{8,32}$`)
	fingerprint = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ValidateName checks a resource name (a DNS label).
func ValidateName(field, name string) error {
	if !nameRE.MatchString(name) {
		return invalid(field, "%q is not a valid name: use 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ValidateToolName checks an MCP tool name.
func ValidateToolName(field, name string) error {
	if !toolNameRE.MatchString(name) {
		return invalid(field, "%q is not a valid tool name: use 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'", name)
	}
	return nil
}

// ValidateMeta checks the caller-controlled fields of a ResourceMeta. The
// name is checked by the kind, since tool pins name themselves differently.
func ValidateMeta(m *configv1.ResourceMeta) error {
	if m == nil {
		return invalid("meta", "is required")
	}
	if err := fromLimit(limits.Meta(m), ""); err != nil {
		return err
	}
	if !utf8.ValidString(m.GetOwner()) {
		return invalid("meta.owner", "must be valid UTF-8")
	}
	if !utf8.ValidString(m.GetDescription()) {
		return invalid("meta.description", "must be valid UTF-8")
	}
	// In key order: the first bad label is named in the error, which the
	// state machine records, so it must be the same on every replica.
	for _, k := range slices.Sorted(maps.Keys(m.GetLabels())) {
		v := m.GetLabels()[k]
		if !labelKeyRE.MatchString(k) {
			return invalid("meta.labels", "key %q: use 1-63 characters of A-Z, a-z, 0-9, '_', '.', '/' and '-'", k)
		}
		if !utf8.ValidString(v) {
			return invalid("meta.labels", "value of %q must be valid UTF-8", k)
		}
	}
	return nil
}

// Validate checks everything about r that needs no other state: required
// fields, formats and limits. The state machine calls it on every put; the
// admin API calls it first to answer bad input early.
//
// The limits (package limits) are checked first, before anything parses a
// field: a policy set's Cedar source is scanned for nesting before Cedar
// sees it, a pin's JSON before a JSON parser does.
func Validate(r *fsmv1.Resource) error {
	m := Meta(r)
	if err := ValidateMeta(m); err != nil {
		return err
	}
	if err := checkLimits(r); err != nil {
		return err
	}
	switch k := r.GetKind().(type) {
	case *fsmv1.Resource_Agent:
		return validateAgent(k.Agent)
	case *fsmv1.Resource_Upstream:
		return validateUpstream(k.Upstream)
	case *fsmv1.Resource_ToolPin:
		return validateToolPin(k.ToolPin)
	case *fsmv1.Resource_PolicySet:
		return validatePolicySet(k.PolicySet)
	case *fsmv1.Resource_IdentitySource:
		return validateIdentitySource(k.IdentitySource)
	case *fsmv1.Resource_Secret:
		return validateSecret(k.Secret)
	case *fsmv1.Resource_AdminToken:
		return validateAdminToken(k.AdminToken)
	case *fsmv1.Resource_Node:
		return validateNode(k.Node)
	case *fsmv1.Resource_ValueList:
		return validateValueList(k.ValueList)
	case *fsmv1.Resource_ModelPrice:
		return validateModelPrice(k.ModelPrice)
	case *fsmv1.Resource_Budget:
		return validateBudget(k.Budget)
	case *fsmv1.Resource_RateLimit:
		return validateRateLimit(k.RateLimit)
	case *fsmv1.Resource_PolicyHistory:
		return ValidateName("meta.name", k.PolicyHistory.GetMeta().GetName())
	case *fsmv1.Resource_PolicyTests:
		return validatePolicyTests(k.PolicyTests)
	case *fsmv1.Resource_Rollout:
		return validateRollout(k.Rollout)
	case *fsmv1.Resource_Setting:
		return validateSetting(k.Setting)
	case *fsmv1.Resource_ListLearning:
		return validateListLearning(k.ListLearning)
	case *fsmv1.Resource_AlertRule:
		return validateAlertRule(k.AlertRule)
	case *fsmv1.Resource_Alert:
		return validateAlert(k.Alert)
	case *fsmv1.Resource_AuditCursor:
		return ValidateName("meta.name", k.AuditCursor.GetMeta().GetName())
	case *fsmv1.Resource_BudgetUsage:
		return ValidateName("meta.name", k.BudgetUsage.GetMeta().GetName())
	case *fsmv1.Resource_InspectionRule:
		return validateInspectionRule(k.InspectionRule)
	case *fsmv1.Resource_UpgradeProbe:
		if err := ValidateName("meta.name", k.UpgradeProbe.GetMeta().GetName()); err != nil {
			return err
		}
		if len(k.UpgradeProbe.GetNote()) > MaxDescriptionLen || !utf8.ValidString(k.UpgradeProbe.GetNote()) {
			return invalid("note", "must be valid UTF-8 of at most %d bytes", MaxDescriptionLen)
		}
		return nil
	default:
		return invalid("resource", "no resource given")
	}
}

// checkLimits checks r against the limits table and words a violation as
// an *InvalidError.
func checkLimits(r *fsmv1.Resource) error {
	var err error
	switch k := r.GetKind().(type) {
	case *fsmv1.Resource_Agent:
		err = limits.Agent(k.Agent)
	case *fsmv1.Resource_Upstream:
		err = limits.Upstream(k.Upstream)
	case *fsmv1.Resource_ToolPin:
		err = limits.ToolPin(k.ToolPin)
	case *fsmv1.Resource_PolicySet:
		err = limits.PolicySet(k.PolicySet)
	case *fsmv1.Resource_IdentitySource:
		err = limits.IdentitySource(k.IdentitySource)
	case *fsmv1.Resource_Secret:
		err = limits.SealedSecret(k.Secret)
	case *fsmv1.Resource_AdminToken:
		err = limits.AdminToken(k.AdminToken)
	case *fsmv1.Resource_Node:
		err = limits.Node(k.Node)
	case *fsmv1.Resource_ValueList:
		err = limits.ValueList(k.ValueList)
	case *fsmv1.Resource_ModelPrice:
		err = limits.ModelPrice(k.ModelPrice)
	case *fsmv1.Resource_Budget:
		err = limits.Budget(k.Budget)
	case *fsmv1.Resource_RateLimit:
		err = limits.RateLimit(k.RateLimit)
	case *fsmv1.Resource_PolicyHistory:
		err = limits.PolicyHistory(k.PolicyHistory)
	case *fsmv1.Resource_PolicyTests:
		err = limits.PolicyTests(k.PolicyTests)
	case *fsmv1.Resource_Rollout:
		err = limits.Rollout(k.Rollout)
	case *fsmv1.Resource_Setting:
		err = limits.Setting(k.Setting)
	case *fsmv1.Resource_ListLearning:
		err = limits.ListLearning(k.ListLearning)
	case *fsmv1.Resource_AlertRule:
		err = limits.AlertRule(k.AlertRule)
	case *fsmv1.Resource_Alert:
		err = limits.Alert(k.Alert)
	case *fsmv1.Resource_AuditCursor:
		err = limits.AuditCursor(k.AuditCursor)
	case *fsmv1.Resource_BudgetUsage:
		err = limits.BudgetUsage(k.BudgetUsage)
	case *fsmv1.Resource_InspectionRule:
		err = limits.InspectionRule(k.InspectionRule)
	}
	filename := r.GetPolicySet().GetFilename()
	if filename == "" {
		filename = r.GetPolicySet().GetMeta().GetName() + ".cedar"
	}
	if ro := r.GetRollout(); ro != nil {
		filename = ro.GetFilename()
		if filename == "" {
			filename = ro.GetPolicySet() + ".cedar"
		}
	}
	return fromLimit(err, filename)
}

// fromLimit turns a *limits.Error into an *InvalidError; a position in a
// policy set's source is written file:line:col, as Cedar diagnostics are.
func fromLimit(err error, filename string) error {
	var le *limits.Error
	if !errors.As(err, &le) {
		return err
	}
	if le.Line > 0 {
		return invalid(le.Field, "%s", le.In(filename))
	}
	return invalid(le.Field, "%s", le.Msg)
}

func validateAgent(a *configv1.Agent) error {
	if err := ValidateName("meta.name", a.GetMeta().GetName()); err != nil {
		return err
	}
	if a.GetTeam() != "" {
		if err := ValidateName("team", a.GetTeam()); err != nil {
			return err
		}
	}
	for i, k := range a.GetApiKeys() {
		if !keyIDRE.MatchString(k.GetId()) {
			return invalid(fmt.Sprintf("api_keys[%d].id", i), "must be 8-32 characters of a-z and 0-9")
		}
		if len(k.GetSha256()) != 32 {
			return invalid(fmt.Sprintf("api_keys[%d].sha256", i), "must be a SHA-256 digest")
		}
	}
	for i, s := range a.GetJwtSubjects() {
		if err := ValidateName(fmt.Sprintf("jwt_subjects[%d].identity_source", i), s.GetIdentitySource()); err != nil {
			return err
		}
		if s.GetSubject() == "" {
			return invalid(fmt.Sprintf("jwt_subjects[%d].subject", i), "is required")
		}
	}
	for i, id := range a.GetSpiffeIds() {
		u, err := url.Parse(id)
		if err != nil || u.Scheme != "spiffe" || u.Host == "" {
			return invalid(fmt.Sprintf("spiffe_ids[%d]", i), "%q is not a SPIFFE id (spiffe://trust-domain/path)", id)
		}
	}
	for i, fp := range a.GetCertFingerprints() {
		if !fingerprint.MatchString(fp) {
			return invalid(fmt.Sprintf("cert_fingerprints[%d]", i), "must be sha256:<64 lowercase hex digits>")
		}
	}
	return nil
}

// ValidateURL checks that raw is an absolute http(s) URL without user info.
// Egress rules (which addresses are allowed) are checked separately.
func ValidateURL(field, raw string) error {
	if raw == "" {
		return invalid(field, "is required")
	}
	if len(raw) > MaxURLLen {
		return invalid(field, "at most %d bytes", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid(field, "not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid(field, "scheme must be http or https, not %q", u.Scheme)
	}
	if u.User != nil {
		return invalid(field, "must not carry user info; use a credential instead")
	}
	if u.Hostname() == "" {
		return invalid(field, "has no host")
	}
	return nil
}

var forbiddenHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "host": true,
	"connection": true, "keep-alive": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true, "content-length": true, "content-type": true,
	"mcp-session-id": true, "mcp-protocol-version": true,
}

func validateUpstream(u *configv1.Upstream) error {
	if err := ValidateName("meta.name", u.GetMeta().GetName()); err != nil {
		return err
	}
	if u.GetProtocol() == configv1.Protocol_PROTOCOL_UNSPECIFIED {
		return invalid("protocol", "is required (mcp, a2a or llm)")
	}
	if _, ok := configv1.Protocol_name[int32(u.GetProtocol())]; !ok {
		return invalid("protocol", "unknown protocol %d", u.GetProtocol())
	}
	if err := ValidateURL("url", u.GetUrl()); err != nil {
		return err
	}
	if u.ToolPrefix != nil && u.GetToolPrefix() != "" {
		p := u.GetToolPrefix()
		if !prefixRE.MatchString(p) || strings.Contains(p, "__") {
			return invalid("tool_prefix", "%q: use 1-64 characters of A-Z, a-z, 0-9, '_', '.' and '-', without \"__\" and not starting or ending with '_'", p)
		}
	}
	if err := validateCredential(u.GetCredential()); err != nil {
		return err
	}
	if err := validateLLM(u); err != nil {
		return err
	}
	if cp := u.GetA2ACardPath(); cp != "" {
		if u.GetProtocol() != configv1.Protocol_PROTOCOL_A2A {
			return invalid("a2a_card_path", "is for A2A upstreams only")
		}
		if err := ValidateCardPath("a2a_card_path", cp); err != nil {
			return err
		}
	}
	l := u.GetLimits()
	if l.GetMaxRequestBytes() < 0 || l.GetMaxRequestBytes() > maxRequestBytesCap ||
		l.GetMaxResponseBytes() < 0 || l.GetMaxResponseBytes() > maxRequestBytesCap {
		return invalid("limits", "body limits must be between 0 (default) and %d bytes", maxRequestBytesCap)
	}
	if l.GetMaxConcurrency() < 0 || l.GetMaxConcurrency() > 10000 {
		return invalid("limits.max_concurrency", "must be between 0 (default) and 10000")
	}
	r := u.GetResilience()
	if r.GetTimeout() != nil {
		if d := r.GetTimeout().AsDuration(); d < 0 || d.Minutes() > 10 {
			return invalid("resilience.timeout", "must be between 0 (default) and 10m")
		}
	}
	if r.GetMaxRetries() < 0 || r.GetMaxRetries() > 10 {
		return invalid("resilience.max_retries", "must be between 0 and 10")
	}
	if r.GetBreakerFailures() < 0 || r.GetBreakerFailures() > 1000 {
		return invalid("resilience.breaker_failures", "must be between 0 (default) and 1000")
	}
	if r.GetBreakerOpen() != nil {
		if d := r.GetBreakerOpen().AsDuration(); d < 0 || d.Minutes() > 60 {
			return invalid("resilience.breaker_open", "must be between 0 (default) and 1h")
		}
	}
	return nil
}

// MaxCardPath bounds an A2A upstream's card path.
const MaxCardPath = 256

// ValidateCardPath checks an A2A upstream's agent-card path: an absolute
// URL path (it is joined to the origin of the upstream's URL) of at most
// MaxCardPath bytes, without query, fragment, "..", or characters that
// need escaping.
func ValidateCardPath(field, p string) error {
	if len(p) > MaxCardPath || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.Contains(p, "..") {
		return invalid(field, "%q: want an absolute path of at most %d bytes such as /.well-known/agent-card.json", p, MaxCardPath)
	}
	for _, c := range []byte(p) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/-._~", c) >= 0
		if !ok {
			return invalid(field, "%q: only letters, digits and /-._~ are allowed", p)
		}
	}
	return nil
}

func validateCredential(c *configv1.UpstreamCredential) error {
	switch k := c.GetKind().(type) {
	case nil:
		return nil
	case *configv1.UpstreamCredential_Header:
		h := k.Header.GetHeader()
		if !headerRE.MatchString(h) {
			return invalid("credential.header.header", "%q is not a header name", h)
		}
		if forbiddenHeaders[strings.ToLower(h)] {
			return invalid("credential.header.header", "%q cannot carry a credential here; use a bearer credential for Authorization", h)
		}
		return ValidateName("credential.header.secret", k.Header.GetSecret())
	case *configv1.UpstreamCredential_Bearer:
		return ValidateName("credential.bearer.secret", k.Bearer.GetSecret())
	case *configv1.UpstreamCredential_OauthClientCredentials:
		o := k.OauthClientCredentials
		if err := ValidateURL("credential.oauth_client_credentials.token_url", o.GetTokenUrl()); err != nil {
			return err
		}
		if o.GetClientId() == "" {
			return invalid("credential.oauth_client_credentials.client_id", "is required")
		}
		return ValidateName("credential.oauth_client_credentials.client_secret", o.GetClientSecret())
	default:
		return invalid("credential", "unknown credential kind")
	}
}

// SecretRefs returns the names of the secrets an upstream's credential uses.
func SecretRefs(u *configv1.Upstream) []string {
	switch k := u.GetCredential().GetKind().(type) {
	case *configv1.UpstreamCredential_Header:
		return []string{k.Header.GetSecret()}
	case *configv1.UpstreamCredential_Bearer:
		return []string{k.Bearer.GetSecret()}
	case *configv1.UpstreamCredential_OauthClientCredentials:
		return []string{k.OauthClientCredentials.GetClientSecret()}
	default:
		return nil
	}
}

func validateToolPin(p *configv1.ToolPin) error {
	if err := ValidateName("upstream", p.GetUpstream()); err != nil {
		return err
	}
	if err := ValidateToolName("tool", p.GetTool()); err != nil {
		return err
	}
	if p.GetMeta().GetName() != ToolPinName(p.GetUpstream(), p.GetTool()) {
		return invalid("meta.name", "must be %q", ToolPinName(p.GetUpstream(), p.GetTool()))
	}
	card := p.GetKind() == configv1.PinKind_PIN_KIND_AGENT_CARD
	if _, ok := configv1.PinKind_name[int32(p.GetKind())]; !ok {
		return invalid("kind", "unknown pin kind %d", p.GetKind())
	}
	if card && p.GetTool() != toolpin.AgentCardTool {
		return invalid("tool", "an agent card's pin is named %q", toolpin.AgentCardTool)
	}
	if len(p.GetVersions()) == 0 {
		return invalid("versions", "at least one version is required")
	}
	seen := map[int64]bool{}
	for i, v := range p.GetVersions() {
		f := fmt.Sprintf("versions[%d]", i)
		if v.GetVersion() <= 0 || seen[v.GetVersion()] {
			return invalid(f+".version", "versions must be positive and distinct")
		}
		seen[v.GetVersion()] = true
		if v.GetClass() == configv1.ToolClass_TOOL_CLASS_UNSPECIFIED {
			return invalid(f+".class", "the operator's classification is required (read-only, idempotent or mutating)")
		}
		if _, ok := configv1.ToolClass_name[int32(v.GetClass())]; !ok {
			return invalid(f+".class", "unknown class %d", v.GetClass())
		}
		if !jsonObject(v.GetDefinition()) {
			return invalid(f+".definition", "must be a JSON object")
		}
		if len(v.GetInputSchema()) > 0 && !jsonObject(v.GetInputSchema()) {
			return invalid(f+".input_schema", "must be a JSON object")
		}
		if err := validateDeprecation(f, v); err != nil {
			return err
		}
		if card {
			if len(v.GetInputSchema()) > 0 {
				return invalid(f+".input_schema", "an agent card has no input schema")
			}
			if _, err := toolpin.CardSkills(v.GetDefinition()); err != nil {
				return invalid(f+".definition", "%v", err)
			}
		}
	}
	if p.GetActiveVersion() != 0 && !seen[p.GetActiveVersion()] {
		return invalid("active_version", "version %d is not among the pin's versions", p.GetActiveVersion())
	}
	if card && len(p.GetAssignments()) > 0 {
		return invalid("assignments", "an agent card's versions are not assigned to agents")
	}
	return validateAssignments(p, seen)
}

// validateDeprecation checks a version's deprecation: both times or
// neither, the sunset after the deprecation, a message only with them.
func validateDeprecation(f string, v *configv1.ToolVersion) error {
	dep, sunset := v.GetDeprecateTime(), v.GetSunsetTime()
	switch {
	case dep == nil && sunset == nil:
		if v.GetDeprecationMessage() != "" {
			return invalid(f+".deprecation_message", "only a deprecated version has one")
		}
		return nil
	case dep == nil || sunset == nil:
		return invalid(f+".sunset_time", "a deprecation needs both deprecate_time and sunset_time")
	case !dep.IsValid() || !sunset.IsValid():
		return invalid(f+".sunset_time", "not a valid time")
	case !sunset.AsTime().After(dep.AsTime()):
		return invalid(f+".sunset_time", "must be after deprecate_time")
	}
	if !utf8.ValidString(v.GetDeprecationMessage()) {
		return invalid(f+".deprecation_message", "must be UTF-8")
	}
	return nil
}

// validateAssignments checks a pin's assignments: each names a version of
// the pin and exactly one team or agent, and no team or agent twice.
func validateAssignments(p *configv1.ToolPin, versions map[int64]bool) error {
	teams, agents := map[string]bool{}, map[string]bool{}
	for i, a := range p.GetAssignments() {
		f := fmt.Sprintf("assignments[%d]", i)
		if !versions[a.GetVersion()] {
			return invalid(f+".version", "version %d is not among the pin's versions", a.GetVersion())
		}
		switch {
		case (a.GetTeam() == "") == (a.GetAgent() == ""):
			return invalid(f, "exactly one of team and agent is required")
		case a.GetTeam() != "":
			if err := ValidateName(f+".team", a.GetTeam()); err != nil {
				return err
			}
			if teams[a.GetTeam()] {
				return invalid(f+".team", "team %q is assigned twice", a.GetTeam())
			}
			teams[a.GetTeam()] = true
		default:
			if err := ValidateName(f+".agent", a.GetAgent()); err != nil {
				return err
			}
			if agents[a.GetAgent()] {
				return invalid(f+".agent", "agent %q is assigned twice", a.GetAgent())
			}
			agents[a.GetAgent()] = true
		}
	}
	return nil
}

func jsonObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

func validatePolicySet(p *configv1.PolicySet) error {
	if err := ValidateName("meta.name", p.GetMeta().GetName()); err != nil {
		return err
	}
	if !utf8.ValidString(p.GetSource()) {
		return invalid("source", "must be UTF-8")
	}
	if strings.ContainsAny(p.GetFilename(), "\x00\n") {
		return invalid("filename", "must be one line")
	}
	if !utf8.ValidString(p.GetMessage()) {
		return invalid("message", "must be UTF-8")
	}
	if p.GetHistoryLimit() < 0 || p.GetHistoryLimit() > limits.PolicyHistoryMax {
		return invalid("history_limit", "keep between 1 and %d versions (0: %d)", limits.PolicyHistoryMax, limits.PolicyHistoryDefault)
	}
	if p.GetRestores() < 0 {
		return invalid("restores", "must not be negative")
	}
	return nil
}

// validateValueList checks a list's size and values. Duplicates are refused
// rather than dropped, so that what a caller sends is what the list holds;
// the order does not matter (the state machine stores values sorted).
func validateValueList(l *configv1.ValueList) error {
	if err := ValidateName("meta.name", l.GetMeta().GetName()); err != nil {
		return err
	}
	seen := make(map[string]bool, len(l.GetValues()))
	for i, v := range l.GetValues() {
		if err := ValidateListValue(fmt.Sprintf("values[%d]", i), v); err != nil {
			return err
		}
		if seen[v] {
			return invalid(fmt.Sprintf("values[%d]", i), "%q appears more than once", v)
		}
		seen[v] = true
	}
	return nil
}

// validateSetting checks that a setting names a key of package setting and
// holds its values in canonical form (the admin API canonicalizes them
// before proposing, so every replica stores the same bytes).
func validateSetting(st *configv1.Setting) error {
	if err := setting.Check(st.GetMeta().GetName(), st.GetValues()); err != nil {
		if errors.Is(err, setting.ErrUnknown) {
			return invalid("meta.name", "%v", err)
		}
		return invalid("values", "%v", err)
	}
	return nil
}

// ValidateListValue checks one value of a value list.
func ValidateListValue(field, v string) error {
	if len(v) == 0 || len(v) > MaxListValueLen || !utf8.ValidString(v) {
		return invalid(field, "must be 1-%d bytes of UTF-8", MaxListValueLen)
	}
	return nil
}

// AllowedJWTAlgorithms are the signature algorithms an issuer may list.
// "none" and the HMAC family are never accepted: a gateway holding a shared
// secret per issuer invites key-confusion attacks.
var AllowedJWTAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

func validateIdentitySource(s *configv1.IdentitySource) error {
	if err := ValidateName("meta.name", s.GetMeta().GetName()); err != nil {
		return err
	}
	switch k := s.GetKind().(type) {
	case *configv1.IdentitySource_JwtIssuer:
		j := k.JwtIssuer
		if j.GetIssuer() == "" {
			return invalid("jwt_issuer.issuer", "is required")
		}
		hasURL, hasInline := j.GetJwksUrl() != "", len(j.GetJwks()) > 0
		if hasURL == hasInline {
			return invalid("jwt_issuer", "give exactly one of jwks_url and jwks")
		}
		if hasURL {
			if err := ValidateURL("jwt_issuer.jwks_url", j.GetJwksUrl()); err != nil {
				return err
			}
		}
		if hasInline && !jsonObject(j.GetJwks()) {
			return invalid("jwt_issuer.jwks", "must be a JSON Web Key Set")
		}
		if len(j.GetAudiences()) == 0 {
			return invalid("jwt_issuer.audiences", "at least one audience is required")
		}
		for _, a := range j.GetAlgorithms() {
			if !AllowedJWTAlgorithms[a] {
				return invalid("jwt_issuer.algorithms", "%q is not allowed (use RS*, PS*, ES* or EdDSA)", a)
			}
		}
		if j.GetUse() == configv1.JwtUse_JWT_USE_UNSPECIFIED {
			return invalid("jwt_issuer.use", "say whether the issuer vouches for agents, users or both")
		}
		if j.GetLeeway() != nil && (j.GetLeeway().AsDuration() < 0 || j.GetLeeway().AsDuration().Minutes() > 5) {
			return invalid("jwt_issuer.leeway", "must be between 0 and 5m")
		}
		return nil
	case *configv1.IdentitySource_MtlsAuthority:
		rest := []byte(k.MtlsAuthority.GetCaPem())
		if len(rest) == 0 {
			return invalid("mtls_authority.ca_pem", "is required")
		}
		if _, err := parseCerts(rest); err != nil {
			return invalid("mtls_authority.ca_pem", "%v", err)
		}
		return nil
	default:
		return invalid("kind", "give jwt_issuer or mtls_authority")
	}
}

func validateSecret(s *configv1.Secret) error {
	if err := ValidateName("meta.name", s.GetMeta().GetName()); err != nil {
		return err
	}
	if len(s.GetCiphertext()) == 0 {
		return invalid("value", "is required")
	}
	if _, err := secretbind.Normalize(s.GetHosts()); err != nil {
		return invalid("hosts", "%v", err)
	}
	if !secretbind.IsCanonical(s.GetHosts()) {
		return invalid("hosts", "must be in canonical form (lower case, sorted, no duplicates)")
	}
	return nil
}

func validateAdminToken(t *configv1.AdminToken) error {
	if err := ValidateName("meta.name", t.GetMeta().GetName()); err != nil {
		return err
	}
	if _, ok := configv1.Role_name[int32(t.GetRole())]; !ok || t.GetRole() == configv1.Role_ROLE_UNSPECIFIED {
		return invalid("role", "one of admin, operator, auditor, dataplane is required")
	}
	if len(t.GetSha256()) != 32 {
		return invalid("sha256", "must be a SHA-256 digest")
	}
	if t.GetDataplane() != "" {
		return ValidateName("dataplane", t.GetDataplane())
	}
	return nil
}

func validateNode(n *configv1.Node) error {
	if err := ValidateName("meta.name", n.GetMeta().GetName()); err != nil {
		return err
	}
	// A node on etcd has no Raft transport, hence no raft_addr.
	if n.GetRaftAddr() != "" {
		if err := ValidateHostPort("raft_addr", n.GetRaftAddr()); err != nil {
			return err
		}
	}
	return ValidateHostPort("api_addr", n.GetApiAddr())
}

// ValidateHostPort checks a host:port address with a numeric port.
func ValidateHostPort(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return invalid(field, "%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return invalid(field, "%q has no valid port", addr)
	}
	return nil
}

// validatePolicyTests checks the test cases stored with a policy set: each
// names an agent and a tool and expects allow or deny; arguments are a
// JSON object; a user is SOURCE/NAME.
func validatePolicyTests(p *configv1.PolicyTests) error {
	if err := ValidateName("meta.name", p.GetMeta().GetName()); err != nil {
		return err
	}
	names := map[string]int{}
	for i, c := range p.GetCases() {
		field := fmt.Sprintf("cases[%d]", i)
		for _, s := range append([]string{c.GetName(), c.GetAgent(), c.GetUser(), c.GetEmail(), c.GetTool(), c.GetProtocol(), c.GetArgumentsJson()}, slices.Concat(c.GetGroups(), c.GetPolicies(), c.GetFindings())...) {
			if !utf8.ValidString(s) {
				return invalid(field, "text must be UTF-8")
			}
		}
		if c.GetName() != "" {
			if j, dup := names[c.GetName()]; dup {
				return invalid(field+".name", "%q is also the name of case %d", c.GetName(), j+1)
			}
			names[c.GetName()] = i
		}
		switch {
		case c.GetAgent() == "":
			return invalid(field+".agent", "is required")
		case c.GetTool() == "":
			return invalid(field+".tool", "is required")
		case c.GetExpect() != "allow" && c.GetExpect() != "deny":
			return invalid(field+".expect", "must be allow or deny")
		case !c.GetCheckPolicies() && len(c.GetPolicies()) > 0:
			return invalid(field+".policies", "are given without check_policies")
		case c.GetUser() == "" && (c.GetEmail() != "" || len(c.GetGroups()) > 0):
			return invalid(field, "email and groups need a user")
		}
		if u := c.GetUser(); u != "" {
			if src, name, ok := strings.Cut(u, "/"); !ok || src == "" || name == "" {
				return invalid(field+".user", "must be SOURCE/NAME")
			}
		}
		if a := strings.TrimSpace(c.GetArgumentsJson()); a != "" {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(a), &obj); err != nil || obj == nil {
				return invalid(field+".arguments_json", "must be a JSON object")
			}
		}
		if ip := c.GetSourceIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return invalid(field+".source_ip", "is not an IP address")
			}
		}
	}
	return nil
}

// validateRollout checks a rollout's names, texts and plan: a shadow
// stage and canary steps of at most 30 days, canary shares strictly
// increasing within 1–10,000 basis points, a step duration with canary
// steps, and gates that parse (package rolloutgate).
func validateRollout(r *configv1.Rollout) error {
	if err := ValidateName("meta.name", r.GetMeta().GetName()); err != nil {
		return err
	}
	if err := ValidateName("policy_set", r.GetPolicySet()); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"source", r.GetSource()}, {"message", r.GetMessage()}, {"reason", r.GetReason()}} {
		if !utf8.ValidString(f.v) {
			return invalid(f.name, "must be UTF-8")
		}
	}
	if strings.ContainsAny(r.GetFilename(), "\x00\n") {
		return invalid("filename", "must be one line")
	}
	p := r.GetPlan()
	if err := checkDuration("plan.shadow", p.GetShadow().AsDuration(), p.GetShadow() != nil && !p.GetShadow().IsValid()); err != nil {
		return err
	}
	if err := checkDuration("plan.step", p.GetStep().AsDuration(), p.GetStep() != nil && !p.GetStep().IsValid()); err != nil {
		return err
	}
	prev := uint32(0)
	for i, bp := range p.GetCanaryBasisPoints() {
		if bp == 0 || bp > 10000 || bp <= prev {
			return invalid(fmt.Sprintf("plan.canary_basis_points[%d]", i), "canary shares are 1–10,000 basis points (0.01%%–100%%), strictly increasing")
		}
		prev = bp
	}
	if len(p.GetCanaryBasisPoints()) > 0 && p.GetStep().AsDuration() <= 0 {
		return invalid("plan.step", "canary steps need a duration (--step)")
	}
	if _, err := rolloutgate.Parse(p.GetGates()); err != nil {
		return invalid("plan.gates", "%v", err)
	}
	return nil
}

func checkDuration(field string, d time.Duration, bad bool) error {
	if bad || d < 0 || d > limits.RolloutDuration*time.Second {
		return invalid(field, "must be between 0 and 30 days")
	}
	return nil
}
