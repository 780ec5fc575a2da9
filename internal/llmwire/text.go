package llmwire

import (
	"bytes"
	"encoding/json"
	"strings"
)

// BlobTokens is what the gateway assumes a blob in a request costs (an
// image or a file sent inline as base64 or a data: URI): about what a
// large image costs at OpenAI and Anthropic. The provider's own count
// replaces the estimate once it answers.
const BlobTokens = 1600

// minBlob is the shortest string taken for a blob.
const minBlob = 256

// Input is the text of a request the provider counts as input, for the
// gateway's own estimate of its tokens: every string value of the body
// except the model's name, with inline blobs (base64, data: URIs) left
// out and counted in Blobs.
type Input struct {
	// Text is the strings, each followed by a newline.
	Text string
	// Blobs is how many inline blobs the request carries.
	Blobs int
	// Strings is how many strings Text holds (messages, parts, tool
	// descriptions: each costs the provider a few tokens of framing).
	Strings int
}

// Input collects the request's input text.
func (r *Request) Input() Input { return collect(r.body, true) }

// AnswerText is the text of a complete answer (every string value), for
// the gateway's own count when a provider reports no usage.
func AnswerText(body []byte) string { return collect(body, false).Text }

// collect gathers the string values of the JSON value b, leaving out the
// top-level "model" when skipModel is set, and blobs.
func collect(b []byte, skipModel bool) Input {
	var sb strings.Builder
	in := Input{}
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			break // io.EOF, or a body ParseRequest refused
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.wantKey {
			top.key, top.wantKey = s, false
			continue
		}
		// A value: in an object, a key comes next.
		inModel := skipModel && top != nil && len(stack) == 1 && top.key == "model"
		if top != nil && top.object {
			top.wantKey = true
		}
		switch v := tok.(type) {
		case json.Delim:
			stack = append(stack, frame{object: v == '{', wantKey: v == '{'})
		case string:
			switch {
			case inModel || v == "":
			case isBlob(v):
				in.Blobs++
			default:
				sb.WriteString(v)
				sb.WriteByte('\n')
				in.Strings++
			}
		}
	}
	in.Text = sb.String()
	return in
}

// isBlob reports whether s looks like inline binary data: a data: URI, or
// a long run of base64 without spaces.
func isBlob(s string) bool {
	if len(s) < minBlob {
		return false
	}
	if strings.HasPrefix(s, "data:") {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
