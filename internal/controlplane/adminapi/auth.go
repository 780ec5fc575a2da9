package adminapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	c "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	ac "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

const (
	auditor   = configv1.Role_ROLE_AUDITOR
	operator  = configv1.Role_ROLE_OPERATOR
	admin     = configv1.Role_ROLE_ADMIN
	dataplane = configv1.Role_ROLE_DATAPLANE
)

// Read limits: the most one request may carry, once decompressed. JSON
// clients escape text (a Cedar file's quotes and newlines) and base64
// bytes, hence the factors over the stored limits.
const (
	// smallRequest: names, filters, flags, page tokens.
	smallRequest = 64 << 10
	// resourceRequest: one registry resource (agent, upstream, identity
	// source with inline keys, sealed secret).
	resourceRequest = 256 << 10
	// pinRequest: a tool definition.
	pinRequest = 2*resource.MaxToolDefinition + 64<<10
	// policyRequest: a policy set's Cedar source.
	policyRequest = 4*resource.MaxPolicySource + 64<<10
	// listRequest: a value list's values.
	listRequest = 2*resource.MaxListValues*resource.MaxListValueLen + 64<<10
	// ruleRequest: an inspection rule with its patterns.
	ruleRequest = 2*limits.InspectionDetectors*limits.InspectionPattern + 64<<10
	// testsRequest: a policy set's stored test cases.
	testsRequest = 4 << 20
	// settingRequest: one setting's values.
	settingRequest = 2*limits.SettingValues*limits.SettingValue + 64<<10
	// uploadRequest: a batch of audit records.
	uploadRequest = MaxUploadBytes + 64<<10
)

