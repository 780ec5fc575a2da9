package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Paths, in the order they are measured and reported.
const (
	pathDirect    = "direct"
	pathNginx     = "nginx"
	pathDataplane = "data plane"
)

// target is one path to the provider.
type target struct {
	name, url, key, model string
}

// result is what the streams of one path measured.
type result struct {
	name    string
	skipped string
	ttft    []time.Duration
	chunk   []time.Duration
}

func run(ctx context.Context, cfg config) error {
	if cfg.verbose {
		os.Setenv("PORTCULLIS_E2E_LOGS", "1")
	}
	binDir, err := os.MkdirTemp("", "llmbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(os.Stderr, "llmbench: building controlplane, gwctl, dataplane, fakellm …")
	if err := harness.BuildPrograms(binDir, "controlplane", "gwctl", "dataplane", "fakellm"); err != nil {
		return err
	}
	nginxBin, nginxErr := harness.FindNginx(cfg.nginx)
	if nginxErr != nil {
		fmt.Fprintf(os.Stderr, "llmbench: WARNING: %v — the nginx row will read n/a\n", nginxErr)
	}
	var results []result
	setup := ""
	p := harness.NewProgram(ctx, "llmbench", os.Stderr)
	err = p.Run(func(t testing.TB) {
		g := startGateway(t, cfg.gap)
		targets := []target{{name: pathDirect, url: g.fake.OpenAIURL, key: g.providerKey, model: "gpt-4o"}}
		setup = "nginx: n/a (" + errText(nginxErr) + ")"
		if nginxErr == nil {
			url := startNginx(t, nginxBin, g.fake.Addr)
			targets = append(targets, target{name: pathNginx, url: url + "/v1", key: g.providerKey, model: "gpt-4o"})
			setup = harness.NginxVersion(nginxBin) + ", `proxy_pass` over HTTP/1.1 to a keep-alive pool, `proxy_buffering off`, no access log"
		} else {
			results = append(results, result{name: pathNginx, skipped: errText(nginxErr)})
		}
		targets = append(targets, target{name: pathDataplane, url: g.dp.URL + "/llm/openai/v1", key: g.agentKey, model: "openai/gpt-4o"})
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		for _, tg := range targets {
			fmt.Fprintf(os.Stderr, "llmbench: %s: %d streams of %d chunks, %s apart …\n", tg.name, cfg.streams, cfg.chunks, cfg.gap)
			r := result{name: tg.name}
			for i := range cfg.warmup + cfg.streams {
				if ctx.Err() != nil {
					return
				}
				ttft, chunks, err := stream(ctx, client, tg, cfg.chunks)
				if err != nil {
					t.Errorf("%s: stream %d: %v", tg.name, i, err)
					r.skipped = err.Error()
					break
				}
				if i >= cfg.warmup {
					r.ttft = append(r.ttft, ttft)
					r.chunk = append(r.chunk, chunks...)
				}
			}
			results = append(results, r)
		}
	})
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	if err != nil {
		return err
	}
	slices.SortStableFunc(results, func(a, b result) int { return order(a.name) - order(b.name) })
	report := render(cfg, setup, results)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(cfg.out, []byte(report), 0o644)
	}
	return nil
}

