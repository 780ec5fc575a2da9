package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Forwarder is MCP's terminal handler: it carries every operation the
// pipeline admitted to the MCP upstreams, through the Pool (kept
// sessions, the upstream's own credential, and the one resilience
// wrapper: timeouts, retries of read-only calls, breaker, concurrency).
// It is safe for concurrent use.
type Forwarder struct {
	Pool   *Pool
	Logger *slog.Logger
}

// Bounds on federated lists.
const (
	maxContentPages = 20
	// listTimeout bounds collecting one list from every upstream.
	listTimeout = 10 * time.Second
)

// Forward implements pipeline.Handler for MCP calls.
func (f *Forwarder) Forward(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	r, ok := c.Config.(upstream.Resolver)
	if !ok {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, "the data plane has no configuration yet; retry shortly")
	}
	ctx = hop.WithChain(ctx, c.Hops)
	start := time.Now()
	switch {
	case c.Op == pipeline.OpSession && len(c.Visible) == 0:
		return &pipeline.Result{}, nil
	case c.Op == pipeline.OpSession:
		// A handshake: what the upstreams the caller may use offer.
		names := make([]string, 0, len(c.Visible))
		for _, t := range c.Visible {
			names = append(names, t.Upstream)
		}
		return &pipeline.Result{Body: f.Pool.Offers(ctx, r, names), UpstreamLatency: time.Since(start)}, nil
	case c.Op == pipeline.OpList && c.Target.Kind == pipeline.KindTool:
		return f.listTools(c), nil
	case c.Op == pipeline.OpList:
		return f.listContent(ctx, r, c)
	case c.Op == pipeline.OpCall && c.Target.Kind == pipeline.KindTool:
		body, isErr, err := f.Pool.CallTool(ctx, r, ToolCall{
			Upstream: c.Target.Upstream, Tool: c.Target.Own, Class: c.Target.Tool.Class, Arguments: c.Arguments, Relay: c.Relay,
		})
		if err != nil {
			return nil, err
		}
		return &pipeline.Result{Body: body, IsError: isErr, UpstreamLatency: time.Since(start)}, nil
	case c.Op == pipeline.OpRead || c.Op == pipeline.OpGet || c.Op == pipeline.OpComplete:
		m, err := f.Pool.Request(ctx, r, c.Target.Upstream, c.Method, c.Arguments)
		return answered(m, err, start)
	case c.Op == pipeline.OpSubscribe || c.Op == pipeline.OpUnsubscribe:
		w := wireOf(c.Relay)
		if w == nil || w.subscriber == "" || c.Relay.Notify == nil {
			// The endpoint always names the subscriber: fail closed.
			return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
		}
		if c.Op == pipeline.OpUnsubscribe {
			m, err := f.Pool.Unsubscribe(ctx, r, c.Target.Upstream, c.Target.Own, w.subscriber)
			return answered(m, err, start)
		}
		prefix := ""
		for _, u := range c.Config.Upstreams(Name) {
			if u.Name == c.Target.Upstream {
				prefix = u.Prefix
			}
		}
		m, err := f.Pool.Subscribe(ctx, r, c.Target.Upstream, c.Target.Own, Subscriber{
			Key: w.subscriber, Agent: c.Agent.GetMeta().GetName(), Name: c.Target.Name, Prefix: prefix, Notify: c.Relay.Notify,
		})
		return answered(m, err, start)
	}
	return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
}

// answered is the result of one request an upstream answered: its result
// as Body, or its own error as Failure.
func answered(m *mcpwire.Message, err error, start time.Time) (*pipeline.Result, error) {
	if err != nil {
		return nil, err
	}
	res := &pipeline.Result{UpstreamLatency: time.Since(start)}
	if m.Kind() == mcpwire.KindError {
		res.Failure, res.IsError = m.Error, true
	} else {
		res.Body = m.Result
	}
	return res, nil
}

