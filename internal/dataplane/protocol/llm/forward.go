package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/llmwire"
	"github.com/portcullis-gw/portcullis/internal/tokencount"
)

// maxFrame bounds one event of a provider's stream.
const maxFrame = 4 << 20

// maxErrorBody bounds a provider's error answer the gateway reads.
const maxErrorBody = 64 << 10

// defaultAnthropicVersion is sent to Anthropic when the caller sends no
// anthropic-version of its own.
const defaultAnthropicVersion = "2023-06-01"

// session is an LLM upstream's connection state: none beyond the HTTP
// client, which Conns keeps.
type session struct{}

// Forwarder is the LLM protocol's terminal handler: it sends each model
// call the pipeline admitted to its upstream under the one resilience
// wrapper and relays the answer. Safe for concurrent use.
type Forwarder struct {
	conns *upstream.Conns[session]
	log   *slog.Logger
}

// NewForwarder returns a forwarder with its own cache of upstream
// connections.
func NewForwarder(log *slog.Logger, opts ...upstream.Option) *Forwarder {
	d := upstream.Driver[session]{
		Name:      "an LLM API",
		Protocols: []configv1.Protocol{configv1.Protocol_PROTOCOL_LLM},
		Headers:   []string{"Accept", "Anthropic-Version", "Anthropic-Beta"},
		Open:      func(*upstream.Settings, *http.Client) (session, error) { return session{}, nil },
		Close:     func(context.Context, session) error { return nil },
		Defaults: upstream.Defaults{Timeout: DefaultTimeout, MaxRequest: DefaultMaxRequest, MaxResponse: DefaultMaxResponse,
			MaxConcurrency: DefaultMaxConcurrency},
	}
	return &Forwarder{conns: upstream.NewConns(log, d, opts...), log: log.With("component", "llm")}
}

// Prune drops the connections of upstreams a new configuration changed or
// removed (protocol.Protocol.Configured).
func (f *Forwarder) Prune(r upstream.Resolver) { f.conns.Prune(r) }

// Close closes every connection.
func (f *Forwarder) Close() error { return f.conns.Close() }

var errNoWire = errors.New("llm: a call without the endpoint's state")

// Forward implements pipeline.Handler for LLM calls.
func (f *Forwarder) Forward(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	r, ok := c.Config.(upstream.Resolver)
	if !ok {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, "the data plane has no configuration yet; retry shortly")
	}
	var wr *wire
	if c.Relay != nil {
		wr, _ = c.Relay.Wire.(*wire)
	}
	if wr == nil {
		return nil, errNoWire
	}
	switch c.Op {
	case pipeline.OpList:
		// Each family lists the models of the providers it speaks to.
		kept := c.Visible[:0:0]
		for _, t := range c.Visible {
			if u, ok := r.Upstream(t.Upstream); ok && speaks(u.GetLlm().GetProvider(), wr.family) {
				kept = append(kept, t)
			}
		}
		c.Visible = kept
		return &pipeline.Result{Items: len(kept)}, nil
	case pipeline.OpCall:
		return f.call(hop.WithChain(ctx, c.Hops), r, c, wr)
	}
	return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
}

// speaks reports whether a provider answers the API family.
func speaks(p configv1.LlmProvider, f llmwire.Family) bool {
	if p == configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC {
		return f == llmwire.Anthropic
	}
	return f == llmwire.OpenAI
}