func order(name string) int {
	return slices.Index([]string{pathDirect, pathNginx, pathDataplane}, name)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// stream runs one streamed completion and returns its time to first
// token and each content chunk's latency (received minus the provider's
// send stamp).
func stream(ctx context.Context, client *http.Client, tg target, chunks int) (time.Duration, []time.Duration, error) {
	body := fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"stamp chunks=%d"}]}`, tg.model, chunks)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/chat/completions", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tg.key)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var (
		ttft time.Duration
		lat  []time.Duration
		done bool
	)
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			break
		}
		now := time.Now()
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal(data, &c) != nil || len(c.Choices) == 0 {
			continue
		}
		stamp, ok := strings.CutPrefix(c.Choices[0].Delta.Content, " @")
		if !ok {
			continue
		}
		sent, err := strconv.ParseInt(stamp, 10, 64)
		if err != nil {
			continue
		}
		if ttft == 0 {
			ttft = now.Sub(start)
		}
		lat = append(lat, now.Sub(time.Unix(0, sent)))
	}
	if !done || len(lat) != chunks {
		return 0, nil, fmt.Errorf("stream ended after %d of %d chunks (done: %v)", len(lat), chunks, done)
	}
	return ttft, lat, nil
}

// gateway is what the benchmark runs against.
type gateway struct {
	fake        *harness.FakeLLM
	dp          *harness.Dataplane
	providerKey string
	agentKey    string
}

// startGateway starts a one-node control plane, the fake provider and a
// data plane, configured with gwctl as an operator would: the provider's
// key as a secret, the LLM upstream with a priced model, an agent, a
// policy and a monthly budget far above what the run spends (so the
// Limit stage reserves and settles every call).
func startGateway(t testing.TB, gap time.Duration) *gateway {
	g := &gateway{providerKey: "sk-bench-provider"}
	c := harness.StartCluster(t, 1)
	g.fake = harness.StartFakeLLM(t, harness.FakeLLMOptions{OpenAIKey: g.providerKey, ChunkDelay: gap})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gwctl := func(v any, args ...string) {
		harness.GwctlJSON(t, c.Env(), v, append(args, "--timeout", "20s", "-o", "json")...)
	}
	var ignore map[string]any
	gwctl(&ignore, "secret", "set", "provider-key", "--hosts", "127.0.0.1", "--from-file", write("key", g.providerKey))
	gwctl(&ignore, "upstream", "add", "openai", "--protocol", "llm", "--provider", "openai", "--url", g.fake.OpenAIURL,
		"--bearer-secret", "provider-key", "--model", "gpt-4o")
	gwctl(&ignore, "price", "set", "openai/gpt-4o", "--in", "2.50", "--out", "10")
	var agent struct {
		APIKey string `json:"apiKey"`
	}
	gwctl(&agent, "agent", "create", "bench-agent", "--team", "bench")
	g.agentKey = agent.APIKey
	gwctl(&ignore, "budget", "set", "bench-monthly", "--scope", "team", "--window", "month", "--max-cost", "1000000")
	var policy struct {
		PolicySet struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"policySet"`
	}
	gwctl(&policy, "policy", "apply", "-f", write("bench.cedar", `permit(principal in Team::"bench", action in Action::"llm_complete", resource);`), "--name", "bench")
	version := uint64(policy.PolicySet.Meta.Revision)
	var cred struct {
		Credential string `json:"credential"`
	}
	gwctl(&cred, "dataplane", "token", "create", "bench-llm")
	g.dp = harness.StartDataplane(t, harness.DataplaneOptions{Name: "bench-llm", ControlPlanes: c.URLs(), Credential: cred.Credential, Args: []string{"--log-level", "warn"}})
	g.dp.AwaitServing(t, harness.StartTimeout)
	g.dp.AwaitReadyz(t, 20*time.Second, fmt.Sprintf("serves config version ≥ %d", version), func(st harness.ReadyStatus) error {
		if st.Version < version || st.Mode != "normal" {
			return fmt.Errorf("want version ≥ %d in normal mode", version)
		}
		return nil
	})
	return g
}

// percentile is the q-quantile (0..1) of ds, by nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func signedMs(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

// render is the Markdown report.
func render(cfg config, setup string, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# LLM streaming: time to first token and per-chunk latency\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs, %s. %d streamed Chat Completions per path (after %d warm-up), one at a time, each %d chunks %s apart from the fake provider (test/fakellm). ",
		runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), runtime.Version(), cfg.streams, cfg.warmup, cfg.chunks, cfg.gap)
	fmt.Fprintf(&b, "Time to first token: request sent to first content chunk received. Chunk latency: each chunk's receipt minus the provider's send stamp. ")
	fmt.Fprintf(&b, "The data plane runs its full pipeline: API-key authentication, a team budget reserved and settled, Cedar (`llm_complete`), usage counted from the stream, the audit record fsynced before the stream's last event. %s.\n\n", setup)
	fmt.Fprintf(&b, "| path | TTFT p50 | TTFT p90 | TTFT p99 | chunk p50 | chunk p90 | chunk p99 |\n|---|---|---|---|---|---|---|\n")
	var direct *result
	for i, r := range results {
		if r.name == pathDirect {
			direct = &results[i]
		}
		if r.skipped != "" {
			fmt.Fprintf(&b, "| %s | n/a | | | | | | \n", r.name)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.name,
			ms(percentile(r.ttft, .5)), ms(percentile(r.ttft, .9)), ms(percentile(r.ttft, .99)),
			ms(percentile(r.chunk, .5)), ms(percentile(r.chunk, .9)), ms(percentile(r.chunk, .99)))
	}
	if direct != nil && direct.skipped == "" {
		fmt.Fprintf(&b, "\nAdded over direct (difference of the percentiles):\n\n| path | TTFT p50 | TTFT p99 | chunk p50 | chunk p99 |\n|---|---|---|---|---|\n")
		for _, r := range results {
			if r.name == pathDirect || r.skipped != "" {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name,
				signedMs(percentile(r.ttft, .5)-percentile(direct.ttft, .5)), signedMs(percentile(r.ttft, .99)-percentile(direct.ttft, .99)),
				signedMs(percentile(r.chunk, .5)-percentile(direct.chunk, .5)), signedMs(percentile(r.chunk, .99)-percentile(direct.chunk, .99)))
		}
	}
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(&b, "\n%s: not measured: %s\n", r.name, r.skipped)
		}
	}
	return b.String()
}
