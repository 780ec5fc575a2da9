package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/portcullis-gw/portcullis/test/fakellm/provider"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// llmPolicy lets team ops call every model but claude-haiku; team dev may
// call none.
const llmPolicy = `permit(principal in Team::"ops", action in Action::"llm_complete", resource);
@id("no-haiku") forbid(principal, action, resource == Model::"anthropic/claude-haiku");
`

// llmGateway is the gateway with two LLM upstreams in front of one fake
// provider process: "openai" (gpt-4o priced, gpt-4o-mini alias "fast"
// unpriced) and "anthropic" (claude-sonnet priced, claude-haiku denied by
// policy).
type llmGateway struct {
	*gateway
	fake *harness.FakeLLM
	dp   *harness.Dataplane
}

// Prices of the models in micro-units per million tokens: input, cached,
// cache write, output.
var llmPrices = map[string][4]int64{
	"openai/gpt-4o":           {2_500_000, 1_250_000, 2_500_000, 10_000_000},
	"anthropic/claude-sonnet": {3_000_000, 300_000, 3_750_000, 15_000_000},
}

func startLLMGateway(t *testing.T) *llmGateway {
	t.Helper()
	g := startGateway(t, 1, "dp1")
	openaiKey, anthropicKey := "sk-"+randomHex(t, 16), "sk-ant-"+randomHex(t, 16)
	fake := harness.StartFakeLLM(t, harness.FakeLLMOptions{OpenAIKey: openaiKey, AnthropicKey: anthropicKey})
	g.gwctl(t, "secret", "set", "openai-key", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "openai.key", openaiKey))
	g.gwctl(t, "secret", "set", "anthropic-key", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "anthropic.key", anthropicKey))
	g.gwctl(t, "upstream", "add", "openai", "--protocol", "llm", "--provider", "openai", "--url", fake.OpenAIURL,
		"--bearer-secret", "openai-key", "--model", "gpt-4o", "--model", "gpt-4o-mini", "--alias", "fast=gpt-4o-mini")
	g.gwctl(t, "upstream", "add", "anthropic", "--protocol", "llm", "--provider", "anthropic", "--url", fake.AnthropicURL,
		"--header-secret", "x-api-key=anthropic-key", "--model", "claude-sonnet", "--model", "claude-haiku")
	for model, p := range llmPrices {
		g.gwctl(t, "price", "set", model, "--in", microsArg(p[0]), "--cached", microsArg(p[1]), "--cache-write", microsArg(p[2]), "--out", microsArg(p[3]))
	}
	v := g.applyPolicy(t, "models", llmPolicy)
	awaitVersion(t, g.dps[0], v, 20*time.Second)
	return &llmGateway{gateway: g, fake: fake, dp: g.dps[0]}
}

func microsArg(m int64) string { return fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000) }

// modelRecord is a model call's record as "gwctl audit query -o json"
// shows it.
type modelRecord struct {
	Agent         string `json:"agent"`
	Upstream      string `json:"upstream"`
	Tool          string `json:"tool"`
	TargetOwn     string `json:"targetOwn"`
	TargetKind    string `json:"targetKind"`
	Operation     string `json:"operation"`
	Outcome       string `json:"outcome"`
	Reason        string `json:"reason"`
	ArgumentsJSON string `json:"argumentsJson"`
	Usage         *struct {
		InputTokens       harness.Int64 `json:"inputTokens"`
		CachedInputTokens harness.Int64 `json:"cachedInputTokens"`
		CacheWriteTokens  harness.Int64 `json:"cacheWriteTokens"`
		OutputTokens      harness.Int64 `json:"outputTokens"`
		ReasoningTokens   harness.Int64 `json:"reasoningTokens"`
		CostNanos         harness.Int64 `json:"costNanos"`
		Priced            bool          `json:"priced"`
		Estimated         bool          `json:"estimated"`
	} `json:"usage"`
	Content *struct {
		RequestBytes harness.Int64 `json:"requestBytes"`
	} `json:"content"`
}

