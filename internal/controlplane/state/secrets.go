package state

import (
	"bytes"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Where secrets may go (the trust model is in package secretbind).
//
// A secret with hosts is bound to them, and the state machine holds every
// write to that: an upstream that would send the secret (or a token
// obtained with it) to another host is refused, so is a new binding that
// would leave out a host an upstream already sends it to, and only a
// command by an admin may change a binding.
//
// A secret without hosts was written before bindings existed. It is bound
// to the hosts of the upstreams that reference it at the time (Implicit):
// computed from the replicated state, so every replica and every data
// plane agrees without anything being rewritten at upgrade. The state
// machine itself cannot hold writes to that rule: while replaying the log
// it cannot tell an old write, which was accepted and must stay accepted on
// every replica, from a new one. So the admin API, through which every
// write passes, refuses an upstream that would widen an implicit binding
// (and a new secret without hosts), and every sender checks the binding at
// the moment of sending. Binding such a secret explicitly (gwctl secret
// bind) puts it under the state machine's rules.

// SecretHosts returns the hosts the named secret may be sent to in s: its
// own, or for a secret without (implicit is then true) those of the
// upstreams that reference it. A missing secret may be sent nowhere.
func (s *State) SecretHosts(name string) (hosts []string, implicit bool) {
	r, ok := s.Get(resource.Secret, name)
	if !ok {
		return nil, false
	}
	return secretHosts(s.Each, r.GetSecret())
}

func secretHosts(each func(resource.Kind, func(*fsmv1.Resource) bool), sec *configv1.Secret) ([]string, bool) {
	if len(sec.GetHosts()) > 0 {
		return sec.GetHosts(), false
	}
	return secretbind.Implicit(sec.GetMeta().GetName(), upstreams(each)), true
}

// upstreams adapts each to the iterator secretbind.Implicit takes.
func upstreams(each func(resource.Kind, func(*fsmv1.Resource) bool)) func(func(*configv1.Upstream) bool) {
	return func(yield func(*configv1.Upstream) bool) {
		each(resource.Upstream, func(r *fsmv1.Resource) bool { return yield(r.GetUpstream()) })
	}
}

// checkSecretUse refuses an upstream that would send an explicitly bound
// secret to a host outside its binding.
func checkSecretUse(t *txn, u *configv1.Upstream) *fsmv1.Error {
	use, ok := secretbind.UseOf(u)
	if !ok {
		return nil
	}
	r, ok := t.get(resource.Secret, use.Secret)
	if !ok || len(r.GetSecret().GetHosts()) == 0 {
		return nil // missing: refused by the caller; unbound: see above
	}
	hosts := r.GetSecret().GetHosts()
	if out := secretbind.Outside(hosts, use); out != "" {
		return failed("secret %q may be sent only to %s, and upstream %q would send it to %s; "+
			"use a secret meant for that host, or have an admin bind this one to it (gwctl secret bind %s --hosts …)",
			use.Secret, secretbind.Describe(hosts), u.GetMeta().GetName(), secretbind.HostOf(out), use.Secret)
	}
	return nil
}

func prepareSecret(t *txn, old, r *fsmv1.Resource) *fsmv1.Error {
	s := r.GetSecret()
	s.ImplicitHosts = nil
	o := old.GetSecret()
	if o != nil && len(s.GetHosts()) == 0 {
		// A new value without hosts keeps the binding.
		s.Hosts = o.GetHosts()
	}
	s.Version = o.GetVersion() + 1
	if o != nil && bytes.Equal(o.GetCiphertext(), s.GetCiphertext()) {
		s.Version = o.GetVersion() // a new binding, the same value
	}
	if len(s.GetHosts()) == 0 {
		return nil // written before bindings existed (see above)
	}
	if o != nil {
		cur, _ := secretHosts(t.each, o)
		if !slices.Equal(cur, s.GetHosts()) && t.cmd.GetActor().GetRole() != configv1.Role_ROLE_ADMIN {
			return errf(fsmv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED,
				"secret %q may be sent to %s; changing that needs an admin token (gwctl secret bind)", resource.Name(r), secretbind.Describe(cur))
		}
	}
	if err := checkRuleSecretBinding(t, s); err != nil {
		return err
	}
	var conflict *fsmv1.Error
	t.each(resource.Upstream, func(ur *fsmv1.Resource) bool {
		use, ok := secretbind.UseOf(ur.GetUpstream())
		if !ok || use.Secret != resource.Name(r) {
			return true
		}
		if out := secretbind.Outside(s.GetHosts(), use); out != "" {
			conflict = failed("upstream %q sends secret %q to %s, which %s leaves out; add that host, or change the upstream first",
				resource.Name(ur), resource.Name(r), secretbind.HostOf(out), secretbind.Describe(s.GetHosts()))
			return false
		}
		return true
	})
	return conflict
}

func beforeDeleteSecret(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	name := resource.Name(old)
	var user string
	t.each(resource.Upstream, func(u *fsmv1.Resource) bool {
		for _, ref := range resource.SecretRefs(u.GetUpstream()) {
			if ref == name {
				user = resource.Name(u)
				return false
			}
		}
		return true
	})
	if user != "" {
		return failed("secret %q is used by upstream %q", name, user)
	}
	if rule := alertRuleUsing(t, name); rule != nil {
		return failed("secret %q is used by alert rule %q", name, rule.GetMeta().GetName())
	}
	return nil
}