// listTools leaves out the tools of upstreams whose circuit breaker is
// open (the pool warns once per change).
func (f *Forwarder) listTools(c *pipeline.Call) *pipeline.Result {
	kept := c.Visible[:0:0]
	for _, t := range c.Visible {
		if ok, _ := f.Pool.Healthy(t.Upstream); ok {
			kept = append(kept, t)
		}
	}
	c.Visible = kept
	return &pipeline.Result{Items: len(kept)}
}

// contentList describes a list method: its result's array member and the
// members of each item that carry a namespaced value.
type contentList struct {
	items  string
	fields []string
}

var contentLists = map[string]contentList{
	"resources/list":           {items: "resources", fields: []string{"uri", "name"}},
	"resources/templates/list": {items: "resourceTemplates", fields: []string{"uriTemplate", "name"}},
	"prompts/list":             {items: "prompts", fields: []string{"name"}},
}

// listContent collects a federated list: every page of every upstream
// the caller may use (c.Visible), merged into one page, each item's names
// and URIs namespaced; Body is the result object. An upstream that fails
// or has no such list is left out (and logged); the others still answer.
func (f *Forwarder) listContent(ctx context.Context, r upstream.Resolver, c *pipeline.Call) (*pipeline.Result, error) {
	spec, ok := contentLists[c.Method]
	if !ok {
		return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
	}
	prefixes := map[string]string{}
	for _, u := range c.Config.Upstreams(Name) {
		prefixes[u.Name] = u.Prefix
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	per := make([][]json.RawMessage, len(c.Visible))
	var wg sync.WaitGroup
	for i, t := range c.Visible {
		wg.Go(func() {
			items, err := f.listOne(ctx, r, t.Upstream, prefixes[t.Upstream], c.Method, spec)
			if err != nil {
				f.Logger.WarnContext(ctx, "upstream left out of a federated list", slog.String("upstream", t.Upstream), slog.String("method", c.Method), slog.Any("error", err))
				return
			}
			per[i] = items
		})
	}
	wg.Wait()
	all := []json.RawMessage{}
	for _, items := range per {
		all = append(all, items...)
	}
	body, err := json.Marshal(map[string]any{spec.items: all})
	if err != nil {
		return nil, err
	}
	return &pipeline.Result{Body: body, Items: len(all), UpstreamLatency: time.Since(start)}, nil
}

// errNoSuchList marks an upstream that does not offer a list method.
var errNoSuchList = errors.New("the upstream does not offer this list")

// listOne walks one upstream's pages of method and namespaces the items.
func (f *Forwarder) listOne(ctx context.Context, r upstream.Resolver, up, prefix, method string, spec contentList) ([]json.RawMessage, error) {
	var out []json.RawMessage
	cursor := ""
	for range maxContentPages {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			b, err := json.Marshal(map[string]string{"cursor": cursor})
			if err != nil {
				return nil, err
			}
			params = b
		}
		m, err := f.Pool.Request(ctx, r, up, method, params)
		if err != nil {
			return nil, err
		}
		if m.Kind() == mcpwire.KindError {
			if e, _ := m.ErrorObject(); e != nil && e.Code == codeMethodNotFound {
				return nil, nil // no such capability upstream: nothing to list
			}
			return nil, errNoSuchList
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(m.Result, &page); err != nil {
			return nil, err
		}
		var items []json.RawMessage
		if raw := page[spec.items]; raw != nil {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, err
			}
		}
		for _, item := range items {
			renamed, err := renameFields(item, spec.fields, func(v string) string { return namespaced(prefix, v) })
			if err != nil {
				continue // not an object with string fields: not forwarded
			}
			out = append(out, renamed)
		}
		var next string
		if raw := page["nextCursor"]; raw != nil {
			_ = json.Unmarshal(raw, &next)
		}
		if next == "" || next == cursor {
			return out, nil
		}
		cursor = next
	}
	return out, nil
}
