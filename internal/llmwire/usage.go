package llmwire

import "encoding/json"

// MaxCount bounds a token count read from a provider: a larger or
// negative one is taken as this bound or 0.
const MaxCount = 1_000_000_000_000

// Usage is a provider's count of one call's tokens, the same for every
// API: input includes cache reads and writes, output includes reasoning.
type Usage struct {
	InputTokens       int64
	CachedInputTokens int64
	CacheWriteTokens  int64
	OutputTokens      int64
	ReasoningTokens   int64
	// Model is the model as the provider named it in its answer.
	Model string
}

// openAIUsage is usage of Chat Completions (prompt/completion) and of
// Responses (input/output); each API sets its own fields.
type openAIUsage struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// usage normalizes u; ok is false when it carries no counts.
func (u *openAIUsage) usage() (Usage, bool) {
	var out Usage
	switch {
	case u.PromptTokens != nil || u.CompletionTokens != nil:
		out.InputTokens, out.OutputTokens = deref(u.PromptTokens), deref(u.CompletionTokens)
		out.CachedInputTokens = u.PromptTokensDetails.CachedTokens
		out.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	case u.InputTokens != nil || u.OutputTokens != nil:
		out.InputTokens, out.OutputTokens = deref(u.InputTokens), deref(u.OutputTokens)
		out.CachedInputTokens = u.InputTokensDetails.CachedTokens
		out.ReasoningTokens = u.OutputTokensDetails.ReasoningTokens
	default:
		return Usage{}, false
	}
	return out.clamped(), true
}

// anthropicUsage is Anthropic's usage object. In a stream, message_delta
// repeats it with cumulative counts: present fields replace earlier ones.
type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
}

// anthropicCounts holds Anthropic's counts as it reports them: input
// without the cache's tokens.
type anthropicCounts struct {
	input, cacheWrite, cacheRead, output int64
	haveInput, haveOutput                bool
}

// merge overwrites the counts u carries.
func (c *anthropicCounts) merge(u *anthropicUsage) {
	if u == nil {
		return
	}
	if u.InputTokens != nil {
		c.input, c.haveInput = *u.InputTokens, true
	}
	if u.CacheCreationInputTokens != nil {
		c.cacheWrite = *u.CacheCreationInputTokens
	}
	if u.CacheReadInputTokens != nil {
		c.cacheRead = *u.CacheReadInputTokens
	}
	if u.OutputTokens != nil {
		c.output, c.haveOutput = *u.OutputTokens, true
	}
}

func (c *anthropicCounts) usage() Usage {
	u := Usage{
		InputTokens:       clamp(c.input) + clamp(c.cacheWrite) + clamp(c.cacheRead),
		CachedInputTokens: clamp(c.cacheRead),
		CacheWriteTokens:  clamp(c.cacheWrite),
		OutputTokens:      clamp(c.output),
	}
	return u.clamped()
}

// ParseUsage reads the usage of a complete (not streamed) answer of api;
// ok is false when the answer carries none.
func ParseUsage(api API, body []byte) (Usage, bool) {
	switch api {
	case ChatCompletions, Responses:
		var a struct {
			Model string       `json:"model"`
			Usage *openAIUsage `json:"usage"`
		}
		if json.Unmarshal(body, &a) != nil || a.Usage == nil {
			return Usage{}, false
		}
		u, ok := a.Usage.usage()
		u.Model = truncate(a.Model, MaxModelName)
		return u, ok
	case Messages:
		var a struct {
			Model string          `json:"model"`
			Usage *anthropicUsage `json:"usage"`
		}
		if json.Unmarshal(body, &a) != nil || a.Usage == nil {
			return Usage{}, false
		}
		var c anthropicCounts
		c.merge(a.Usage)
		if !c.haveInput && !c.haveOutput {
			return Usage{}, false
		}
		u := c.usage()
		u.Model = truncate(a.Model, MaxModelName)
		return u, true
	}
	return Usage{}, false
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func clamp(n int64) int64 { return min(max(n, 0), MaxCount) }

// clamped bounds every count and keeps the parts within their wholes.
func (u Usage) clamped() Usage {
	u.InputTokens, u.OutputTokens = clamp(u.InputTokens), clamp(u.OutputTokens)
	u.CachedInputTokens = min(clamp(u.CachedInputTokens), u.InputTokens)
	u.CacheWriteTokens = min(clamp(u.CacheWriteTokens), u.InputTokens-u.CachedInputTokens)
	u.ReasoningTokens = min(clamp(u.ReasoningTokens), u.OutputTokens)
	return u
}