// usage is the record's usage in the fake provider's terms.
func (r modelRecord) usage() provider.Usage {
	u := r.Usage
	return provider.Usage{Input: int64(u.InputTokens), Cached: int64(u.CachedInputTokens), CacheWrite: int64(u.CacheWriteTokens),
		Output: int64(u.OutputTokens), Reasoning: int64(u.ReasoningTokens)}
}

// awaitModelRecords waits until the control plane stores n records of
// model calls that carry usage, and returns them in the order they were
// written.
func awaitModelRecords(t *testing.T, g *llmGateway, n int) []modelRecord {
	t.Helper()
	var got []modelRecord
	harness.Await(t, 30*time.Second, fmt.Sprintf("%d model records with usage at the control plane", n), func() error {
		var out struct {
			Records []modelRecord `json:"records"`
		}
		r := harness.Gwctl(t, g.env(), "audit", "query", "--dataplane", "dp1", "--all", "--limit", "1000", "-o", "json", "--timeout", "20s")
		if err := r.JSON(&out); err != nil {
			return err
		}
		got = got[:0]
		for _, rec := range out.Records {
			if rec.TargetKind == "model" && rec.Usage != nil {
				got = append(got, rec)
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d so far", len(got))
		}
		return nil
	})
	return got
}

// wantCost is what u costs at the model's price: each part rounded up to
// a nano-unit, as the gateway does.
func wantCost(model string, u provider.Usage) int64 {
	p := llmPrices[model]
	part := func(tokens, micros int64) int64 { return (tokens*micros + 999) / 1000 }
	return part(u.Input-u.Cached-u.CacheWrite, p[0]) + part(u.Cached, p[1]) + part(u.CacheWrite, p[2]) + part(u.Output, p[3])
}

// checkUsage compares the records of the calls the provider answered
// with what it reported, in order: same tokens, the model's price, no
// prompt text.
func checkUsage(t *testing.T, recs []modelRecord, reps []provider.Report) {
	t.Helper()
	var answered []provider.Report
	for _, r := range reps {
		if r.Status == 200 && !r.Broken {
			answered = append(answered, r)
		}
	}
	var exact []modelRecord
	for _, r := range recs {
		if !r.Usage.Estimated {
			exact = append(exact, r)
		}
	}
	if len(exact) != len(answered) {
		t.Fatalf("%d records with the provider's usage, the provider answered %d calls", len(exact), len(answered))
	}
	for i, rec := range exact {
		rep := answered[i]
		if rec.TargetOwn != rep.Model || rec.usage() != rep.Usage {
			t.Errorf("call %d: recorded %s %+v, the provider reported %s %+v", i, rec.TargetOwn, rec.usage(), rep.Model, rep.Usage)
		}
		model := rec.Upstream + "/" + rec.TargetOwn
		if _, priced := llmPrices[model]; priced != rec.Usage.Priced {
			t.Errorf("call %d (%s): priced %v", i, model, rec.Usage.Priced)
		} else if priced && int64(rec.Usage.CostNanos) != wantCost(model, rep.Usage) {
			t.Errorf("call %d (%s): cost %d, want %d", i, model, rec.Usage.CostNanos, wantCost(model, rep.Usage))
		}
		if rec.ArgumentsJSON != "" || rec.Content == nil || rec.Content.RequestBytes == 0 {
			t.Errorf("call %d: the record keeps the prompt (%q) or lacks its digest", i, rec.ArgumentsJSON)
		}
	}
}

// TestLLMWithGoSDK: the official OpenAI Go SDK through the data plane to
// the fake provider: a chat, a stream with and without usage asked, a tool
// call, a Responses stream, an unknown and a denied model, a stream cut
// short; then the audit records match what the provider reported, the
// broken stream is billed as an estimate, and gwctl usage sums it.
func TestLLMWithGoSDK(t *testing.T) {
	g := startLLMGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(g.dp.URL+"/llm/openai/v1/"), option.WithAPIKey(g.opsKey), option.WithMaxRetries(0), option.WithUnsafeAllowHTTP())

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "openai/gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	if err != nil || !strings.HasPrefix(chat.Choices[0].Message.Content, "Hello from gpt-4o.") {
		t.Fatalf("chat: %v %+v", err, chat)
	}

	for _, includeUsage := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{Model: "openai/gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("chunks=12")}}
		if includeUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		usageChunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if len(stream.Current().Choices) == 0 {
				usageChunks++
			}
		}
		if err := stream.Err(); err != nil || !strings.HasSuffix(acc.Choices[0].Message.Content, " w11") {
			t.Fatalf("stream (usage asked: %v): %v %q", includeUsage, err, acc.Choices[0].Message.Content)
		}
		if want := map[bool]int{false: 0, true: 1}[includeUsage]; usageChunks != want || includeUsage != (acc.Usage.TotalTokens > 0) {
			t.Errorf("usage asked: %v; %d usage chunks reached the SDK (usage %+v)", includeUsage, usageChunks, acc.Usage)
		}
	}

	tool, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "openai/gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Oslo?")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather", Parameters: shared.FunctionParameters{"type": "object"},
		})},
	})
	if err != nil || len(tool.Choices[0].Message.ToolCalls) != 1 || tool.Choices[0].Message.ToolCalls[0].Function.Name != "get_weather" {
		t.Fatalf("tool call: %v %+v", err, tool)
	}

	rs := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "openai/gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("chunks=4")},
	})
	var deltas string
	var completed bool
	for rs.Next() {
		switch e := rs.Current(); e.Type {
		case "response.output_text.delta":
			deltas += e.Delta
		case "response.completed":
			completed = e.Response.Usage.TotalTokens > 0
		}
	}
	if err := rs.Err(); err != nil || deltas != "Hello from gpt-4o. w1 w2 w3" || !completed {
		t.Fatalf("responses stream: %v %q completed %v", err, deltas, completed)
	}

	var apiErr *openai.Error
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "openai/gpt-9", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "unknown_model" {
		t.Errorf("unknown model: %v", err)
	}
	denied := openai.NewClient(option.WithBaseURL(g.dp.URL+"/llm/openai/v1/"), option.WithAPIKey(g.devKey), option.WithMaxRetries(0), option.WithUnsafeAllowHTTP())
	_, err = denied.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "openai/gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "denied" || apiErr.Type != "permission_error" {
		t.Errorf("denied model: %v", err)
	}

	broken := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "openai/gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("break chunks=30")},
	})
	got := 0
	for broken.Next() {
		got++
	}
	if broken.Err() == nil || got < 10 {
		t.Errorf("a broken stream: %d chunks, err %v", got, broken.Err())
	}

	reps, err := g.fake.Reports()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.API == "chat" && r.Stream && !r.IncludeUsage {
			t.Error("a chat stream reached the provider without stream_options.include_usage")
		}
	}
	recs := awaitModelRecords(t, g, 6)
	checkUsage(t, recs, reps)
	last := recs[len(recs)-1]
	if !last.Usage.Estimated || last.Usage.OutputTokens < 15 || last.Usage.InputTokens == 0 || last.Usage.CostNanos == 0 || last.Outcome == "ok" {
		t.Errorf("the broken stream's record: %+v %+v", last, last.Usage)
	}

	var usage struct {
		Rows []struct {
			Key            string        `json:"key"`
			Calls          harness.Int64 `json:"calls"`
			CostNanos      harness.Int64 `json:"costNanos"`
			EstimatedCalls harness.Int64 `json:"estimatedCalls"`
		} `json:"rows"`
	}
	harness.GwctlJSON(t, g.env(), &usage, "usage", "--by", "agent", "--timeout", "20s")
	var sum int64
	for _, r := range recs {
		sum += int64(r.Usage.CostNanos)
	}
	if len(usage.Rows) != 1 || usage.Rows[0].Key != "ops-agent" || int64(usage.Rows[0].Calls) != int64(len(recs)) ||
		int64(usage.Rows[0].CostNanos) != sum || usage.Rows[0].EstimatedCalls != 1 {
		t.Errorf("gwctl usage --by agent: %+v; want ops-agent with %d calls costing %d, one estimated", usage.Rows, len(recs), sum)
	}
	table := g.gwctl(t, "usage", "--by", "model").Stdout
	if !strings.Contains(table, "openai/gpt-4o") || !strings.Contains(table, "COST") {
		t.Errorf("gwctl usage --by model:\n%s", table)
	}
}

