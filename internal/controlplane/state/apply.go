package state

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// Apply applies cmd, committed at log index, to s and returns the next state
// and the command's result. It is deterministic: every replica computes the
// same next state from the same inputs, and it never reads the clock.
// A refused command changes no resource; it is still recorded in the admin
// log and remembered for deduplication. The result shares messages with the
// state: callers must not modify it (clone first).
//
// Every limit on what the command carries (resource.ValidateCommand, which
// reads the table in package limits) is checked first, before any parser
// — Cedar, JSON Schema, JSON — sees a field. A command over a limit is
// refused as INVALID_ARGUMENT on every replica alike; that is how an entry
// committed by an older version that lacked the limit is replayed. The
// admin log records its fields cut to their limits, and it is remembered
// for deduplication unless its request id or actor is itself too long.
//
// Apply does not recover panics. The failures that took nodes down — a
// parser's stack overflow, memory exhaustion — are fatal errors that
// recover cannot catch; the limits prevent them. A recovered panic would
// be refused deterministically only if the panic were, and code that
// ranges over maps (cedar-go's validator does) need not be: one replica
// refusing what another applied is a silent divergence, worse than a
// node that stops and says why. Causes are fixed instead, and FuzzApply
// drives Apply with commands of every kind to find them.
func Apply(s *State, index uint64, cmd *fsmv1.Command) (*State, *fsmv1.Result) {
	return apply(s, index, cmd, false)
}

// apply is Apply; fullRevalidation makes a pin write re-validate every
// policy of every enabled set, as it did before re-validation was scoped
// (see revalidatePolicies), for tests that compare the two.
func apply(s *State, index uint64, cmd *fsmv1.Command, fullRevalidation bool) (*State, *fsmv1.Result) {
	switch cmd.GetOp().(type) {
	case *fsmv1.Command_ConsumeAudit, *fsmv1.Command_SettleAlert:
		return applyLeaderWork(s, index, cmd)
	}
	next := *s
	next.index = index
	next.derived = nil
	token := cmd.GetActor().GetTokenId()
	if e, ok := s.Dedup(token, cmd.GetRequestId()); ok && e.GetTime().GetSeconds() >= cmd.GetTime().GetSeconds()-DedupWindowSeconds {
		r := proto.Clone(e.GetResult()).(*fsmv1.Result)
		r.Deduplicated = true
		return &next, r
	}
	badInput := resource.ValidateCommand(cmd)

	t := newTxn(s, index, cmd)
	t.fullRevalidation = fullRevalidation
	var (
		stored *fsmv1.Resource
		ev     *configv1.AdminEvent
		cerr   *fsmv1.Error
	)
	if badInput != nil {
		ev = t.event()
		cerr = errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", badInput)
	} else {
		stored, ev, cerr = t.run()
	}
	if cerr == nil {
		next.derived = t.derived
	}
	result := &fsmv1.Result{Index: index}
	if cerr != nil {
		result.Error = cerr
		ev.ErrorCode = strings.TrimPrefix(cerr.GetCode().String(), "ERROR_CODE_")
		ev.ErrorMessage = cerr.GetMessage()
	} else {
		result.Resource = stored
		t.commitTo(&next)
		next.identity = t.identity
		next.freeze = t.freeze
		if t.configChanged {
			next.configVersion = index
			next.configTime = cmd.GetTime()
		}
	}
	if t.detail != "" {
		ev.Detail = cut(t.detail, limits.PolicyMessage+256)
	}
	ev.Index = index
	ev.Time = cmd.GetTime()
	ev.Actor = cmd.GetActor()
	ev.Method = cmd.GetMethod()
	ev.RequestId = cmd.GetRequestId()
	if badInput != nil {
		// Only what fits the limits is kept of a command over them.
		ev.Actor = &configv1.Actor{TokenId: cut(token, limits.Actor), Role: cmd.GetActor().GetRole()}
		ev.Method = cut(ev.Method, limits.Method)
		ev.RequestId = cut(ev.RequestId, limits.RequestID)
		ev.Name = cut(ev.Name, limits.Name)
		ev.Kind = cut(ev.Kind, limits.Name)
	}
	next.events = appendEvent(s.events, ev)
	if cmd.GetRequestId() != "" && len(cmd.GetRequestId()) <= limits.RequestID && len(token) <= limits.Actor {
		next.dedup, next.dedupAge = remember(s.dedup, s.dedupAge, index, cmd, result)
	}
	return &next, result
}

