package adminapi

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// Limits of an upload batch (the data plane's uploader stays within them).
const (
	MaxUploadRecords = 1000
	MaxUploadBytes   = 4 << 20
)

// attestKeyPurpose derives the cluster's attestation signing key from the
// KEK: every node derives the same key, so any node can sign.
const attestKeyPurpose = "audit-attestation-ed25519"

// AttestationContext prefixes the signed statement (see SignedAttestation).
const AttestationContext = "portcullis.audit.v1.Attestation\n"

func (a *API) auditStore() (*auditstore.Store, error) {
	if a.cfg.Audit == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this control-plane node keeps no audit store"))
	}
	return a.cfg.Audit, nil
}

// UploadState implements AuditService.
func (a *API) UploadState(ctx context.Context, _ *connect.Request[auditv1.UploadStateRequest]) (*connect.Response[auditv1.UploadStateResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	// This node may lag the leader; a lower answer only costs a resend of
	// records the store then skips.
	return resp(&auditv1.UploadStateResponse{NextSequence: as.Next(callerFrom(ctx).dataplane)}), nil
}

// Upload implements AuditService: it checks the batch (the caller's own
// consecutive records, every hash right, every prev_hash the hash of the
// record before) and proposes it to the cluster as one AppendAudit
// command, forwarded to the leader from a follower.
func (a *API) Upload(ctx context.Context, req *connect.Request[auditv1.UploadRequest]) (*connect.Response[auditv1.UploadResponse], error) {
	if _, err := a.auditStore(); err != nil {
		return nil, err
	}
	dp := callerFrom(ctx).dataplane
	recs := req.Msg.GetRecords()
	if len(recs) == 0 || len(recs) > MaxUploadRecords {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("an upload carries 1 to %d records", MaxUploadRecords))
	}
	var scratch []byte
	for i, r := range recs {
		if r.GetDataplane() != dp {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("record %d belongs to data plane %q; this credential is data plane %q's", r.GetSequence(), r.GetDataplane(), dp))
		}
		var prev []byte
		if i > 0 {
			if r.GetSequence() != recs[i-1].GetSequence()+1 {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("records must be consecutive: %d follows %d", r.GetSequence(), recs[i-1].GetSequence()))
			}
			prev = recs[i-1].GetHash()
		} else if r.GetSequence() == 1 {
			prev = auditchain.Zero
		}
		var reason string
		if reason, scratch = auditchain.Check(r, prev, scratch); reason != "" {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("record %d: %s", r.GetSequence(), reason))
		}
	}
	cmd := &fsmv1.Command{
		Actor:  callerFrom(ctx).actor(),
		Time:   timestamppb.New(a.cfg.Now()),
		Method: "AuditService.Upload",
		Op:     &fsmv1.Command_AppendAudit{AppendAudit: &fsmv1.AppendAudit{Dataplane: dp, Records: recs}},
	}
	res, err := a.cfg.Store.Apply(ctx, cmd)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	if e := res.GetError(); e != nil && e.GetCode() != fsmv1.ErrorCode_ERROR_CODE_ABORTED {
		a.log.WarnContext(ctx, "audit upload refused", "dataplane", dp, "err", e.GetMessage())
		return nil, connect.NewError(resultCode(e.GetCode()), errors.New(e.GetMessage()))
	}
	// ABORTED: the batch did not continue the stored sequence; the caller
	// resumes from next_sequence.
	return resp(&auditv1.UploadResponse{NextSequence: res.GetAuditNextSequence()}), nil
}

