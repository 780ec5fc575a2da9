package llm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol/llm"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/test/fakellm/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	openAIKey    = "sk-upstream-openai-SECRET"
	anthropicKey = "sk-ant-upstream-SECRET"
)

// policies: the payments team may call every model but claude-haiku, and
// nobody may ask for more than 100,000 output tokens.
const policies = configtest.Policies + `
permit(principal in Team::"payments", action in Action::"llm_complete", resource);
@id("no-haiku") forbid(principal, action, resource == Model::"anthropic/claude-haiku");
@id("size") forbid(principal, action == Action::"llm:complete", resource) when { context.maxTokens > 100000 };
`

// records collects audit records.
type records struct {
	mu   sync.Mutex
	recs []*auditv1.Record
}

func (r *records) Write(_ context.Context, rec *auditv1.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, proto.CloneOf(rec))
	return nil
}

func (r *records) all() []*auditv1.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*auditv1.Record(nil), r.recs...)
}

func (r *records) last(t *testing.T) *auditv1.Record {
	t.Helper()
	all := r.all()
	if len(all) == 0 {
		t.Fatal("no audit record")
	}
	return all[len(all)-1]
}

// backend is the data plane's pipeline for the tests: the default stages
// with a per-data-plane budget enforcer, and the LLM forwarder.
type backend struct {
	cfg    *config.Compiled
	handle pipeline.Handler
}

func (b *backend) Begin(*http.Request) *pipeline.Call {
	return &pipeline.Call{Start: time.Now(), Mode: configsyncv1.Mode_MODE_NORMAL, Config: b.cfg}
}

func (b *backend) Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	return b.handle(ctx, c)
}

// gw is a data plane's LLM endpoints in front of the fake provider.
type gw struct {
	url      string
	fake     *provider.Handler
	audit    *records
	budgets  *limit.Fleet
	fakeURL  string
	snapshot *snapshotv1.Snapshot
}

func start(t *testing.T, change func(s *snapshotv1.Snapshot)) *gw {
	t.Helper()
	fake := provider.New(provider.Options{OpenAIKey: openAIKey, AnthropicKey: anthropicKey})
	fakeSrv := httptest.NewServer(fake)
	t.Cleanup(fakeSrv.Close)
	s := configtest.Snapshot()
	s.PolicySets[0].Source = policies
	s.Upstreams = append(s.Upstreams,
		&configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "openai"}, Protocol: configv1.Protocol_PROTOCOL_LLM, Url: fakeSrv.URL + "/v1",
			Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: "openai-key"}}},
			Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_OPENAI, Models: []*configv1.LlmModel{
				{Id: "gpt-4o"}, {Id: "gpt-4o-mini", Aliases: []string{"fast"}, OutputCap: 1000},
			}}},
		&configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "anthropic"}, Protocol: configv1.Protocol_PROTOCOL_LLM, Url: fakeSrv.URL,
			Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{Header: &configv1.HeaderCredential{Header: "X-Api-Key", Secret: "anthropic-key"}}},
			Llm:        &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC, Models: []*configv1.LlmModel{{Id: "claude-sonnet"}, {Id: "claude-haiku"}}}},
	)
	s.Secrets = append(s.Secrets,
		&snapshotv1.SecretValue{Name: "openai-key", Version: 1, Value: []byte(openAIKey), Hosts: []string{"127.0.0.1"}},
		&snapshotv1.SecretValue{Name: "anthropic-key", Version: 1, Value: []byte(anthropicKey), Hosts: []string{"127.0.0.1"}},
	)
	s.ModelPrices = []*configv1.ModelPrice{
		{Meta: &configv1.ResourceMeta{Name: "openai/gpt-4o"}, Upstream: "openai", Model: "gpt-4o",
			Prices: []*configv1.PriceEntry{{InputMicros: 2_500_000, CachedInputMicros: proto.Int64(1_250_000), OutputMicros: 10_000_000}}},
		{Meta: &configv1.ResourceMeta{Name: "anthropic/claude-sonnet"}, Upstream: "anthropic", Model: "claude-sonnet",
			Prices: []*configv1.PriceEntry{{InputMicros: 3_000_000, CachedInputMicros: proto.Int64(300_000), CacheWriteMicros: proto.Int64(3_750_000), OutputMicros: 15_000_000}}},
	}
	if change != nil {
		change(s)
	}
	cfg := configtest.Compile(t, s)
	g := &gw{fake: fake, audit: &records{}, budgets: limit.NewFleet(time.Now, nil), fakeURL: fakeSrv.URL, snapshot: s}
	g.budgets.Configure(cfg.Budgets())
	logger := slog.New(slog.DiscardHandler)
	f := llm.NewForwarder(logger)
	t.Cleanup(func() { _ = f.Close() })
	b := &backend{cfg: cfg}
	b.handle = pipeline.Chain(f.Forward, stages.Default(stages.Options{
		Audit:   stages.Audit{Writer: g.audit, Dataplane: "dp1"},
		Limit:   []pipeline.Stage{limit.Stage{Reserver: g.budgets}},
		Inspect: stages.Inspect{},
	})...)
	srv := httptest.NewServer(llm.NewHandler(b, logger, "dp1", nil))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// post sends body to path with the agent's key and returns the answer.
