package llmwire

// API is one of the LLM APIs the gateway brokers.
type API int

// The APIs.
const (
	// ChatCompletions is OpenAI's POST /v1/chat/completions, which
	// OpenAI-compatible servers speak too.
	ChatCompletions API = iota + 1
	// Responses is OpenAI's POST /v1/responses.
	Responses
	// Messages is Anthropic's POST /v1/messages.
	Messages
)

// String names the API as audit records' method does.
func (a API) String() string {
	switch a {
	case ChatCompletions:
		return "chat/completions"
	case Responses:
		return "responses"
	case Messages:
		return "messages"
	}
	return "unknown"
}

// Path is the API's path under its provider's base URL (an OpenAI base
// ends in /v1; Anthropic's does not).
func (a API) Path() string {
	switch a {
	case ChatCompletions:
		return "/chat/completions"
	case Responses:
		return "/responses"
	case Messages:
		return "/v1/messages"
	}
	return ""
}

// Family is the error and listing shape an API's callers expect.
type Family int

// Families.
const (
	OpenAI Family = iota + 1
	Anthropic
)

// Family is the shape a's callers expect.
func (a API) Family() Family {
	if a == Messages {
		return Anthropic
	}
	return OpenAI
}