// call sends one model call.
func (f *Forwarder) call(ctx context.Context, r upstream.Resolver, c *pipeline.Call, wr *wire) (*pipeline.Result, error) {
	s, err := f.conns.Resolve(r, c.Target.Upstream)
	if err != nil {
		return nil, upstream.Refusal(c.Target.Upstream, err, explain)
	}
	provider := s.Config.GetLlm().GetProvider()
	if !speaks(provider, wr.api.Family()) {
		where := OpenAIBase + "/v1"
		if provider == configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC {
			where = AnthropicBase + "/v1/messages"
		}
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "model %q is served by a provider that does not speak this API; call it at %s", c.Target.Name, where)
	}
	edit := llmwire.Edit{Model: c.Target.Own}
	// An OpenAI stream reports usage only when asked; the gateway asks,
	// and drops the extra chunk when the caller did not.
	addedUsage := wr.api == llmwire.ChatCompletions && wr.req.Stream && !wr.req.IncludeUsage
	edit.IncludeUsage = addedUsage
	if wr.req.MaxTokens == 0 {
		// The worst case a budget reserved holds only with a limit.
		switch {
		case wr.api == llmwire.ChatCompletions && provider == configv1.LlmProvider_LLM_PROVIDER_OPENAI:
			edit.LimitField = "max_completion_tokens"
		case wr.api == llmwire.ChatCompletions:
			edit.LimitField = "max_tokens"
		case wr.api == llmwire.Responses:
			edit.LimitField = "max_output_tokens"
		}
		edit.LimitTokens = wr.outputCap
	}
	body, err := wr.req.Edit(edit)
	if err != nil {
		return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "%s", err.Error())
	}
	cn, err := f.conns.Acquire(&s)
	if err != nil {
		return nil, upstream.Fail(ctx, f.log, &s, wr.api.String(), "connect", err, explain)
	}
	defer cn.Release()
	ex := &exchange{
		f: f, c: c, wr: wr, client: cn.HTTP, body: body, addedUsage: addedUsage,
		url: strings.TrimRight(s.URL, "/") + wr.api.Path(), provider: provider,
	}
	start := time.Now()
	res, err := resilience.Do(ctx, cn.Guard, resilience.Call{
		Op: wr.api.String(), Timeout: s.Timeout, Repeatable: true, MaxRetries: s.MaxRetries,
	}, classifier{}, ex.attempt)
	if err == nil {
		res.UpstreamLatency = time.Since(start)
		return res, nil
	}
	var se *statusError
	if errors.As(err, &se) {
		// The provider's own 429 or 5xx, after any retries: the caller gets
		// it as the provider sent it (SDKs retry on it by their rules).
		wr.answer(se.status, se.header)
		return &pipeline.Result{Failure: se.body, IsError: true, UpstreamLatency: time.Since(start)}, nil
	}
	if ex.partial != nil {
		ex.partial.UpstreamLatency = time.Since(start)
	}
	if errors.Is(err, errCallerGone) {
		return ex.partial, fmt.Errorf("model call %s: %w", c.Target.Name, errCallerGone)
	}
	return ex.partial, upstream.Fail(ctx, f.log, &s, wr.api.String(), "call", err, explain)
}

// exchange is one model call's attempts.
type exchange struct {
	f          *Forwarder
	c          *pipeline.Call
	wr         *wire
	client     *http.Client
	url        string
	body       []byte
	addedUsage bool
	provider   configv1.LlmProvider
	// partial is what a stream that ended in error consumed.
	partial *pipeline.Result
}

// attempt sends the request once and reads or relays the answer.
func (ex *exchange) attempt(ctx context.Context) (*pipeline.Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ex.url, bytes.NewReader(ex.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if ex.wr.req.Stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if ex.wr.api == llmwire.Messages {
		req.Header.Set("Anthropic-Version", defaultAnthropicVersion)
		if v := ex.wr.in.Get("Anthropic-Version"); v != "" {
			req.Header.Set("Anthropic-Version", v)
		}
		if v := ex.wr.in.Values("Anthropic-Beta"); len(v) > 0 {
			req.Header["Anthropic-Beta"] = v
		}
	}
	resp, err := ex.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, &statusError{status: resp.StatusCode, header: resp.Header, body: b}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		// The provider refused the request (400, 404, 413, …): its answer
		// is the caller's, in the caller's API's shape.
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return nil, err
		}
		ex.wr.answer(resp.StatusCode, resp.Header)
		return &pipeline.Result{Failure: b, IsError: true}, nil
	}
	if ex.wr.req.Stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return ex.relay(ctx, resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	ex.wr.answer(resp.StatusCode, resp.Header)
	u, ok := llmwire.ParseUsage(ex.wr.api, b)
	estimated := !ok
	if !ok {
		u = llmwire.Usage{InputTokens: ex.c.Demand.InputTokens, OutputTokens: tokencount.Count(llmwire.AnswerText(b))}
	}
	sum := sha256.Sum256(b)
	return &pipeline.Result{Body: b, Usage: ex.usage(u, estimated), Content: &pipeline.Digest{Bytes: int64(len(b)), SHA256: sum[:]}}, nil
}

