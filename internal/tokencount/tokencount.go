// Package tokencount counts tokens offline, for when a provider's own
// count is missing: a stream that broke or a caller that went away before
// the usage arrived, and the estimate of a request's input a budget
// reserves before the call. It uses OpenAI's o200k_base encoding
// (github.com/tiktoken-go/tokenizer, vocabulary embedded in the binary);
// for other providers' models the count is an estimate of the same order,
// which is all it is used as.
package tokencount

import (
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// sampleBytes bounds the text actually tokenized: past it, the count is
// extrapolated from the first sampleBytes at the sample's ratio, so that a
// large prompt costs a bounded time (the tokenizer reads about 4-8 MB/s:
// 16 KiB is 2-4 ms).
const sampleBytes = 16 << 10

var codec = sync.OnceValue(func() tokenizer.Codec {
	c, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		return nil
	}
	return c
})

// Count estimates the tokens of s: the encoding's exact count up to 16 KiB
// of text, extrapolated beyond. The first call loads the vocabulary
// (about 30 ms).
func Count(s string) int64 {
	if s == "" {
		return 0
	}
	c := codec()
	sample := s
	if len(s) > sampleBytes {
		cut := sampleBytes
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		sample = s[:cut]
	}
	n, err := 0, error(nil)
	if c != nil {
		n, err = c.Count(sample)
	}
	if c == nil || err != nil {
		// Not expected with valid UTF-8; fall back to a byte ratio.
		n = (len(sample) + 3) / 4
	}
	if len(sample) == len(s) || len(sample) == 0 {
		return int64(n)
	}
	// Round up: an estimate used for reservations errs high.
	return (int64(n)*int64(len(s)) + int64(len(sample)) - 1) / int64(len(sample))
}

// Warm loads the vocabulary now rather than on the first count.
func Warm() { _ = codec() }