// cut returns s cut to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func appendEvent(t *iradix.Tree[*configv1.AdminEvent], ev *configv1.AdminEvent) *iradix.Tree[*configv1.AdminEvent] {
	t, _, _ = t.Insert(indexKey(ev.GetIndex()), ev)
	for t.Len() > MaxAdminEvents {
		k, _, ok := t.Root().Minimum()
		if !ok {
			break
		}
		t, _, _ = t.Delete(k)
	}
	return t
}

func remember(d *iradix.Tree[*fsmv1.DedupEntry], age *iradix.Tree[string], index uint64, cmd *fsmv1.Command, r *fsmv1.Result) (*iradix.Tree[*fsmv1.DedupEntry], *iradix.Tree[string]) {
	key := dedupKey(cmd.GetActor().GetTokenId(), cmd.GetRequestId())
	d, _, _ = d.Insert([]byte(key), &fsmv1.DedupEntry{
		TokenId:   cmd.GetActor().GetTokenId(),
		RequestId: cmd.GetRequestId(),
		Time:      cmd.GetTime(),
		Result:    r,
	})
	age, _, _ = age.Insert(append(indexKey(index), key...), key)
	cutoff := cmd.GetTime().GetSeconds() - DedupWindowSeconds
	for {
		k, oldest, ok := age.Root().Minimum()
		if !ok {
			break
		}
		e, _ := d.Get([]byte(oldest))
		if d.Len() <= MaxDedup && e != nil && e.GetTime().GetSeconds() >= cutoff {
			break
		}
		age, _, _ = age.Delete(k)
		d, _, _ = d.Delete([]byte(oldest))
	}
	return d, age
}

// txn is one command being applied: a write transaction over the resource
// tree plus what the command changed besides resources.
type txn struct {
	base  *State
	index uint64
	cmd   *fsmv1.Command
	res   *iradix.Txn[*fsmv1.Resource]
	// ids is the write transaction over the agent identifier index, nil
	// until an agent changes (see agentIDs).
	ids *iradix.Txn[string]
	// parsed is the write transaction over the cache of parsed policy
	// sources, nil until one is parsed (see parsedSet).
	parsed *iradix.Txn[*cedarschema.ParsedSet]
	// fullRevalidation: see apply.
	fullRevalidation bool
	identity         *configv1.ClusterIdentity
	freeze           *fsmv1.SetFreeze
	configChanged    bool
	// detail says more about the write for its admin event (a rollout's
	// change of stage).
	detail string
	// completing names the rollout whose completion is writing its
	// candidate as the set's next version, for the set's history.
	completing string
	// derived is the audit record the command asks for instead of its
	// admin write's (see State.DerivedRecord).
	derived *auditv1.Record
}

func newTxn(s *State, index uint64, cmd *fsmv1.Command) *txn {
	return &txn{base: s, index: index, cmd: cmd, res: s.res.Txn(), identity: s.identity, freeze: s.freeze}
}

// commitTo stores the resources the transaction wrote, and what is derived
// from them, in next.
func (t *txn) commitTo(next *State) {
	next.res = t.res.CommitOnly()
	if t.ids != nil {
		next.agentIDs = t.ids.CommitOnly()
	}
	if t.parsed != nil {
		next.parsed = t.parsed.CommitOnly()
	}
}

func (t *txn) get(k resource.Kind, name string) (*fsmv1.Resource, bool) {
	return t.res.Get(resKey(k, name))
}

func (t *txn) each(k resource.Kind, fn func(*fsmv1.Resource) bool) {
	it := t.res.Root().Iterator()
	it.SeekPrefix(kindPrefix(k))
	for _, v, ok := it.Next(); ok; _, v, ok = it.Next() {
		if !fn(v) {
			return
		}
	}
}

func (t *txn) insert(r *fsmv1.Resource) {
	old, replaced := t.res.Insert(resKey(resource.KindOf(r), resource.Name(r)), r)
	if resource.KindOf(r) == resource.Agent {
		if replaced {
			indexAgent(t.agentIDs(), old, false)
		}
		indexAgent(t.agentIDs(), r, true)
	}
	if resource.DataplaneRelevant(resource.KindOf(r)) {
		t.configChanged = true
	}
}