// relay passes a provider's event stream to the caller frame by frame, as
// the provider sent it, except the usage chunk the gateway asked for on
// the caller's behalf, and holds back the events that end the stream:
// they go out after the audit record is written (wire.finish).
func (ex *exchange) relay(ctx context.Context, resp *http.Response) (*pipeline.Result, error) {
	ex.wr.begin(resp.StatusCode, resp.Header)
	st := llmwire.NewStream(ex.wr.api)
	fr := llmwire.NewFrameReader(resp.Body, maxFrame)
	h := sha256.New()
	var (
		n       int64
		held    []byte
		readErr error
		gone    bool
	)
	for {
		fm, err := fr.Next()
		if err != nil {
			readErr = err
			break
		}
		_, _ = h.Write(fm.Raw)
		n += int64(len(fm.Raw))
		kind := st.Observe(fm)
		if kind == llmwire.FrameUsage && ex.addedUsage {
			continue // asked for by the gateway, not the caller
		}
		if kind == llmwire.FrameUsage || kind == llmwire.FrameEnd {
			held = append(held, fm.Raw...)
			if kind == llmwire.FrameEnd {
				break
			}
			continue
		}
		if len(held) > 0 {
			// Not expected after the usage chunk; keep the order.
			if ex.c.Relay.Notify(held) != nil {
				gone = true
				break
			}
			held = nil
		}
		if ex.c.Relay.Notify(fm.Raw) != nil {
			gone = true
			break
		}
	}
	u, inKnown, outKnown := st.Usage()
	if !inKnown {
		u.InputTokens, u.CachedInputTokens, u.CacheWriteTokens = ex.c.Demand.InputTokens, 0, 0
	}
	if !outKnown {
		u.OutputTokens, u.ReasoningTokens = tokencount.Count(st.Text()), 0
	}
	// A provider's error event ends the stream as the provider meant: the
	// caller got it; the call failed upstream.
	res := &pipeline.Result{Body: held, Usage: ex.usage(u, !inKnown || !outKnown), Content: digest(n, h), IsError: st.Failed()}
	switch {
	case gone:
		ex.partial = res
		return nil, errCallerGone
	case ctx.Err() != nil:
		ex.partial = res
		return nil, &brokenError{err: ctx.Err()}
	case !st.Ended() && !st.Failed():
		ex.partial = res
		if readErr == nil || errors.Is(readErr, io.EOF) {
			readErr = io.ErrUnexpectedEOF
		}
		return nil, &brokenError{err: readErr}
	}
	return res, nil
}

func digest(n int64, h hash.Hash) *pipeline.Digest {
	return &pipeline.Digest{Bytes: n, SHA256: h.Sum(nil)}
}

// usage converts a provider's count (or the gateway's estimate) and
// prices it at the model's price when the call started.
func (ex *exchange) usage(u llmwire.Usage, estimated bool) *pipeline.Usage {
	out := &pipeline.Usage{
		InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens, CacheWriteTokens: u.CacheWriteTokens,
		OutputTokens: u.OutputTokens, ReasoningTokens: u.ReasoningTokens, Estimated: estimated, Model: u.Model,
	}
	if p := ex.c.Target.Model.PriceAt(ex.c.Start); p != nil {
		out.Cost, out.Priced = p.Cost(*out), true
	}
	return out
}
