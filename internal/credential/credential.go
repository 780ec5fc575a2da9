// Package credential mints and parses the gateway's bearer secrets: agent API
// keys ("pck_<id>_<secret>") and admin tokens ("pct_<id>_<secret>"). The id
// is a lookup key, safe to log and store; only the SHA-256 of the whole text
// is kept, and verification compares digests in constant time.
package credential

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Kind is the prefix of a credential type.
type Kind string

// The credential kinds.
const (
	APIKey     Kind = "pck"
	AdminToken Kind = "pct"
)

const (
	idBytes     = 8  // 16 hex characters
	secretBytes = 32 // 256 bits of entropy
	// MaxLen bounds the text of any credential we parse.
	MaxLen = 128
)

// Minted is a freshly minted credential. Text is shown to its owner once.
type Minted struct {
	ID     string
	Text   string
	SHA256 []byte
}

// New mints a credential of kind k.
func New(k Kind) (Minted, error) {
	idb := make([]byte, idBytes)
	sec := make([]byte, secretBytes)
	if _, err := rand.Read(idb); err != nil {
		return Minted{}, err
	}
	if _, err := rand.Read(sec); err != nil {
		return Minted{}, err
	}
	id := hex.EncodeToString(idb)
	text := string(k) + "_" + id + "_" + base64.RawURLEncoding.EncodeToString(sec)
	sum := sha256.Sum256([]byte(text))
	return Minted{ID: id, Text: text, SHA256: sum[:]}, nil
}

// Parse splits text of kind k and returns its id. It checks the shape only.
func Parse(k Kind, text string) (id string, ok bool) {
	if len(text) > MaxLen {
		return "", false
	}
	rest, found := strings.CutPrefix(text, string(k)+"_")
	if !found {
		return "", false
	}
	id, secret, found := strings.Cut(rest, "_")
	if !found || len(id) != 2*idBytes || secret == "" {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", false
	}
	return id, true
}

// Verify reports whether text hashes to want, in constant time.
func Verify(text string, want []byte) bool {
	sum := sha256.Sum256([]byte(text))
	return len(want) == sha256.Size && subtle.ConstantTimeCompare(sum[:], want) == 1
}

// Derive mints a credential of kind k deterministically from key and parts:
// the same inputs give the same credential. The admin API derives from a
// server-only key and the client's request id, so a create retried after a
// lost acknowledgement returns the very credential that was stored.
func Derive(k Kind, key []byte, parts ...string) Minted {
	mac := func(label string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(label))
		for _, p := range parts {
			h.Write([]byte{0})
			h.Write([]byte(p))
		}
		return h.Sum(nil)
	}
	id := hex.EncodeToString(mac("portcullis/credential-id/" + string(k))[:idBytes])
	text := string(k) + "_" + id + "_" + base64.RawURLEncoding.EncodeToString(mac("portcullis/credential-secret/" + string(k))[:secretBytes])
	sum := sha256.Sum256([]byte(text))
	return Minted{ID: id, Text: text, SHA256: sum[:]}
}