func (t *txn) remove(k resource.Kind, name string) {
	old, removed := t.res.Delete(resKey(k, name))
	if removed && k == resource.Agent {
		indexAgent(t.agentIDs(), old, false)
	}
	if removed {
		t.forgetParsed(k, name)
	}
	if resource.DataplaneRelevant(k) {
		t.configChanged = true
	}
}

func errf(code fsmv1.ErrorCode, format string, args ...any) *fsmv1.Error {
	return &fsmv1.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// event starts the admin event of the command: what it does to what.
func (t *txn) event() *configv1.AdminEvent {
	ev := &configv1.AdminEvent{}
	switch op := t.cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		ev.Op = "put"
		ev.Kind = string(resource.KindOf(op.Put.GetResource()))
		ev.Name = resource.Name(op.Put.GetResource())
	case *fsmv1.Command_Delete:
		ev.Op, ev.Kind, ev.Name = "delete", op.Delete.GetKind(), op.Delete.GetName()
	case *fsmv1.Command_Bootstrap:
		ev.Op, ev.Kind, ev.Name = "bootstrap", "cluster", op.Bootstrap.GetIdentity().GetClusterId()
	case *fsmv1.Command_SetFreeze:
		ev.Op, ev.Kind, ev.Name = "freeze", "cluster", fmt.Sprint(op.SetFreeze.GetFrozen())
	case *fsmv1.Command_Touch:
		ev.Op = "touch"
	case *fsmv1.Command_SignIn:
		ev.Op, ev.Kind, ev.Name = "sign-in", "session", t.cmd.GetActor().GetTokenId()
		if ip := op.SignIn.GetSourceIp(); len(ip) <= limits.Addr {
			if _, err := netip.ParseAddr(ip); err == nil {
				ev.SourceIp = ip
			}
		}
	case *fsmv1.Command_RolloutChange:
		ev.Op = "rollout_" + strings.ToLower(strings.TrimPrefix(op.RolloutChange.GetAction().String(), "ROLLOUT_ACTION_"))
		ev.Kind, ev.Name = string(resource.Rollout), op.RolloutChange.GetRollout()
	case *fsmv1.Command_ChangeLearned:
		ev.Op, ev.Kind, ev.Name = "learn", string(resource.ListLearning), describeLists(op.ChangeLearned.GetChanges())
	default:
		ev.Op = "unknown"
	}
	return ev
}

func (t *txn) run() (*fsmv1.Resource, *configv1.AdminEvent, *fsmv1.Error) {
	ev := t.event()
	if err := t.gate(); err != nil {
		return nil, ev, err
	}
	switch op := t.cmd.GetOp().(type) {
	case *fsmv1.Command_Put:
		r, err := t.put(op.Put)
		return r, ev, err
	case *fsmv1.Command_Delete:
		r, err := t.delete(op.Delete)
		return r, ev, err
	case *fsmv1.Command_Bootstrap:
		return nil, ev, t.bootstrap(op.Bootstrap)
	case *fsmv1.Command_SetFreeze:
		t.freeze = proto.Clone(op.SetFreeze).(*fsmv1.SetFreeze)
		t.configChanged = true
		return nil, ev, nil
	case *fsmv1.Command_Touch:
		t.configChanged = true
		return nil, ev, nil
	case *fsmv1.Command_ChangeLearned:
		r, rec, err := t.changeLearned(op.ChangeLearned)
		t.derived = rec
		return r, ev, err
	case *fsmv1.Command_SignIn:
		return nil, ev, t.signIn()
	case *fsmv1.Command_RolloutChange:
		r, err := t.rolloutChange(op.RolloutChange)
		return r, ev, err
	default:
		return nil, ev, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown command")
	}
}

// signIn records a web sign-in of the command's actor: it checks that the
// token still exists (a sign-in racing its revocation is refused) and
// changes nothing else. resource.ValidateCommand has checked the source
// address.
func (t *txn) signIn() *fsmv1.Error {
	id := t.cmd.GetActor().GetTokenId()
	if _, ok := t.get(resource.AdminToken, id); !ok {
		return errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "admin token %q does not exist", id)
	}
	return nil
}

// gate refuses a command that needs a cluster version some voter recorded
// in the state does not support (see package clusterversion). It reads the
// command and the replicated node records only, so every replica decides
// the same. A command this binary cannot apply at all never gets here in a
// running node (the Raft state machine stops on it first); called directly,
// Apply refuses it as an unknown command.
func (t *txn) gate() *fsmv1.Error {
	if t.cmd.GetOp() == nil {
		return nil // refused below as an unknown command
	}
	need, err := clusterversion.Needs(t.cmd)
	if err != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown command: %v", err)
	}
	if need.Version <= clusterversion.Baseline {
		return nil
	}
	if err := clusterversion.Gate(need, t.base.Voters()); err != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, "%v", err)
	}
	return nil
}