func (g *gw) post(t *testing.T, path, key, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatal(err)
	}
	return resp, string(b)
}

func (g *gw) lastReport(t *testing.T) provider.Report {
	t.Helper()
	reps := g.fake.Reports()
	if len(reps) == 0 {
		t.Fatal("the provider got no request")
	}
	return reps[len(reps)-1]
}

// usageOf is the audit record's usage in the provider's terms.
func usageOf(r *auditv1.Record) provider.Usage {
	u := r.GetUsage()
	return provider.Usage{Input: u.GetInputTokens(), Cached: u.GetCachedInputTokens(), CacheWrite: u.GetCacheWriteTokens(),
		Output: u.GetOutputTokens(), Reasoning: u.GetReasoningTokens()}
}

const (
	chatPath      = llm.OpenAIBase + "/v1/chat/completions"
	responsesPath = llm.OpenAIBase + "/v1/responses"
	messagesPath  = llm.AnthropicBase + "/v1/messages"
)

func TestCompleteAnswers(t *testing.T) {
	g := start(t, nil)
	tests := []struct {
		name, path, body string
		wantModel        string // as the provider got it
		wantLimit        int64  // the output limit the provider got
		wantText         string
		cost             int64
	}{
		{
			name: "chat", path: chatPath, body: `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			wantModel: "gpt-4o", wantLimit: 4096, wantText: `"content":"Hello from gpt-4o. w1 w2 w3 w4"`,
		},
		{
			name: "responses by alias", path: responsesPath, body: `{"model":"fast","input":"hi","max_output_tokens":50}`,
			wantModel: "gpt-4o-mini", wantLimit: 50, wantText: `"text":"Hello from gpt-4o-mini. w1 w2 w3 w4"`,
		},
		{
			name: "messages", path: messagesPath, body: `{"model":"anthropic/claude-sonnet","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}`,
			wantModel: "claude-sonnet", wantLimit: 300, wantText: `"text":"Hello from claude-sonnet. w1 w2 w3 w4"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := g.post(t, tt.path, configtest.PayerKey, tt.body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, tt.wantText) {
				t.Fatalf("HTTP %d %s", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Request-Id") != "req_fake" {
				t.Errorf("the provider's request id was not relayed: %v", resp.Header)
			}
			rep := g.lastReport(t)
			if rep.Model != tt.wantModel || rep.MaxTokens != tt.wantLimit {
				t.Errorf("the provider got model %q limit %d, want %q %d", rep.Model, rep.MaxTokens, tt.wantModel, tt.wantLimit)
			}
			rec := g.audit.last(t)
			if rec.GetOutcome() != "ok" || rec.GetTargetKind() != "model" || rec.GetUpstream() == "" || rec.GetTargetOwn() != tt.wantModel {
				t.Errorf("record %v", rec)
			}
			if got := usageOf(rec); got != rep.Usage || rec.GetUsage().GetEstimated() {
				t.Errorf("recorded usage %+v (estimated %v), the provider reported %+v", got, rec.GetUsage().GetEstimated(), rep.Usage)
			}
			if rec.GetArgumentsJson() != "" || rec.GetContent().GetRequestBytes() != int64(len(tt.body)) || len(rec.GetContent().GetResponseSha256()) != 32 {
				t.Errorf("the record keeps the prompt (%q) or lacks its digest: %v", rec.GetArgumentsJson(), rec.GetContent())
			}
		})
	}
	// Cost: gpt-4o at 2.50 input, 1.25 cached, 10.00 output per million.
	rec := g.audit.all()[0]
	u := rec.GetUsage()
	want := ((u.GetInputTokens()-u.GetCachedInputTokens())*2_500_000 + u.GetCachedInputTokens()*1_250_000 + u.GetOutputTokens()*10_000_000 + 999) / 1000
	if !u.GetPriced() || u.GetCostNanos() < want-3 || u.GetCostNanos() > want+3 {
		t.Errorf("cost %d nano-units (priced %v), want about %d", u.GetCostNanos(), u.GetPriced(), want)
	}
	// gpt-4o-mini has no price.
	if u := g.audit.all()[1].GetUsage(); u.GetPriced() || u.GetCostNanos() != 0 {
		t.Errorf("an unpriced model cost %d (priced %v)", u.GetCostNanos(), u.GetPriced())
	}
}

// event is one server-sent event as a client reads it.
type event struct{ name, data string }

func parseEvents(t *testing.T, stream string) []event {
	t.Helper()
	var out []event
	var cur event
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func TestStreams(t *testing.T) {
	g := start(t, nil)
	tests := []struct {
		name, path, body string
		// callerUsage: the caller asked for Chat Completions' usage chunk.
		callerUsage bool
		lastEvent   string
		tool        bool
	}{
		{name: "chat, usage not asked", path: chatPath, body: `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, lastEvent: "[DONE]"},
		{name: "chat, usage asked", path: chatPath, body: `{"model":"openai/gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, callerUsage: true, lastEvent: "[DONE]"},
		{name: "chat, tool call", path: chatPath, body: `{"model":"openai/gpt-4o","stream":true,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],"messages":[{"role":"user","content":"weather in Oslo?"}]}`, lastEvent: "[DONE]", tool: true},
		{name: "responses", path: responsesPath, body: `{"model":"openai/gpt-4o","stream":true,"input":"hi"}`, lastEvent: "response.completed"},
		{name: "messages", path: messagesPath, body: `{"model":"anthropic/claude-sonnet","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, lastEvent: "message_stop"},
		{name: "messages, tool call", path: messagesPath, body: `{"model":"anthropic/claude-sonnet","stream":true,"max_tokens":100,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather?"}]}`, lastEvent: "message_stop", tool: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := g.post(t, tt.path, configtest.PayerKey, tt.body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("HTTP %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			events := parseEvents(t, body)
			last := events[len(events)-1]
			if last.data != tt.lastEvent && last.name != tt.lastEvent {
				t.Errorf("last event %+v, want %s", last, tt.lastEvent)
			}
			usageChunks := 0
			for _, e := range events {
				if strings.Contains(e.data, `"choices":[]`) {
					usageChunks++
				}
			}
			if tt.path == chatPath && usageChunks != map[bool]int{false: 0, true: 1}[tt.callerUsage] {
				t.Errorf("%d usage chunks reached the caller, who asked: %v", usageChunks, tt.callerUsage)
			}
			if tt.tool != strings.Contains(body, "get_weather") {
				t.Errorf("tool call relayed: %v, want %v", strings.Contains(body, "get_weather"), tt.tool)
			}
			rep := g.lastReport(t)
			if tt.path == chatPath && !rep.IncludeUsage {
				t.Error("the gateway did not ask the provider for the stream's usage")
			}
			rec := g.audit.last(t)
			if got := usageOf(rec); got != rep.Usage || rec.GetUsage().GetEstimated() {
				t.Errorf("recorded usage %+v (estimated %v), the provider reported %+v", got, rec.GetUsage().GetEstimated(), rep.Usage)
			}
			if rec.GetContent().GetResponseBytes() == 0 {
				t.Error("no digest of the stream")
			}
		})
	}
}

func TestBrokenStreamIsBilledAsAnEstimate(t *testing.T) {
	g := start(t, nil)
	for _, tt := range []struct{ name, path, body, errEvent string }{
		{"chat", chatPath, `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"break chunks=20"}]}`, `"code":"upstream_unavailable"`},
		{"messages", messagesPath, `{"model":"anthropic/claude-sonnet","stream":true,"max_tokens":500,"messages":[{"role":"user","content":"break chunks=20"}]}`, "event: error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := g.post(t, tt.path, configtest.PayerKey, tt.body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, " w9") || !strings.Contains(body, tt.errEvent) {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			rec := g.audit.last(t)
			u := rec.GetUsage()
			if !u.GetEstimated() || u.GetOutputTokens() < 10 || u.GetInputTokens() == 0 || !u.GetPriced() || u.GetCostNanos() == 0 {
				t.Errorf("usage of a broken stream: %v", u)
			}
			if rec.GetOutcome() == "ok" {
				t.Errorf("a broken stream recorded as ok")
			}
			if tt.name == "messages" && u.GetInputTokens() != g.lastReport(t).Usage.Input {
				// message_start carried the provider's input count.
				t.Errorf("input %d, the provider reported %d before the break", u.GetInputTokens(), g.lastReport(t).Usage.Input)
			}
		})
	}
}

// A provider's error event mid-stream reaches the caller as it was sent;
// the call is recorded as failed upstream, its usage an estimate.
func TestProviderErrorEventMidStream(t *testing.T) {
	g := start(t, nil)
	resp, body := g.post(t, messagesPath, configtest.PayerKey, `{"model":"anthropic/claude-sonnet","stream":true,"max_tokens":500,"messages":[{"role":"user","content":"fail mid-stream chunks=10"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "overloaded mid-stream") || strings.Count(body, "event: error") != 1 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	rec := g.audit.last(t)
	if !rec.GetUpstreamError() || !rec.GetUsage().GetEstimated() || rec.GetUsage().GetOutputTokens() == 0 {
		t.Errorf("record of a stream the provider failed: %v", rec)
	}
}

func TestRefusalsInTheProvidersShape(t *testing.T) {
	g := start(t, nil)
	tests := []struct {
		name, path, key, body string
		status                int
		reason, shape         string
	}{
		{"unknown model, OpenAI", chatPath, configtest.PayerKey, `{"model":"openai/gpt-9","messages":[]}`, 404, "unknown_model", `"code":"unknown_model"`},
		{"unknown model, Anthropic", messagesPath, configtest.PayerKey, `{"model":"nope","max_tokens":5,"messages":[]}`, 404, "unknown_model", `"type":"not_found_error"`},
		{"denied model", messagesPath, configtest.PayerKey, `{"model":"anthropic/claude-haiku","max_tokens":5,"messages":[]}`, 403, "denied", `"type":"permission_error"`},
		{"denied by size", chatPath, configtest.PayerKey, `{"model":"openai/gpt-4o","max_tokens":200000,"messages":[]}`, 403, "denied", `payments/size`},
		{"team without a grant", chatPath, configtest.MarketerKey, `{"model":"openai/gpt-4o","messages":[]}`, 403, "denied", `default deny`},
		{"no key", chatPath, "", `{"model":"openai/gpt-4o","messages":[]}`, 401, "unauthenticated", `"type":"authentication_error"`},
		{"a wrong key", messagesPath, "pck_9999999999999999_nope", `{"model":"openai/gpt-4o","messages":[]}`, 401, "unauthenticated", `"type":"authentication_error"`},
		{"bad request", chatPath, configtest.PayerKey, `{"messages":[]}`, 400, "", `"type":"invalid_request_error"`},
		{"the wrong API for the model", chatPath, configtest.PayerKey, `{"model":"anthropic/claude-sonnet","messages":[]}`, 400, "invalid_arguments", AnthropicHint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(g.fake.Reports())
			resp, body := g.post(t, tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.status || resp.Header.Get(llm.ReasonHeader) != tt.reason || !strings.Contains(body, tt.shape) {
				t.Errorf("HTTP %d reason %q: %s; want %d %q with %s", resp.StatusCode, resp.Header.Get(llm.ReasonHeader), body, tt.status, tt.reason, tt.shape)
			}
			if len(g.fake.Reports()) != before {
				t.Error("a refused call reached the provider")
			}
			if strings.Contains(body, openAIKey) || strings.Contains(body, anthropicKey) {
				t.Error("an upstream key leaked")
			}
		})
	}
	// An unknown model is refused by the pipeline, and audited.
	var found bool
	for _, r := range g.audit.all() {
		found = found || r.GetReason() == "unknown_model" && r.GetTool() == "openai/gpt-9"
	}
	if !found {
		t.Error("no audit record of the unknown model")
	}
}

// AnthropicHint is where the refusal of an Anthropic model called over
// Chat Completions sends the caller.
const AnthropicHint = llm.AnthropicBase + "/v1/messages"

func TestProviderErrorsAreRelayed(t *testing.T) {
	g := start(t, nil)
	resp, body := g.post(t, chatPath, configtest.PayerKey, `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"status=400"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(body, "scripted failure") {
		t.Errorf("a provider's 400: HTTP %d %s", resp.StatusCode, body)
	}
	n := len(g.fake.Reports())
	resp, body = g.post(t, messagesPath, configtest.PayerKey, `{"model":"anthropic/claude-sonnet","max_tokens":5,"messages":[{"role":"user","content":"status=503"}]}`)
	if resp.StatusCode != 503 || !strings.Contains(body, `"type":"api_error"`) {
		t.Errorf("a provider's 503: HTTP %d %s", resp.StatusCode, body)
	}
	if got := len(g.fake.Reports()) - n; got != 3 {
		t.Errorf("a 503 was sent %d times, want 3 (two retries)", got)
	}
	if rec := g.audit.last(t); !rec.GetUpstreamError() || rec.GetUsage() != nil {
		t.Errorf("record of a provider failure: %v", rec)
	}
}

func TestMonthlyBudget(t *testing.T) {
	g := start(t, func(s *snapshotv1.Snapshot) {
		s.Budgets = []*configv1.Budget{
			{Meta: &configv1.ResourceMeta{Name: "payments-monthly"}, Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM,
				Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH, MaxCostMicros: 10_000}, // 0.01
		}
	})
	// Each call reserves 100 output tokens at 10.00/M (0.001) plus its
	// input, and settles on what the provider reports (about 0.00014): the
	// loop runs out after some sixty calls.
	body := `{"model":"openai/gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 8 {
		wg.Go(func() {
			for range 20 {
				resp, _ := g.post(t, chatPath, configtest.PayerKey, body)
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Error("a budget refusal without Retry-After")
				}
			}
		})
	}
	wg.Wait()
	if statuses[200] == 0 || statuses[429] == 0 || statuses[200]+statuses[429] != 160 {
		t.Fatalf("statuses %v", statuses)
	}
	var spent int64
	for _, r := range g.audit.all() {
		spent += r.GetUsage().GetCostNanos()
	}
	if spent > 10_000_000 {
		t.Errorf("spent %d nano-units, over the budget of 10,000,000", spent)
	}
	t.Logf("admitted %d calls, refused %d, spent %d of 10,000,000 nano-units", statuses[200], statuses[429], spent)
	if len(g.fake.Reports()) != statuses[200] {
		t.Errorf("%d calls reached the provider, %d were admitted", len(g.fake.Reports()), statuses[200])
	}

	// A model without a price cannot be called under a cost budget.
	resp, body2 := g.post(t, chatPath, configtest.PayerKey, `{"model":"fast","messages":[]}`)
	if resp.StatusCode != 403 || resp.Header.Get(llm.ReasonHeader) != "unpriced" {
		t.Errorf("an unpriced model under a cost budget: HTTP %d %s", resp.StatusCode, body2)
	}
}

func TestModelListing(t *testing.T) {
	g := start(t, nil)
	get := func(path, key string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get(llm.OpenAIBase+"/v1/models", configtest.PayerKey)
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	_ = json.Unmarshal([]byte(body), &list)
	if status != 200 || len(list.Data) != 2 || list.Data[0].ID != "openai/gpt-4o" || list.Data[1].ID != "openai/gpt-4o-mini" {
		t.Errorf("OpenAI listing: %d %s", status, body)
	}
	status, body = get(llm.AnthropicBase+"/v1/models", configtest.PayerKey)
	if status != 200 || !strings.Contains(body, `"id":"anthropic/claude-sonnet"`) || strings.Contains(body, "haiku") || strings.Contains(body, "gpt") {
		t.Errorf("Anthropic listing: %d %s", status, body)
	}
	if status, body := get(llm.OpenAIBase+"/v1/models", configtest.MarketerKey); status != 200 || strings.Contains(body, "gpt") {
		t.Errorf("marketing lists models it may not call: %s", body)
	}
}

func TestCallerHeadersNeverReachTheProvider(t *testing.T) {
	var got http.Header
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=provider")
		w.Header().Set("Openai-Organization", "org-gateway")
		_, _ = io.WriteString(w, `{"id":"x","type":"message","content":[],"usage":{"input_tokens":1,"output_tokens":1}}`)
	}))
	defer spy.Close()
	g := start(t, func(s *snapshotv1.Snapshot) {
		for _, u := range s.Upstreams {
			if u.GetMeta().GetName() == "anthropic" {
				u.Url = spy.URL
			}
		}
	})
	resp, _ := g.post(t, messagesPath, "", `{"model":"anthropic/claude-sonnet","max_tokens":5,"messages":[]}`,
		"X-Api-Key", configtest.PayerKey, "Anthropic-Version", "2023-06-01", "Anthropic-Beta", "tools-2024", "Cookie", "c=1", "Portcullis-User-Token", "")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if got.Get("X-Api-Key") != anthropicKey || got.Get("Anthropic-Beta") != "tools-2024" || got.Get("Cookie") != "" || strings.Contains(got.Get("Authorization"), "pck_") {
		t.Errorf("the provider got %v", got)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Openai-Organization") != "" {
		t.Errorf("provider headers that name the gateway's account reached the caller: %v", resp.Header)
	}
}

// TestRuntimeInspection: inspection rules act on model calls like on any
// call: a prompt carrying a credential is refused before the provider sees
// it; text a model wrote is redacted in a complete answer; a phrase split
// across streamed events ends the stream with the API's error event, and
// the usage the provider reported is still recorded for budgets.
func TestRuntimeInspection(t *testing.T) {
	rule := func(name, upstream string, side configv1.InspectionSide, action configv1.InspectionAction, detectors, patterns []string) *configv1.InspectionRule {
		return &configv1.InspectionRule{Meta: &configv1.ResourceMeta{Name: name}, Scope: &configv1.InspectionScope{Upstream: upstream},
			Mode: configv1.InspectionMode_INSPECTION_MODE_ENFORCE, Side: side, Action: action, Detectors: detectors, Patterns: patterns}
	}
	const (
		request  = configv1.InspectionSide_INSPECTION_SIDE_REQUEST
		response = configv1.InspectionSide_INSPECTION_SIDE_RESPONSE
		block    = configv1.InspectionAction_INSPECTION_ACTION_BLOCK
		redact   = configv1.InspectionAction_INSPECTION_ACTION_REDACT
	)
	g := start(t, func(s *snapshotv1.Snapshot) {
		s.InspectionRules = []*configv1.InspectionRule{
			rule("no-keys", "", request, block, []string{"secrets"}, nil),
			rule("greeting", "openai", response, redact, nil, []string{`Hello from [a-z0-9.-]+`}),
			rule("words", "anthropic", response, block, nil, []string{`w2 w3`}),
		}
	})

	before := len(g.fake.Reports())
	resp, body := g.post(t, chatPath, configtest.PayerKey, `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"use AKIAIOSFODNN7EXAMPLE"}]}`)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(llm.ReasonHeader) != "inspection_blocked" || !strings.Contains(body, "secrets.aws_access_key") {
		t.Errorf("a prompt with a key: HTTP %d %s %s", resp.StatusCode, resp.Header.Get(llm.ReasonHeader), body)
	}
	if len(g.fake.Reports()) != before {
		t.Error("the refused prompt reached the provider")
	}
	if f := g.audit.last(t).GetFindings(); len(f) != 1 || f[0].GetSide() != "request" || !strings.HasPrefix(f[0].GetLocation(), "request.messages[0].content[") {
		t.Errorf("request findings %v", f)
	}

	resp, body = g.post(t, chatPath, configtest.PayerKey, `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "Hello from") || !strings.Contains(body, `"[REDACTED:pattern.greeting] w1`) {
		t.Errorf("redacted answer: HTTP %d %s", resp.StatusCode, body)
	}
	if f := g.audit.last(t).GetFindings(); len(f) != 1 || f[0].GetLocation() != "result.choices[0].message.content[0:18]" || f[0].GetAction() != "redact" {
		t.Errorf("response findings %v", f)
	}

	resp, body = g.post(t, messagesPath, configtest.PayerKey, `{"model":"anthropic/claude-sonnet","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"chunks=6"}]}`)
	events := parseEvents(t, body)
	last := events[len(events)-1]
	if resp.StatusCode != http.StatusOK || last.name != "error" || !strings.Contains(last.data, "inspection_blocked") || strings.Contains(body, " w3") || strings.Contains(body, "message_stop") {
		t.Errorf("stream ended by inspection: HTTP %d, last event %+v\n%s", resp.StatusCode, last, body)
	}
	rec := g.audit.last(t)
	if rec.GetReason() != "inspection_blocked" || len(rec.GetFindings()) != 1 || rec.GetFindings()[0].GetSide() != "stream" || rec.GetUsage() == nil {
		t.Errorf("record of the ended stream: reason %q, findings %v, usage %v", rec.GetReason(), rec.GetFindings(), rec.GetUsage())
	}
}
