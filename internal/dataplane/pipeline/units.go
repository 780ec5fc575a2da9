package pipeline

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Model is a model an upstream serves, as calls see it: its name for
// agents, where it is served, the most output a call may be assumed to
// produce, and its prices.
type Model struct {
	// Name is the model as agents call it ("<prefix>/<id>", or an alias
	// resolves to it).
	Name string
	// Upstream serves it; Own is the upstream's own id for it.
	Upstream, Own string
	// OutputCap is the output a call is assumed to produce at most when
	// its request sets no limit.
	OutputCap int64
	// Prices are in order of From; none when the model has no price.
	Prices []Price
}

// PriceAt is the price of m at t: the last one from t or before, nil when
// there is none.
func (m Model) PriceAt(t time.Time) *Price {
	i, _ := slices.BinarySearchFunc(m.Prices, t, func(p Price, t time.Time) int {
		if p.From.After(t) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return nil
	}
	return &m.Prices[i-1]
}

// Price is a model's price from a moment on, in micro-units of the
// operator's currency per million tokens.
type Price struct {
	From time.Time
	// Input is per million input tokens that are neither cache reads nor
	// cache writes; CachedInput per million cache reads; CacheWrite per
	// million cache writes; Output per million output tokens.
	Input, CachedInput, CacheWrite, Output int64
}

// Cost is what u costs at p, in nano-units (billionths) of the currency,
// rounded up, saturating at math.MaxInt64.
func (p Price) Cost(u Usage) int64 {
	plain := max(u.InputTokens-u.CachedInputTokens-u.CacheWriteTokens, 0)
	var total int64
	for _, part := range [...][2]int64{
		{plain, p.Input}, {u.CachedInputTokens, p.CachedInput}, {u.CacheWriteTokens, p.CacheWrite}, {u.OutputTokens, p.Output},
	} {
		total = addSat(total, nanos(part[0], part[1]))
	}
	return total
}

// nanos is tokens at micros per million tokens, in nano-units:
// tokens·micros/1000, rounded up.
func nanos(tokens, micros int64) int64 {
	if tokens <= 0 || micros <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(micros))
	if hi >= 1000 {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, 1000)
	if r > 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Demand is the most a call may consume, known before it runs: what a
// limit reserves and what policies read (context.maxTokens,
// context.inputTokens). Zero for calls of targets that count no tokens.
type Demand struct {
	// InputTokens estimates the input the call sends.
	InputTokens int64
	// OutputTokens is the most output it may produce.
	OutputTokens int64
}

// Usage is what a call consumed, for targets that report it (a model
// call): tokens, and their cost at the target's price.
type Usage struct {
	// InputTokens counts every input token; CachedInputTokens and
	// CacheWriteTokens are the parts read from and written to the
	// provider's cache.
	InputTokens, CachedInputTokens, CacheWriteTokens int64
	// OutputTokens counts every output token; ReasoningTokens is the
	// reasoning part.
	OutputTokens, ReasoningTokens int64
	// Cost is in nano-units of the currency; valid when Priced.
	Cost   int64
	Priced bool
	// Estimated is set when the gateway counted the tokens itself (the
	// provider's count never arrived).
	Estimated bool
	// Model is the model as the target named it in its answer.
	Model string
}

// Tokens is the usage's input plus output.
func (u Usage) Tokens() int64 { return addSat(u.InputTokens, u.OutputTokens) }

// Digest describes content by size and SHA-256 only: what an audit record
// keeps of a prompt or a completion.
type Digest struct {
	Bytes  int64
	SHA256 []byte
}
