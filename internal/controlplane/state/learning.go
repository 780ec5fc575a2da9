package state

import (
	"maps"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// Learned lists (see config.v1.ListLearning). A learning is the learning
// of the value list of the same name: it cannot exist without the list,
// and the list cannot be deleted while it learns. A put sets what the list
// learns from; what it has learned (sets, seeded, generation) is never
// taken from a put: the state machine keeps it while tool, argument,
// scope and seed_from stay the same, and starts afresh (the next
// generation) when any of them changes. Only ChangeLearned (operators)
// and ConsumeAudit (the leader's audit consumer) change the sets.
//
// The schema's context.learned declares one attribute per learning, so
// creating or deleting one re-validates every enabled policy set: a
// learning that a policy reads cannot be deleted.

// learnedNames lists the learnings, in name order.
func learnedNames(each func(resource.Kind, func(*fsmv1.Resource) bool)) []string {
	var out []string
	each(resource.ListLearning, func(r *fsmv1.Resource) bool {
		out = append(out, resource.Name(r))
		return true
	})
	return out
}

func prepareListLearning(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	l := r.GetListLearning()
	name := l.GetMeta().GetName()
	if _, ok := t.get(resource.ValueList, name); !ok {
		return failed("value list %q does not exist; create it first (gwctl valuelist create %s), then make it learn", name, name)
	}
	o := old.GetListLearning()
	if o != nil && sameLearning(o, l) {
		l.Generation, l.Seeded, l.Sets = o.GetGeneration(), o.GetSeeded(), o.GetSets()
		return nil
	}
	l.Generation = o.GetGeneration() + 1
	l.Seeded = l.GetSeedFrom() == nil
	l.Sets = nil
	return nil
}

// sameLearning reports whether two learnings learn the same thing.
func sameLearning(a, b *configv1.ListLearning) bool {
	return a.GetTool() == b.GetTool() && a.GetArgument() == b.GetArgument() && a.GetScope() == b.GetScope() &&
		proto.Equal(a.GetSeedFrom(), b.GetSeedFrom())
}

// learningsChanged re-validates the enabled policy sets when a learning
// appears or goes, which changes the schema's context.learned.
func learningsChanged(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	if old != nil && r != nil {
		return nil
	}
	if err := t.revalidateAll(); err != nil {
		if r == nil {
			return failed("value list %q cannot stop learning: an enabled policy set reads context.learned[%q]; change that policy first:\n%v", resource.Name(old), resource.Name(old), err.GetMessage())
		}
		return err
	}
	return nil
}

// beforeDeleteValueList refuses to delete a list that a policy set, enabled
// or not, refers to, or that learns.
func beforeDeleteValueList(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	name := resource.Name(old)
	var user string
	t.each(resource.PolicySet, func(r *fsmv1.Resource) bool {
		if slices.Contains(r.GetPolicySet().GetValueLists(), name) {
			user = resource.Name(r)
			return false
		}
		return true
	})
	if user != "" {
		return failed("value list %q is used by policy set %q; change or delete that policy set first", name, user)
	}
	if ro, ok := activeRollout(t.each); ok && slices.Contains(ro.GetValueLists(), name) {
		return failed("value list %q is used by the candidate of rollout %s; finish or abort the rollout first", name, ro.GetMeta().GetName())
	}
	if _, ok := t.get(resource.ListLearning, name); ok {
		return failed("value list %q learns from calls; stop that first (gwctl valuelist unlearn %s)", name, name)
	}
	return nil
}

// learnedEdit is a learning being changed by one command: a copy, with
// the members of each scope it changes indexed (sorted again once, when
// it is stored).
type learnedEdit struct {
	l *configv1.ListLearning
	// sets are the learning's sets by scope; members index the ones this
	// edit changes.
	sets    map[string][]string
	members map[string]map[string]bool
	// total counts the values of all scopes, nonEmpty the scopes with any.
	total, nonEmpty int
	// changed is set once the edit changes the learning: only a changed
	// learning is stored (a new revision moves the config version).
	changed bool
}

// edit returns the edit of the named learning, cloning it the first time.
func (t *txn) edit(edits map[string]*learnedEdit, name string) (*learnedEdit, bool) {
	if e, ok := edits[name]; ok {
		return e, true
	}
	r, ok := t.get(resource.ListLearning, name)
	if !ok {
		return nil, false
	}
	l := proto.CloneOf(r.GetListLearning())
	e := &learnedEdit{l: l, sets: make(map[string][]string, len(l.GetSets())), members: map[string]map[string]bool{}}
	for _, s := range l.GetSets() {
		e.sets[s.GetScope()] = s.GetValues()
		e.total += len(s.GetValues())
		if len(s.GetValues()) > 0 {
			e.nonEmpty++
		}
	}
	edits[name] = e
	return e, true
}

// scope returns the index of scope's members, building it the first time.
func (e *learnedEdit) scope(scope string) map[string]bool {
	m := e.members[scope]
	if m == nil {
		m = make(map[string]bool, len(e.sets[scope]))
		for _, v := range e.sets[scope] {
			m[v] = true
		}
		e.members[scope] = m
	}
	return m
}

// add adds v to scope's set. Full reports that the set, the list or the
// number of scopes is at its limit (v is not added); added is false also
// when v is there already.
func (e *learnedEdit) add(scope, v string) (added, full bool) {
	m := e.scope(scope)
	switch {
	case m[v]:
		return false, false
	case len(m) == 0 && e.nonEmpty >= limits.LearnedSets,
		len(m) >= limits.ListValues, e.total >= limits.LearnedValues:
		return false, true
	}
	if len(m) == 0 {
		e.nonEmpty++
	}
	m[v] = true
	e.total++
	e.changed = true
	return true, false
}

// remove removes v from scope's set and reports whether it was there.
func (e *learnedEdit) remove(scope, v string) bool {
	m := e.scope(scope)
	if !m[v] {
		return false
	}
	delete(m, v)
	e.total--
	if len(m) == 0 {
		e.nonEmpty--
	}
	e.changed = true
	return true
}

// storeEdit writes the edited learning back, its sets sorted by scope and
// their values sorted, when the edit changed it.
func (t *txn) storeEdit(e *learnedEdit) {
	if !e.changed {
		return
	}
	for scope, m := range e.members {
		e.sets[scope] = slices.Sorted(maps.Keys(m))
	}
	e.l.Sets = nil
	for _, scope := range slices.Sorted(maps.Keys(e.sets)) {
		if vs := e.sets[scope]; len(vs) > 0 {
			e.l.Sets = append(e.l.Sets, &configv1.LearnedSet{Scope: scope, Values: vs})
		}
	}
	r := resource.Wrap(e.l)
	old, _ := t.get(resource.ListLearning, e.l.GetMeta().GetName())
	t.stamp(old, r)
	t.insert(r)
}

// checkScope refuses a change whose scope is not of the learning's kind.
func checkScope(ch *fsmv1.LearnedChange, l *configv1.ListLearning) *fsmv1.Error {
	if err := resource.ValidateScope("scope", ch.GetScope(), l.GetScope()); err != nil {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "value list %q learns per %s: %v", l.GetMeta().GetName(), resource.ScopeName(l.GetScope()), err)
	}
	return nil
}

