package mcp

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// offersTimeout bounds asking the upstreams what they offer for one
// handshake: an upstream that does not answer in time offers nothing to
// this caller.
const offersTimeout = 3 * time.Second

// offers is what upstreams offer beyond tools, resources and prompts,
// which the gateway can broker only through an upstream that offers it.
type offers struct {
	Completions bool `json:"completions"`
	Logging     bool `json:"logging"`
	Subscribe   bool `json:"subscribe"`
}

// Offers returns, as JSON, the union of what the named upstreams offer
// (completions, logging, resource subscriptions), from their initialize
// or server/discover results: each is connected if need be, within a few
// seconds; one whose breaker is open, or that cannot be reached, offers
// nothing.
func (p *Pool) Offers(ctx context.Context, r upstream.Resolver, names []string) json.RawMessage {
	p.remember(r)
	ctx, cancel := context.WithTimeout(ctx, offersTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		all offers
		wg  sync.WaitGroup
	)
	for _, name := range names {
		if ok, _ := p.Healthy(name); !ok {
			continue
		}
		wg.Go(func() {
			o, ok := p.offersOf(ctx, r, name)
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			all.Completions = all.Completions || o.Completions
			all.Logging = all.Logging || o.Logging
			all.Subscribe = all.Subscribe || o.Subscribe
		})
	}
	wg.Wait()
	b, _ := json.Marshal(all)
	return b
}

// offersOf reads one upstream's offers.
func (p *Pool) offersOf(ctx context.Context, r upstream.Resolver, name string) (offers, bool) {
	s, err := p.conns.Resolve(r, name)
	if err != nil {
		return offers{}, false
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return offers{}, false
	}
	defer cn.Release()
	server, err := cn.Session.Server(ctx)
	if err != nil {
		return offers{}, false
	}
	var res struct {
		Capabilities struct {
			Completions json.RawMessage `json:"completions"`
			Logging     json.RawMessage `json:"logging"`
			Resources   struct {
				Subscribe bool `json:"subscribe"`
			} `json:"resources"`
		} `json:"capabilities"`
	}
	if json.Unmarshal(server, &res) != nil {
		return offers{}, false
	}
	present := func(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }
	return offers{
		Completions: present(res.Capabilities.Completions),
		Logging:     present(res.Capabilities.Logging),
		Subscribe:   res.Capabilities.Resources.Subscribe,
	}, true
}