// procedures holds the least role and the read limit of every procedure.
// A procedure missing here is not served: default deny. The edge's gate
// enforces both before Connect reads a byte of the body.
var procedures = edge.Rules{
	c.AgentServiceCreateAgentProcedure:                   {Role: operator, MaxBytes: resourceRequest},
	c.AgentServiceGetAgentProcedure:                      {Role: auditor, MaxBytes: smallRequest},
	c.AgentServiceListAgentsProcedure:                    {Role: auditor, MaxBytes: smallRequest},
	c.AgentServiceUpdateAgentProcedure:                   {Role: operator, MaxBytes: resourceRequest},
	c.AgentServiceSetAgentDisabledProcedure:              {Role: operator, MaxBytes: smallRequest},
	c.AgentServiceDeleteAgentProcedure:                   {Role: operator, MaxBytes: smallRequest},
	c.AgentServiceRotateAgentKeyProcedure:                {Role: operator, MaxBytes: smallRequest},
	c.UpstreamServiceCreateUpstreamProcedure:             {Role: operator, MaxBytes: resourceRequest},
	c.UpstreamServiceGetUpstreamProcedure:                {Role: auditor, MaxBytes: smallRequest},
	c.UpstreamServiceListUpstreamsProcedure:              {Role: auditor, MaxBytes: smallRequest},
	c.UpstreamServiceUpdateUpstreamProcedure:             {Role: operator, MaxBytes: resourceRequest},
	c.UpstreamServiceDeleteUpstreamProcedure:             {Role: operator, MaxBytes: smallRequest},
	c.UpstreamServiceDiscoverUpstreamProcedure:           {Role: operator, MaxBytes: smallRequest},
	c.ValueListServiceCreateValueListProcedure:           {Role: operator, MaxBytes: listRequest},
	c.ValueListServiceGetValueListProcedure:              {Role: auditor, MaxBytes: smallRequest},
	c.ValueListServiceListValueListsProcedure:            {Role: auditor, MaxBytes: smallRequest},
	c.ValueListServiceUpdateValueListProcedure:           {Role: operator, MaxBytes: listRequest},
	c.ValueListServiceDeleteValueListProcedure:           {Role: operator, MaxBytes: smallRequest},
	c.ValueListServiceAddValuesProcedure:                 {Role: operator, MaxBytes: listRequest},
	c.ValueListServiceRemoveValuesProcedure:              {Role: operator, MaxBytes: listRequest},
	c.InspectionServiceCreateInspectionRuleProcedure:     {Role: operator, MaxBytes: ruleRequest},
	c.InspectionServiceGetInspectionRuleProcedure:        {Role: auditor, MaxBytes: smallRequest},
	c.InspectionServiceListInspectionRulesProcedure:      {Role: auditor, MaxBytes: smallRequest},
	c.InspectionServiceUpdateInspectionRuleProcedure:     {Role: operator, MaxBytes: ruleRequest},
	c.InspectionServiceDeleteInspectionRuleProcedure:     {Role: operator, MaxBytes: smallRequest},
	c.ValueListServiceSetLearningProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.ValueListServiceStopLearningProcedure:              {Role: operator, MaxBytes: smallRequest},
	c.ValueListServiceApproveValuesProcedure:             {Role: operator, MaxBytes: listRequest},
	c.ValueListServiceForgetValuesProcedure:              {Role: operator, MaxBytes: listRequest},
	c.AlertServiceCreateAlertRuleProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.AlertServiceGetAlertRuleProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.AlertServiceListAlertRulesProcedure:                {Role: auditor, MaxBytes: smallRequest},
	c.AlertServiceUpdateAlertRuleProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.AlertServiceDeleteAlertRuleProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.AlertServiceListAlertsProcedure:                    {Role: auditor, MaxBytes: smallRequest},
	c.AlertServiceDropAlertProcedure:                     {Role: operator, MaxBytes: smallRequest},
	c.PriceServiceSetModelPriceProcedure:                 {Role: operator, MaxBytes: resourceRequest},
	c.PriceServiceGetModelPriceProcedure:                 {Role: auditor, MaxBytes: smallRequest},
	c.PriceServiceListModelPricesProcedure:               {Role: auditor, MaxBytes: smallRequest},
	c.PriceServiceDeleteModelPriceProcedure:              {Role: operator, MaxBytes: smallRequest},
	c.BudgetServiceSetBudgetProcedure:                    {Role: operator, MaxBytes: resourceRequest},
	c.BudgetServiceGetBudgetProcedure:                    {Role: auditor, MaxBytes: smallRequest},
	c.BudgetServiceListBudgetsProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.BudgetServiceDeleteBudgetProcedure:                 {Role: operator, MaxBytes: smallRequest},
	c.BudgetServiceBudgetUsageProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.RateLimitServiceSetRateLimitProcedure:              {Role: operator, MaxBytes: resourceRequest},
	c.RateLimitServiceGetRateLimitProcedure:              {Role: auditor, MaxBytes: smallRequest},
	c.RateLimitServiceListRateLimitsProcedure:            {Role: auditor, MaxBytes: smallRequest},
	c.RateLimitServiceDeleteRateLimitProcedure:           {Role: operator, MaxBytes: smallRequest},
	c.ToolServicePinToolProcedure:                        {Role: operator, MaxBytes: pinRequest},
	c.ToolServiceGetToolPinProcedure:                     {Role: auditor, MaxBytes: smallRequest},
	c.ToolServiceListToolPinsProcedure:                   {Role: auditor, MaxBytes: smallRequest},
	c.ToolServiceDeleteToolPinProcedure:                  {Role: operator, MaxBytes: smallRequest},
	c.ToolServiceAssignToolVersionProcedure:              {Role: operator, MaxBytes: smallRequest},
	c.ToolServiceSetDefaultToolVersionProcedure:          {Role: operator, MaxBytes: smallRequest},
	c.ToolServiceDeprecateToolVersionProcedure:           {Role: operator, MaxBytes: smallRequest},
	c.ToolServiceDiffToolVersionsProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.ToolServiceListToolCallersProcedure:                {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceApplyPolicySetProcedure:               {Role: operator, MaxBytes: policyRequest},
	c.PolicyServiceGetPolicySetProcedure:                 {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceListPolicySetsProcedure:               {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceDeletePolicySetProcedure:              {Role: operator, MaxBytes: smallRequest},
	c.PolicyServiceGetCedarSchemaProcedure:               {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceListPolicyVersionsProcedure:           {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceGetPolicyVersionProcedure:             {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceRollbackPolicySetProcedure:            {Role: operator, MaxBytes: smallRequest},
	c.PolicyServiceReplayPolicySetProcedure:              {Role: auditor, MaxBytes: policyRequest},
	c.PolicyServiceSetPolicyTestsProcedure:               {Role: operator, MaxBytes: testsRequest},
	c.PolicyServiceGetPolicyTestsProcedure:               {Role: auditor, MaxBytes: smallRequest},
	c.PolicyServiceDeletePolicyTestsProcedure:            {Role: operator, MaxBytes: smallRequest},
	c.RolloutServiceStartRolloutProcedure:                {Role: operator, MaxBytes: policyRequest},
	c.RolloutServiceGetRolloutProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.RolloutServiceListRolloutsProcedure:                {Role: auditor, MaxBytes: smallRequest},
	c.RolloutServiceChangeRolloutProcedure:               {Role: operator, MaxBytes: smallRequest},
	c.IdentitySourceServiceCreateIdentitySourceProcedure: {Role: operator, MaxBytes: resourceRequest},
	c.IdentitySourceServiceGetIdentitySourceProcedure:    {Role: auditor, MaxBytes: smallRequest},
	c.IdentitySourceServiceListIdentitySourcesProcedure:  {Role: auditor, MaxBytes: smallRequest},
	c.IdentitySourceServiceUpdateIdentitySourceProcedure: {Role: operator, MaxBytes: resourceRequest},
	c.IdentitySourceServiceDeleteIdentitySourceProcedure: {Role: operator, MaxBytes: smallRequest},
	c.SecretServiceSetSecretProcedure:                    {Role: operator, MaxBytes: resourceRequest},
	c.SecretServiceBindSecretProcedure:                   {Role: admin, MaxBytes: smallRequest},
	c.SecretServiceGetSecretProcedure:                    {Role: auditor, MaxBytes: smallRequest},
	c.SecretServiceListSecretsProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.SecretServiceDeleteSecretProcedure:                 {Role: operator, MaxBytes: smallRequest},
	c.TokenServiceCreateTokenProcedure:                   {Role: admin, MaxBytes: smallRequest},
	c.TokenServiceListTokensProcedure:                    {Role: admin, MaxBytes: smallRequest},
	c.TokenServiceRevokeTokenProcedure:                   {Role: admin, MaxBytes: smallRequest},
	c.ClusterServiceGetClusterStatusProcedure:            {Role: auditor, MaxBytes: smallRequest},
	c.ClusterServiceIssueNodeCertificateProcedure:        {Role: admin, MaxBytes: smallRequest},
	c.ClusterServiceAddNodeProcedure:                     {Role: admin, MaxBytes: smallRequest},
	c.ClusterServiceRemoveNodeProcedure:                  {Role: admin, MaxBytes: smallRequest},
	c.BackupServiceSaveBackupProcedure:                   {Role: admin, MaxBytes: smallRequest},
	c.BackupServiceRestoreBackupProcedure:                {Role: admin, MaxBytes: MaxBackupBytes},
	c.AdminLogServiceListAdminEventsProcedure:            {Role: auditor, MaxBytes: smallRequest},
	c.DataplaneServiceCreateJoinCredentialProcedure:      {Role: admin, MaxBytes: smallRequest},
	c.DataplaneServiceRevokeJoinCredentialProcedure:      {Role: admin, MaxBytes: smallRequest},
	c.DataplaneServiceListDataplanesProcedure:            {Role: auditor, MaxBytes: smallRequest},
	c.DataplaneServiceSetFreezeProcedure:                 {Role: operator, MaxBytes: smallRequest},
	c.SettingServiceListSettingsProcedure:                {Role: auditor, MaxBytes: smallRequest},
	c.SettingServiceGetSettingProcedure:                  {Role: auditor, MaxBytes: smallRequest},
	c.SettingServiceSetSettingProcedure:                  {Role: admin, MaxBytes: settingRequest},
	c.SettingServiceResetSettingProcedure:                {Role: admin, MaxBytes: smallRequest},
	c.AccessServiceGetAuthorizationSnapshotProcedure:     {Role: auditor, MaxBytes: smallRequest},
	c.AccessServiceCheckProcedure:                        {Role: auditor, MaxBytes: resourceRequest},
	c.AccessServiceWhoCanProcedure:                       {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceUploadStateProcedure:                  {Role: dataplane, MaxBytes: smallRequest},
	ac.AuditServiceUploadProcedure:                       {Role: dataplane, MaxBytes: uploadRequest},
	ac.AuditServiceQueryProcedure:                        {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceVerifyProcedure:                       {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceAttestProcedure:                       {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceGetPublicKeyProcedure:                 {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceListConsumersProcedure:                {Role: auditor, MaxBytes: smallRequest},
	ac.AuditServiceUsageProcedure:                        {Role: auditor, MaxBytes: smallRequest},
}

// Procedures returns the rules of every procedure the admin API and the
// audit service serve (for tests and documentation).
func Procedures() edge.Rules {
	out := make(edge.Rules, len(procedures))
	for p, r := range procedures {
		out[p] = r
	}
	return out
}

// caller is the authenticated identity of a request.
type caller struct {
	tokenID string
	role    configv1.Role
	// dataplane is the data plane a dataplane-role token belongs to.
	dataplane string
}

func (c caller) actor() *configv1.Actor {
	return &configv1.Actor{TokenId: c.tokenID, Role: c.role}
}

// callerFrom is the caller the gate verified.
func callerFrom(ctx context.Context) caller {
	tok, _ := tokenauth.FromContext(ctx)
	return caller{tokenID: tok.ID, role: tok.Role, dataplane: tok.Dataplane}
}

// errNotGated refuses a request that reached a handler without passing the
// gate, which cannot happen through Routes: default deny all the same.
var errNotGated = connect.NewError(connect.CodePermissionDenied, errors.New("the request was not authenticated"))

// gatedInterceptor checks, as the last word before a handler runs, that
// the gate verified a token whose role the procedure allows. The gate has
// refused everyone else before their body was read.
type gatedInterceptor struct{}

func checkGated(ctx context.Context, procedure string) error {
	tok, ok := tokenauth.FromContext(ctx)
	rule, known := procedures[procedure]
	if !ok || !known || !tokenauth.Allows(tok.Role, rule.Role) {
		return errNotGated
	}
	return nil
}

func (gatedInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := checkGated(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (gatedInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (gatedInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := checkGated(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