// TestLLMWithTypeScriptSDKs: the official OpenAI and Anthropic TypeScript
// SDKs (npm, run by Node): chats, streams, tool calls and refusals in each
// API's shape, and the audit records match the provider's usage.
func TestLLMWithTypeScriptSDKs(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (Node 20+): %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "llmclient")
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			t.Fatalf("the SDKs are not installed: run `npm ci --prefix test/llmclient` (make e2e does): %v", err)
		}
	}
	g := startLLMGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.mjs"), g.dp.URL)
	cmd.Env = append(os.Environ(), "PORTCULLIS_AGENT_KEY="+g.opsKey, "PORTCULLIS_DENIED_KEY="+g.devKey)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llmclient failed: %v\n%s", err, stderr.String())
	}
	t.Logf("llmclient: %s", out)
	type apiError struct {
		Status int             `json:"status"`
		Code   string          `json:"code"`
		Body   json.RawMessage `json:"body"`
	}
	var got struct {
		Chat struct {
			Text string `json:"text"`
		} `json:"chat"`
		ChatStream struct {
			Text        string `json:"text"`
			UsageChunks int    `json:"usageChunks"`
		} `json:"chatStream"`
		ChatStreamUsage struct {
			Text  string          `json:"text"`
			Usage json.RawMessage `json:"usage"`
		} `json:"chatStreamUsage"`
		ChatTool struct {
			Name, Args string
		} `json:"chatTool"`
		ResponsesStream struct {
			Deltas, Text string
		} `json:"responsesStream"`
		UnknownModel apiError `json:"unknownModel"`
		DeniedOpenAI apiError `json:"deniedOpenAI"`
		Messages     struct {
			Text string `json:"text"`
		} `json:"messages"`
		MessagesStream struct {
			Deltas, Text string
			Usage        struct {
				OutputTokens int64 `json:"output_tokens"`
			} `json:"usage"`
		} `json:"messagesStream"`
		MessagesTool struct {
			Type, Name string
		} `json:"messagesTool"`
		DeniedAnthropic apiError `json:"deniedAnthropic"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("llmclient output: %v", err)
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"chat", got.Chat.Text == "Hello from gpt-4o. w1 w2 w3 w4"},
		{"chat stream without usage chunk", strings.HasSuffix(got.ChatStream.Text, " w7") && got.ChatStream.UsageChunks == 0},
		{"chat stream with usage", strings.HasPrefix(got.ChatStreamUsage.Text, "Hello from gpt-4o-mini.") && strings.Contains(string(got.ChatStreamUsage.Usage), "prompt_tokens")},
		{"chat tool call", got.ChatTool.Name == "get_weather" && got.ChatTool.Args == `{"city":"Oslo"}`},
		{"responses stream", got.ResponsesStream.Deltas == "Hello from gpt-4o. w1 w2 w3 w4" && got.ResponsesStream.Text == got.ResponsesStream.Deltas},
		{"unknown model", got.UnknownModel.Status == 404 && got.UnknownModel.Code == "unknown_model"},
		{"denied, OpenAI shape", got.DeniedOpenAI.Status == 403 && got.DeniedOpenAI.Code == "denied"},
		{"messages", got.Messages.Text == "Hello from claude-sonnet. w1 w2 w3 w4"},
		// Two cumulative message_delta events: the SDK keeps the last.
		{"messages stream", got.MessagesStream.Deltas == "Hello from claude-sonnet. w1 w2 w3 w4 w5" && got.MessagesStream.Text == got.MessagesStream.Deltas && got.MessagesStream.Usage.OutputTokens == 12},
		{"messages tool use", got.MessagesTool.Type == "tool_use" && got.MessagesTool.Name == "get_weather"},
		{"denied, Anthropic shape", got.DeniedAnthropic.Status == 403 && strings.Contains(string(got.DeniedAnthropic.Body), `"permission_error"`)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not as expected", c.what)
		}
	}
	reps, err := g.fake.Reports()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reps); n != 8 {
		t.Errorf("the provider answered %d calls, want 8 (refusals never reach it)", n)
	}
	checkUsage(t, awaitModelRecords(t, g, 8), reps)
}

// TestLLMMonthlyBudget: a monthly cost budget for team ops stops a loop
// of parallel calls within the documented bound (one data plane: the
// budget plus what the provider reports beyond the calls' reservations),
// refusing the rest with 429 and Retry-After in OpenAI's shape before they
// reach the provider; a model without a price is refused while the budget
// applies.
func TestLLMMonthlyBudget(t *testing.T) {
	g := startLLMGateway(t)
	r := g.gwctl(t, "budget", "set", "ops-monthly", "--scope", "team", "--team", "ops", "--window", "month", "--time-zone", "Europe/Oslo", "--max-cost", "0.01", "-o", "json")
	var b revisioned
	if err := r.JSON(&b); err != nil {
		t.Fatal(err)
	}
	awaitVersion(t, g.dp, uint64(b.Meta.Revision), 20*time.Second)
	if out := g.gwctl(t, "budget", "list").Stdout; !strings.Contains(out, "cost 0.01 per team per month (Europe/Oslo)") {
		t.Errorf("gwctl budget list:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(g.dp.URL+"/llm/openai/v1/"), option.WithAPIKey(g.opsKey), option.WithMaxRetries(0), option.WithUnsafeAllowHTTP())
	params := openai.ChatCompletionNewParams{Model: "openai/gpt-4o", MaxTokens: openai.Int(100), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	var (
		mu                 sync.Mutex
		admitted, refused  int
		retryAfter, shapes []string
	)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				_, err := client.Chat.Completions.New(ctx, params)
				mu.Lock()
				var apiErr *openai.Error
				switch {
				case err == nil:
					admitted++
				case errors.As(err, &apiErr) && apiErr.StatusCode == 429:
					refused++
					retryAfter = append(retryAfter, apiErr.Response.Header.Get("Retry-After"))
					shapes = append(shapes, apiErr.Code)
				default:
					t.Errorf("call: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d", admitted, refused)
	if admitted == 0 || refused == 0 || slices.Contains(retryAfter, "") || slices.ContainsFunc(shapes, func(s string) bool { return s != "budget_exhausted" }) {
		t.Fatalf("admitted %d, refused %d; Retry-After %v; codes %v", admitted, refused, retryAfter[:min(3, len(retryAfter))], shapes[:min(3, len(shapes))])
	}
	reps, err := g.fake.Reports()
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != admitted {
		t.Errorf("%d calls reached the provider, %d were admitted", len(reps), admitted)
	}
	recs := awaitModelRecords(t, g, admitted)
	var spent int64
	for _, r := range recs {
		spent += int64(r.Usage.CostNanos)
	}
	// The bound on one data plane: the budget, plus what providers report
	// beyond the reservations of the calls in flight (none here: the
	// fake's input never exceeds the gateway's estimate by much, and its
	// output is far below max_tokens).
	if spent > 10_000_000 {
		t.Errorf("spent %d nano-units, over the budget of 10,000,000", spent)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "fast", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "unpriced" {
		t.Errorf("an unpriced model under a cost budget: %v", err)
	}
}