// Query implements AuditService.
func (a *API) Query(ctx context.Context, req *connect.Request[auditv1.QueryRequest]) (*connect.Response[auditv1.QueryResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if id := m.GetRecordId(); id != "" {
		r, err := a.record(id)
		if err != nil {
			return nil, err
		}
		return resp(&auditv1.QueryResponse{Records: []*auditv1.Record{r}}), nil
	}
	f := auditstore.Filter{
		Agent: m.GetAgent(), User: m.GetUser(),
		Decision: m.GetDecision(), Outcome: m.GetOutcome(), Mode: m.GetMode(), DP: m.GetDataplane(),
	}
	if m.GetFrom() != nil {
		f.From = m.GetFrom().AsTime()
	}
	if m.GetTo() != nil {
		f.To = m.GetTo().AsTime()
	}
	var st *state.State
	if m.GetUserNotInList() != "" || m.GetTool() != "" || m.GetUpstream() != "" {
		if st, err = a.read(ctx, req.Header()); err != nil {
			return nil, err
		}
	}
	// The tool and upstream as the current registry names them (see
	// auditnames.go).
	target := auditTarget{known: true}
	if m.GetTool() != "" || m.GetUpstream() != "" {
		if target, err = resolveAuditTarget(st, m.GetUpstream(), m.GetTool()); err != nil {
			return nil, err
		}
		f.Tool, f.Upstream = target.tool, target.upstream
	}
	if name := m.GetUserNotInList(); name != "" {
		r, ok := st.Get(resource.ValueList, name)
		if !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("value list %q does not exist", name))
		}
		f.UserNotIn = map[string]bool{}
		for _, v := range r.GetValueList().GetValues() {
			f.UserNotIn[v] = true
		}
	}
	limit := int(m.GetLimit())
	switch {
	case limit < 0 || limit > maxPageSize:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("limit must be between 0 and %d", maxPageSize))
	case limit == 0:
		limit = defaultPageSize
	}
	// Positions differ between nodes' stores: a token names its node.
	node := a.cfg.Cluster.NodeID()
	tok := m.GetPageToken()
	if tok != "" {
		issuer, rest, ok := strings.Cut(tok, ".")
		if !ok {
			return nil, connect.NewError(connect.CodeInvalidArgument, auditstore.ErrBadPageToken)
		}
		if issuer != node {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("this page token was issued by control-plane node %q; continue there or start the query again", issuer))
		}
		tok = rest
	}
	recs, next, err := as.Query(f, tok, limit)
	if next != "" {
		next = node + "." + next
	}
	if errors.Is(err, auditstore.ErrBadPageToken) {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err == nil && !target.known && tok == "" && len(recs) == 0 {
		// Not registered now, and no record in this query's range: a tool
		// or upstream that never existed (a typo), unless some stored
		// record outside the range names it.
		var any []*auditv1.Record
		any, _, err = as.Query(auditstore.Filter{Tool: target.tool, Upstream: target.upstream}, "", 1)
		if err == nil && len(any) == 0 {
			return nil, errUnknownAuditTarget(m.GetUpstream(), m.GetTool())
		}
	}
	if err != nil {
		a.log.ErrorContext(ctx, "audit query", "err", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("reading the audit store failed; see the node's log"))
	}
	return resp(&auditv1.QueryResponse{Records: recs, NextPageToken: next}), nil
}

// Verify implements AuditService.
func (a *API) Verify(ctx context.Context, _ *connect.Request[auditv1.VerifyRequest]) (*connect.Response[auditv1.VerifyResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	rep, err := as.Verify()
	if err != nil {
		a.log.ErrorContext(ctx, "audit verify", "err", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("reading the audit store failed; see the node's log"))
	}
	out := &auditv1.VerifyResponse{Ok: rep.Problem == nil}
	for _, c := range rep.Chains {
		out.Chains = append(out.Chains, &auditv1.Chain{Dataplane: c.Dataplane, Records: c.Records, FirstSequence: c.First, LastSequence: c.Last, Head: c.Head})
	}
	if p := rep.Problem; p != nil {
		a.log.WarnContext(ctx, "audit store does not verify", "problem", p.Error())
		out.Problem = &auditv1.Problem{Dataplane: p.Dataplane, Sequence: p.Sequence, Reason: p.Reason}
	}
	return resp(out), nil
}

// Attest implements AuditService: it verifies the whole store first and
// refuses to sign while any chain is broken.
func (a *API) Attest(ctx context.Context, req *connect.Request[auditv1.AttestRequest]) (*connect.Response[auditv1.AttestResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if m.GetFrom() == nil || m.GetTo() == nil || !m.GetFrom().AsTime().Before(m.GetTo().AsTime()) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("from and to are required, from before to"))
	}
	rep, err := as.Ranges(m.GetFrom().AsTime(), m.GetTo().AsTime())
	if err != nil {
		a.log.ErrorContext(ctx, "audit attest", "err", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("reading the audit store failed; see the node's log"))
	}
	if p := rep.Problem; p != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("refusing to attest: data plane %q record %d does not verify (%s); run 'gwctl audit verify'", p.Dataplane, p.Sequence, p.Reason))
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	att := &auditv1.Attestation{
		From: m.GetFrom(), To: m.GetTo(), IssueTime: timestamppb.New(a.cfg.Now().Truncate(time.Second)),
		ClusterId: st.Identity().GetClusterId(), NodeId: a.cfg.Cluster.NodeID(),
	}
	for _, r := range rep.Ranges {
		att.Ranges = append(att.Ranges, &auditv1.AttestedRange{
			Dataplane: r.Dataplane, Records: r.Records, FirstSequence: r.First, LastSequence: r.Last,
			FirstPrevHash: r.FirstPrevHash, Head: r.Head,
		})
	}
	stmt, err := proto.MarshalOptions{Deterministic: true}.Marshal(att)
	if err != nil {
		return nil, edge.Internal(ctx, a.log, "encode the attestation", err)
	}
	sig := ed25519.Sign(a.attestKey, append([]byte(AttestationContext), stmt...))
	return resp(&auditv1.AttestResponse{Attestation: &auditv1.SignedAttestation{
		Statement: stmt, Signature: sig, PublicKey: a.attestKey.Public().(ed25519.PublicKey),
	}}), nil
}