// revalidateAll checks every enabled policy set against the schema of the
// state being written.
func (t *txn) revalidateAll() *fsmv1.Error {
	schema, err := t.cedarSchema()
	if err != nil {
		return failed("this change would make the gateway's Cedar schema invalid: %v", err)
	}
	sets := map[string]cedarschema.SetSource{}
	t.each(resource.PolicySet, func(r *fsmv1.Resource) bool {
		ps := r.GetPolicySet()
		if !ps.GetDisabled() {
			sets[ps.GetMeta().GetName()] = cedarschema.SetSource{Filename: ps.GetFilename(), Source: []byte(ps.GetSource())}
		}
		return true
	})
	if len(sets) > 0 {
		if err := cedarschema.ValidateAll(schema, sets); err != nil {
			return failed("this change would break an enabled policy set; change the policy first:\n%v", err)
		}
	}
	// The candidate of the rollout in progress is served to data planes
	// too: it must stay valid.
	if ro, ok := activeRollout(t.each); ok {
		if _, err := schema.ParsePolicies(ro.GetPolicySet(), ro.GetFilename(), []byte(ro.GetSource())); err != nil {
			return failed("this change would break the candidate of rollout %s (policy set %q); abort or finish the rollout first:\n%v",
				ro.GetMeta().GetName(), ro.GetPolicySet(), err)
		}
	}
	return nil
}
