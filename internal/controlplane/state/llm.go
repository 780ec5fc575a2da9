package state

import (
	"slices"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// llmRules reports whether the rules about LLM upstreams apply: once every
// voter supports them, so that every replica applies a command alike (a
// replica from before them would accept what they refuse).
func llmRules(t *txn) bool {
	return clusterversion.Supports(t.base.Voters(), clusterversion.LLMBrokering)
}

// modelNames lists the names agents call an LLM upstream's models by:
// "<prefix>/<id>" and the aliases.
func modelNames(u *configv1.Upstream) []string {
	if u.GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
		return nil
	}
	prefix := resource.EffectivePrefix(u)
	var out []string
	for _, m := range u.GetLlm().GetModels() {
		name := m.GetId()
		if prefix != "" {
			name = prefix + "/" + name
		}
		out = append(out, name)
		out = append(out, m.GetAliases()...)
	}
	return out
}

// checkModels refuses an LLM upstream whose model names another LLM
// upstream already answers to (agents' names must mean one model), or an
// update that drops a model with a price table.
func checkModels(t *txn, old *fsmv1.Resource, u *configv1.Upstream) *fsmv1.Error {
	mine := modelNames(u)
	var conflict *fsmv1.Error
	if len(mine) > 0 {
		t.each(resource.Upstream, func(o *fsmv1.Resource) bool {
			other := o.GetUpstream()
			if other.GetMeta().GetName() == u.GetMeta().GetName() {
				return true
			}
			for _, n := range modelNames(other) {
				if slices.Contains(mine, n) {
					conflict = errf(fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "model name %q is already a name of a model of upstream %q; choose another alias", n, other.GetMeta().GetName())
					return false
				}
			}
			return true
		})
	}
	if conflict != nil || old == nil {
		return conflict
	}
	for _, model := range pricedModels(t, u.GetMeta().GetName()) {
		if !slices.ContainsFunc(u.GetLlm().GetModels(), func(m *configv1.LlmModel) bool { return m.GetId() == model }) || u.GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
			return failed("model %q of upstream %q has a price; delete its price first (gwctl price delete %s)", model, u.GetMeta().GetName(), resource.ModelPriceName(u.GetMeta().GetName(), model))
		}
	}
	return nil
}

// pricedModels lists the models of upstream that have a price table.
func pricedModels(t *txn, upstream string) []string {
	var out []string
	t.each(resource.ModelPrice, func(r *fsmv1.Resource) bool {
		if p := r.GetModelPrice(); p.GetUpstream() == upstream {
			out = append(out, p.GetModel())
		}
		return true
	})
	return out
}

// prepareModelPrice: the upstream must exist, speak an LLM API and list
// the model.
func prepareModelPrice(t *txn, _, r *fsmv1.Resource) *fsmv1.Error {
	p := r.GetModelPrice()
	u, ok := t.get(resource.Upstream, p.GetUpstream())
	if !ok || u.GetUpstream().GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
		return failed("upstream %q does not exist or is not an LLM upstream", p.GetUpstream())
	}
	if !slices.ContainsFunc(u.GetUpstream().GetLlm().GetModels(), func(m *configv1.LlmModel) bool { return m.GetId() == p.GetModel() }) {
		return failed("upstream %q does not list model %q; add it to the upstream's models first", p.GetUpstream(), p.GetModel())
	}
	return nil
}
