// Package toolpin is what the control plane and the data planes must agree
// on about a tool definition: which parts of it an approval covers and how
// they are hashed. The control plane hashes a definition when an operator
// pins it; a data plane hashes what the upstream lists now and compares,
// so both sides use this one implementation.
package toolpin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gowebpki/jcs"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// HashedFields are the top-level members of a tool definition an approval
// covers: everything that tells a model what the tool does and how to call
// it. Other members are not hashed, so they never cause a false alarm:
//
//   - _meta is free-form server metadata that servers may change with every
//     build (SDK versions, timestamps, UI hints), and the gateway never
//     shows it to agents;
//   - icons only decorate a tool in a user interface;
//   - members future protocol versions add are unknown to approvals made
//     before them; a pin approves what its operator could review.
var HashedFields = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}

// Prefix starts every hash.
const Prefix = "sha256:"

// Hash hashes the approved parts of a tool definition (HashedFields) over
// their canonical JSON (RFC 8785), so neither key order nor whitespace
// changes it, and returns it as "sha256:<hex>" together with the
// definition's inputSchema exactly as given (nil when absent).
//
// A definition nested deeper than limits.JSONNesting is refused before it
// is parsed.
func Hash(def []byte) (hash string, inputSchema []byte, err error) {
	var deep *limits.Error
	if errors.As(limits.CheckJSON("definition", def, len(def)), &deep) {
		return "", nil, errors.New(deep.Msg)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(def, &obj); err != nil || obj == nil {
		return "", nil, errors.New("the definition must be a JSON object")
	}
	sel := map[string]json.RawMessage{}
	for _, f := range HashedFields {
		if v, ok := obj[f]; ok {
			sel[f] = v
		}
	}
	raw, err := json.Marshal(sel)
	if err != nil {
		return "", nil, err
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return "", nil, fmt.Errorf("canonicalize definition: %w", err)
	}
	sum := sha256.Sum256(canon)
	return Prefix + hex.EncodeToString(sum[:]), obj["inputSchema"], nil
}

// Short is the start of a hash for tables and messages: "sha256:" and 12
// hex digits.
func Short(hash string) string {
	if n := len(Prefix) + 12; len(hash) > n {
		return hash[:n]
	}
	return hash
}

// Name is the definition's "name", "" when it has none or is not an
// object.
func Name(def []byte) string {
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(def, &named)
	return named.Name
}

// SuggestClass reads a classification from the definition's annotations:
// readOnlyHint → read-only, else idempotentHint → idempotent, else
// mutating (also without annotations: the spec's defaults are
// readOnlyHint false and idempotentHint false). Annotations are the
// upstream's hints, so this is only a suggestion to show an operator;
// nothing applies it without the operator saying so.
func SuggestClass(def []byte) configv1.ToolClass {
	var d struct {
		Annotations struct {
			ReadOnlyHint   bool `json:"readOnlyHint"`
			IdempotentHint bool `json:"idempotentHint"`
		} `json:"annotations"`
	}
	_ = json.Unmarshal(def, &d) // a malformed definition suggests the safe class
	switch {
	case d.Annotations.ReadOnlyHint:
		return configv1.ToolClass_TOOL_CLASS_READ_ONLY
	case d.Annotations.IdempotentHint:
		return configv1.ToolClass_TOOL_CLASS_IDEMPOTENT
	}
	return configv1.ToolClass_TOOL_CLASS_MUTATING
}