// GetPublicKey implements AuditService.
func (a *API) GetPublicKey(context.Context, *connect.Request[auditv1.GetPublicKeyRequest]) (*connect.Response[auditv1.GetPublicKeyResponse], error) {
	return resp(&auditv1.GetPublicKeyResponse{PublicKey: a.attestKey.Public().(ed25519.PublicKey)}), nil
}

// record returns the record named "<dataplane>/<sequence>" from this
// node's store.
func (a *API) record(id string) (*auditv1.Record, error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(id, '/')
	var seq uint64
	if i > 0 {
		seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	}
	if i <= 0 || err != nil || seq == 0 || len(id) > 512 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("a record id is <dataplane>/<sequence>, e.g. finance-dp/42"))
	}
	r, err := as.Get(id[:i], seq)
	if errors.Is(err, auditstore.ErrNotHeld) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("audit record %s is not in this node's store (not uploaded yet, or dropped by retention)", id))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, errors.New("reading the audit store failed; see the node's log"))
	}
	return r, nil
}

// Usage implements AuditService: what calls consumed over a time range,
// summed by agent, team, user or model, from this node's store.
func (a *API) Usage(_ context.Context, req *connect.Request[auditv1.UsageRequest]) (*connect.Response[auditv1.UsageResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	var g auditstore.UsageGroup
	switch m.GetGroupBy() {
	case auditv1.UsageGroup_USAGE_GROUP_AGENT, auditv1.UsageGroup_USAGE_GROUP_UNSPECIFIED:
		g = auditstore.ByAgent
	case auditv1.UsageGroup_USAGE_GROUP_TEAM:
		g = auditstore.ByTeam
	case auditv1.UsageGroup_USAGE_GROUP_USER:
		g = auditstore.ByUser
	case auditv1.UsageGroup_USAGE_GROUP_MODEL:
		g = auditstore.ByModel
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("group_by %d is not a usage group", m.GetGroupBy()))
	}
	f := auditstore.UsageFilter{Agent: m.GetAgent(), Team: m.GetTeam(), User: m.GetUser(), Model: m.GetModel()}
	if m.GetFrom() != nil {
		f.From = m.GetFrom().AsTime()
	}
	if m.GetTo() != nil {
		f.To = m.GetTo().AsTime()
	}
	rows, read, err := as.Usage(f, g)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, errors.New("the audit store could not be read"))
	}
	out := &auditv1.UsageResponse{Records: read, Rows: make([]*auditv1.UsageRow, len(rows))}
	for i, r := range rows {
		out.Rows[i] = &auditv1.UsageRow{
			Key: r.Key, Calls: r.Calls, InputTokens: r.Input, CachedInputTokens: r.CachedInput,
			OutputTokens: r.Output, ReasoningTokens: r.Reasoning, CostNanos: r.CostNanos,
			EstimatedCalls: r.EstimatedCalls, UnpricedCalls: r.UnpricedCalls,
		}
	}
	return resp(out), nil
}
