package llmwire

import (
	"encoding/json"
	"net/http"
	"time"
)

// ErrorBody is an error in the shape f's callers (and their SDKs) expect:
// OpenAI's {"error":{"message","type","param","code"}} or Anthropic's
// {"type":"error","error":{"type","message"}}, the type chosen by status.
// code is a machine-readable reason: OpenAI's code member, and a reason
// member of Anthropic's error object.
func ErrorBody(f Family, status int, code, message string) []byte {
	var v any
	if f == Anthropic {
		v = map[string]any{"type": "error", "error": map[string]any{
			"type": anthropicType(status), "message": message, "reason": code,
		}}
	} else {
		v = map[string]any{"error": map[string]any{
			"message": message, "type": openAIType(status), "param": nil, "code": code,
		}}
	}
	b, _ := json.Marshal(v) // maps of strings always encode
	return b
}

func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// ErrorEvent is an error as a stream event of api, for a stream the
// gateway has to end early (the provider's broke): what the API's own
// error events look like, so that SDKs raise it.
func ErrorEvent(api API, code, message string) []byte {
	switch api {
	case Messages:
		return append(append([]byte("event: error\ndata: "), ErrorBody(Anthropic, http.StatusBadGateway, code, message)...), "\n\n"...)
	case Responses:
		b, _ := json.Marshal(map[string]any{"type": "error", "code": code, "message": message, "param": nil})
		return append(append([]byte("event: error\ndata: "), b...), "\n\n"...)
	}
	return append(append([]byte("data: "), ErrorBody(OpenAI, http.StatusBadGateway, code, message)...), "\n\n"...)
}

// ModelInfo is one model in a listing.
type ModelInfo struct {
	// ID is the name agents call the model by.
	ID string
	// Owner is the upstream that serves it.
	Owner string
}

// ModelList is the answer to GET /v1/models in f's shape. Times are the
// zero Unix time: the gateway does not know when a model was made.
func ModelList(f Family, models []ModelInfo) []byte {
	if f == Anthropic {
		data := make([]map[string]any, len(models))
		for i, m := range models {
			data[i] = map[string]any{"type": "model", "id": m.ID, "display_name": m.ID,
				"created_at": time.Unix(0, 0).UTC().Format(time.RFC3339)}
		}
		out := map[string]any{"data": data, "has_more": false, "first_id": nil, "last_id": nil}
		if len(models) > 0 {
			out["first_id"], out["last_id"] = models[0].ID, models[len(models)-1].ID
		}
		b, _ := json.Marshal(out)
		return b
	}
	data := make([]map[string]any, len(models))
	for i, m := range models {
		data[i] = map[string]any{"id": m.ID, "object": "model", "created": 0, "owned_by": m.Owner}
	}
	b, _ := json.Marshal(map[string]any{"object": "list", "data": data})
	return b
}
