package config

import (
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // budgets name IANA zones

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// DefaultOutputCap is the output a model call is assumed to produce at
// most when neither its request nor its model's output_cap says.
const DefaultOutputCap = 4096

// indexModels indexes the models of the LLM upstreams by the names agents
// call them by (their name and their aliases) with their prices. A name
// that two models would answer to is a problem: agents' names must mean
// one model.
func (b *builder) indexModels() {
	prices := map[string][]pipeline.Price{}
	for _, p := range b.snap.GetModelPrices() {
		key := p.GetUpstream() + "/" + p.GetModel()
		if _, dup := prices[key]; dup {
			b.problems.add("model price %q appears twice", truncate(key, maxSegmentBytes))
			continue
		}
		prices[key] = modelPrices(p)
	}
	b.c.models = map[string]pipeline.Model{}
	names := make([]string, 0, len(b.c.upstreams))
	for name := range b.c.upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := b.c.upstreams[name]
		if u.GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
			continue
		}
		prefix := authz.EffectivePrefix(u)
		for _, m := range u.GetLlm().GetModels() {
			model := pipeline.Model{
				Name: authz.ModelName(prefix, m.GetId()), Upstream: name, Own: m.GetId(),
				OutputCap: m.GetOutputCap(), Prices: prices[name+"/"+m.GetId()],
			}
			if model.OutputCap <= 0 {
				model.OutputCap = DefaultOutputCap
			}
			for _, n := range append([]string{model.Name}, m.GetAliases()...) {
				if prev, dup := b.c.models[n]; dup {
					b.problems.add("upstream %q: model name %q is also a name of model %q", name, truncate(n, maxSegmentBytes), prev.Name)
					continue
				}
				b.c.models[n] = model
			}
			b.c.modelList = append(b.c.modelList, model)
		}
	}
	slices.SortFunc(b.c.modelList, func(x, y pipeline.Model) int { return strings.Compare(x.Name, y.Name) })
}

// checkBudgets checks what only the data plane can: that it knows each
// budget's time zone.
func (b *builder) checkBudgets() {
	for _, bg := range b.snap.GetBudgets() {
		if _, err := time.LoadLocation(bg.GetTimeZone()); err != nil {
			b.problems.add("budget %q: time zone %q is unknown to this data plane", truncate(bg.GetMeta().GetName(), maxSegmentBytes), truncate(bg.GetTimeZone(), maxSegmentBytes))
		}
	}
}

// modelPrices converts a price table, in order of effective time.
func modelPrices(p *configv1.ModelPrice) []pipeline.Price {
	out := make([]pipeline.Price, 0, len(p.GetPrices()))
	for _, e := range p.GetPrices() {
		pr := pipeline.Price{Input: e.GetInputMicros(), Output: e.GetOutputMicros(), CachedInput: e.GetInputMicros(), CacheWrite: e.GetInputMicros()}
		if e.GetEffectiveTime() != nil {
			pr.From = e.GetEffectiveTime().AsTime()
		}
		if e.CachedInputMicros != nil {
			pr.CachedInput = e.GetCachedInputMicros()
		}
		if e.CacheWriteMicros != nil {
			pr.CacheWrite = e.GetCacheWriteMicros()
		}
		out = append(out, pr)
	}
	slices.SortStableFunc(out, func(a, b pipeline.Price) int { return a.From.Compare(b.From) })
	return out
}

// Model implements pipeline.Config.
func (c *Compiled) Model(name string) (pipeline.Model, bool) {
	m, ok := c.models[name]
	return m, ok
}

// Models lists every model served, by name.
func (c *Compiled) Models() []pipeline.Model { return slices.Clone(c.modelList) }

// Budgets are the snapshot's budgets (shared; do not modify).
func (c *Compiled) Budgets() []*configv1.Budget { return c.snap.GetBudgets() }

// RateLimits are the snapshot's rate limits.
func (c *Compiled) RateLimits() []*configv1.RateLimit { return c.snap.GetRateLimits() }