func (t *txn) put(p *fsmv1.Put) (*fsmv1.Resource, *fsmv1.Error) {
	if p.GetResource() == nil {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "no resource given")
	}
	r := proto.Clone(p.GetResource()).(*fsmv1.Resource)
	k := resource.KindOf(r)
	if k == "" || resource.Meta(r) == nil {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "resource has no kind or no metadata")
	}
	// resource.Validate ran on the command in Apply (ValidateCommand).
	name := resource.Name(r)
	old, exists := t.get(k, name)
	switch p.GetMode() {
	case fsmv1.WriteMode_WRITE_MODE_CREATE:
		if exists {
			return nil, errf(fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "%s %q already exists", k, name)
		}
	case fsmv1.WriteMode_WRITE_MODE_UPDATE:
		if !exists {
			return nil, errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "%s %q does not exist", k, name)
		}
	case fsmv1.WriteMode_WRITE_MODE_UPSERT:
	default:
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "write mode is required")
	}
	if want := p.GetExpectedRevision(); want != 0 {
		if !exists {
			return nil, errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "%s %q does not exist (expected revision %d)", k, name, want)
		}
		if got := resource.Meta(old).GetRevision(); got != want {
			return nil, errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "%s %q is at revision %d, not %d: it changed since you read it", k, name, got, want)
		}
	}
	spec := kinds[k]
	if !exists {
		old = nil
	}
	if spec.prepare != nil {
		if err := spec.prepare(t, old, r); err != nil {
			return nil, err
		}
	}
	t.stamp(old, r)
	t.insert(r)
	if spec.afterChange != nil {
		if err := spec.afterChange(t, old, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// stamp sets the output-only metadata of r.
func (t *txn) stamp(old, r *fsmv1.Resource) {
	m := resource.Meta(r)
	actor := t.cmd.GetActor().GetTokenId()
	m.Revision = t.index
	m.UpdateTime = t.cmd.GetTime()
	m.UpdatedBy = actor
	if old != nil {
		om := resource.Meta(old)
		m.CreateTime, m.CreatedBy = om.GetCreateTime(), om.GetCreatedBy()
	} else {
		m.CreateTime, m.CreatedBy = t.cmd.GetTime(), actor
	}
}

func (t *txn) delete(d *fsmv1.Delete) (*fsmv1.Resource, *fsmv1.Error) {
	k := resource.Kind(d.GetKind())
	if !resource.Known(k) {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown kind %q", d.GetKind())
	}
	old, ok := t.get(k, d.GetName())
	if !ok {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND, "%s %q does not exist", k, d.GetName())
	}
	if want := d.GetExpectedRevision(); want != 0 && resource.Meta(old).GetRevision() != want {
		return nil, errf(fsmv1.ErrorCode_ERROR_CODE_ABORTED, "%s %q is at revision %d, not %d: it changed since you read it", k, d.GetName(), resource.Meta(old).GetRevision(), want)
	}
	spec := kinds[k]
	if spec.beforeDelete != nil {
		if err := spec.beforeDelete(t, old); err != nil {
			return nil, err
		}
	}
	t.remove(k, d.GetName())
	if spec.afterChange != nil {
		if err := spec.afterChange(t, old, nil); err != nil {
			return nil, err
		}
	}
	return old, nil
}

func (t *txn) bootstrap(b *fsmv1.Bootstrap) *fsmv1.Error {
	if t.identity != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, "the cluster is already bootstrapped (cluster id %s)", t.identity.GetClusterId())
	}
	if b.GetIdentity().GetClusterId() == "" || b.GetIdentity().GetCaCertPem() == "" {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "bootstrap needs a cluster id and a CA")
	}
	for _, m := range []proto.Message{b.GetNode(), b.GetAdminToken()} {
		r := resource.Wrap(proto.Clone(m))
		if err := resource.Validate(r); err != nil {
			return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "bootstrap: %v", err)
		}
		t.stamp(nil, r)
		t.insert(r)
	}
	t.identity = proto.Clone(b.GetIdentity()).(*configv1.ClusterIdentity)
	t.configChanged = true
	return nil
}
