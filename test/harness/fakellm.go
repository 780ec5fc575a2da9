package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/fakellm/provider"
)

// FakeLLMOptions configure StartFakeLLM.
type FakeLLMOptions struct {
	// OpenAIKey and AnthropicKey are the only API keys the provider
	// accepts; they reach the process through its environment.
	OpenAIKey, AnthropicKey string
	// ChunkDelay is the pause between streamed chunks.
	ChunkDelay time.Duration
}

// FakeLLM is a fakellm process (the fake LLM provider of test/fakellm).
type FakeLLM struct {
	Addr string
	// OpenAIURL is its OpenAI API base (http://ADDR/v1); AnthropicURL its
	// Anthropic base (http://ADDR).
	OpenAIURL, AnthropicURL string
	Log                     *LogBuffer
}

// StartFakeLLM starts the fake provider on a free loopback port and waits
// until it answers.
func StartFakeLLM(t testing.TB, opts FakeLLMOptions) *FakeLLM {
	t.Helper()
	f := &FakeLLM{Addr: FreeAddr(t), Log: NewLogBuffer()}
	f.AnthropicURL = "http://" + f.Addr
	f.OpenAIURL = f.AnthropicURL + "/v1"
	env := []string{"FAKELLM_OPENAI_KEY=" + opts.OpenAIKey, "FAKELLM_ANTHROPIC_KEY=" + opts.AnthropicKey}
	args := []string{"--addr", f.Addr}
	if opts.ChunkDelay > 0 {
		args = append(args, "--chunk-delay", opts.ChunkDelay.String())
	}
	t.Cleanup(func() {
		if strings.Contains(f.Log.String(), raceReport) {
			t.Errorf("fakellm reported a data race (see its log)")
		}
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of fakellm (%s) ===\n%s=== end of log of fakellm ===", f.Addr, f.Log.String())
		}
	})
	d := StartDaemon(t, "fakellm", Bin(t, "fakellm"), args, env, f.Log)
	deadline := time.Now().Add(StartTimeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		_, err := f.Reports()
		if err == nil {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakellm not serving within %s: %v", StartTimeout, err)
		}
		select {
		case <-d.Done():
			t.Fatalf("fakellm exited before serving (last error: %v)", err)
		case <-time.After(backoff):
		}
	}
}

// Reports lists the requests the provider answered and the usage it
// reported, oldest first.
func (f *FakeLLM) Reports() ([]provider.Report, error) {
	status, body, err := httpGet("http://" + f.Addr + "/fake/reports")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /fake/reports: status %d: %s", status, body)
	}
	var out []provider.Report
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GET /fake/reports: %w", err)
	}
	return out, nil
}
