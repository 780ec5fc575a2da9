package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// maxBatch bounds the messages of one batch: each runs through the
// pipeline in turn, so a batch costs at most this many calls' time.
const maxBatch = 32

// isBatch reports whether a POST body is a JSON array: a batch.
func isBatch(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '['
}

// batchRefused is the error answering a batch from a caller whose protocol
// version has none.
func batchRefused(version string) *rpcError {
	return &rpcError{
		Code: codeInvalidRequest,
		Message: fmt.Sprintf("JSON-RPC batches are part of MCP 2025-03-26 only (2025-06-18 removed them); this request speaks %s: send one JSON-RPC message per POST",
			truncate(version, 32)),
	}
}

// serveBatch answers a JSON-RPC batch, which MCP allows in 2025-03-26
// only: the caller must speak that version (its MCP-Protocol-Version
// header, else its session's version, else, without either, 2025-03-26 by
// the spec's rule) and every message must be of the legacy era. The
// caller is authenticated once for the batch (an unidentified one gets
// the 401 challenge for the whole request); then each message is handled
// as if it had been POSTed alone, in order, with a JSON answer (no event
// stream), and is audited on its own. The answer is an array of the
// responses to the batch's requests, in order; notifications and
// responses in the batch get no entry, and a batch of only those is
// answered 202 without a body. initialize may not be part of a batch.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request, token string, body []byte) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		writeError(w, http.StatusBadRequest, nullID, &rpcError{Code: codeParseError, Message: "parse error: the body is not valid JSON"})
		return
	}
	version := r.Header.Get("Mcp-Protocol-Version")
	if version != "" && version != version20250326 {
		if !supportedHeader(version) {
			writeError(w, http.StatusBadRequest, nullID, unsupportedVersion(version))
			return
		}
		writeError(w, http.StatusBadRequest, nullID, batchRefused(version))
		return
	}
	switch {
	case len(elems) == 0:
		writeError(w, http.StatusBadRequest, nullID, &rpcError{Code: codeInvalidRequest, Message: "invalid request: an empty batch"})
		return
	case len(elems) > maxBatch:
		writeError(w, http.StatusBadRequest, nullID, &rpcError{Code: codeInvalidRequest, Message: fmt.Sprintf("a batch holds at most %d messages; send more batches", maxBatch)})
		return
	}
	call := h.backend.Begin(r)
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, nullID, &rpcError{
			Code: codeUnavailable, Message: "the data plane has no configuration yet; retry shortly",
			Data: reasonData(pipeline.ReasonNoConfig),
		})
		return
	}
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	agent, refusal := stages.ResolveAgent(r.Context(), call.Config, token, call.PeerCertificates, call.Start)
	if refusal != nil {
		h.anonymous(w, r, nil, true)
		return
	}
	if session := r.Header.Get("Mcp-Session-Id"); session != "" {
		v, ok := h.sessions.useVersion(session, agent.GetMeta().GetName())
		if !ok {
			sessionNotFound(w)
			return
		}
		if version == "" && v != version20250326 {
			writeError(w, http.StatusBadRequest, nullID, batchRefused(v))
			return
		}
	}
	// Each message is handled alone, as 2025-03-26 and with a JSON answer.
	one := r.Clone(r.Context())
	one.Header.Set("Accept", "application/json")
	one.Header.Set("Mcp-Protocol-Version", version20250326)
	answers := make([]json.RawMessage, 0, len(elems))
	for _, elem := range elems {
		if e := batchElementError(elem); e != nil {
			if id := mcpwire.ParseID(elem); string(id) != "null" {
				answers = append(answers, mcpwire.NewError(id, e))
			}
			continue
		}
		rec := &bufferedResponse{header: http.Header{}}
		h.serveMessage(rec, one, token, elem)
		if a := rec.answer(elem); a != nil {
			answers = append(answers, a)
		}
	}
	if len(answers) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	out, err := json.Marshal(answers)
	if err != nil {
		writeError(w, http.StatusInternalServerError, nullID, &rpcError{Code: -32603, Message: "the gateway failed to encode its response"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// batchElementError refuses what may not be part of a batch: initialize
// (2025-03-26: it must be sent alone) and a message of the modern era.
func batchElementError(elem json.RawMessage) *mcpwire.Error {
	// A message that does not parse is answered with its own parse error.
	m, err := mcpwire.Parse(elem)
	switch {
	case err == nil && m.Method == "initialize":
		return &mcpwire.Error{Code: codeInvalidRequest, Message: "initialize cannot be part of a batch: send it alone"}
	case err == nil && metaVersion(m) != "":
		e := batchRefused(metaVersion(m))
		return &mcpwire.Error{Code: e.Code, Message: e.Message}
	}
	return nil
}

// bufferedResponse keeps the answer to one message of a batch.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// answer is the batch entry of the message elem: the JSON-RPC response it
// got, or, when it was answered in plain HTTP (a session that is gone, say),
// that answer as a JSON-RPC error to its id; nil for a message that gets
// no entry (202: a notification or a response).
func (b *bufferedResponse) answer(elem json.RawMessage) json.RawMessage {
	if b.status == http.StatusAccepted || b.body.Len() == 0 {
		return nil
	}
	out := bytes.TrimSpace(b.body.Bytes())
	if mcpwire.IsObject(out) && json.Valid(out) {
		return out
	}
	id := mcpwire.ParseID(elem)
	if string(id) == "null" {
		return nil
	}
	msg := strings.TrimSpace(b.body.String())
	if msg == "" {
		msg = http.StatusText(b.status)
	}
	code := codeUnavailable
	if b.status == http.StatusNotFound {
		code = codeInvalidRequest
	}
	return mcpwire.NewError(id, &mcpwire.Error{Code: code, Message: truncate(msg, 256)})
}
