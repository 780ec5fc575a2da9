package mcp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// deprecationMetaKey is the _meta key of the deprecation notice a
// tools/call result carries when the caller's version of the tool is
// deprecated.
const deprecationMetaKey = "io.portcullis/deprecation"

// deprecationNotice is the notice: the version called, when it was
// deprecated, its sunset (after which calls on it are refused), what the
// operator says and the version to move to.
type deprecationNotice struct {
	Tool        string `json:"tool"`
	Version     int64  `json:"version"`
	Deprecated  string `json:"deprecated"`
	Sunset      string `json:"sunset"`
	Message     string `json:"message,omitempty"`
	Replacement int64  `json:"replacement,omitempty"`
}

// deprecated returns t's deprecation when calls on it carry a notice at
// now: deprecated, and before its sunset.
func deprecated(t pipeline.Tool, now time.Time) *pipeline.Deprecation {
	d := t.Deprecation
	if d == nil || d.Retired(now) {
		return nil
	}
	return d
}

// withDeprecation returns result (a tools/call result object) with the
// notice for t under _meta, keeping the upstream's own _meta members.
func withDeprecation(result []byte, t pipeline.Tool, d *pipeline.Deprecation) ([]byte, error) {
	notice, err := json.Marshal(deprecationNotice{
		Tool: t.Action, Version: t.Version,
		Deprecated: d.Since.UTC().Format(time.RFC3339), Sunset: d.Sunset.UTC().Format(time.RFC3339),
		Message: d.Message, Replacement: d.Replacement,
	})
	if err != nil {
		return nil, fmt.Errorf("encode deprecation notice: %w", err)
	}
	meta, err := mcpwire.Find(result, "_meta")
	if err != nil {
		return nil, fmt.Errorf("read result _meta: %w", err)
	}
	if meta == nil || !mcpwire.IsObject(meta) {
		return mcpwire.Set(result, "_meta", []byte(`{"`+deprecationMetaKey+`":`+string(notice)+`}`))
	}
	return mcpwire.SetPath(result, []string{"_meta", deprecationMetaKey}, notice)
}

// setDeprecationHeaders sets the Deprecation header (RFC 9745: a
// structured-field date, "@" and Unix seconds) and the Sunset header
// (RFC 8594: an HTTP-date) of d.
func setDeprecationHeaders(h http.Header, d *pipeline.Deprecation) {
	h.Set("Deprecation", fmt.Sprintf("@%d", d.Since.Unix()))
	h.Set("Sunset", d.Sunset.UTC().Format(http.TimeFormat))
}
