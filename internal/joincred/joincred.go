// Package joincred encodes the credential a data plane joins the cluster
// with: its name, its dataplane-role token and the fingerprint of the
// cluster CA it must pin. Both the control plane (which issues it) and the
// data plane (which presents it) use this package.
package joincred

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

const prefix = "pcj1_"

// MaxLen bounds an encoded credential.
const MaxLen = 1024

// Credential is a data plane's join credential.
type Credential struct {
	// Name is the data plane's name.
	Name string `json:"name"`
	// Token is the dataplane-role bearer token ("pct_…").
	Token string `json:"token"`
	// CAFingerprint pins the cluster CA ("sha256:<hex>"); empty in --dev.
	CAFingerprint string `json:"ca,omitempty"`
}

// Encode renders the credential as one copy-pasteable string.
func (c Credential) Encode() string {
	b, _ := json.Marshal(c)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// ErrMalformed reports a credential that is not one this package encoded.
var ErrMalformed = errors.New("malformed join credential (it starts with pcj1_; create one with 'gwctl dataplane token create')")

// Parse decodes an encoded credential.
func Parse(s string) (Credential, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLen || !strings.HasPrefix(s, prefix) {
		return Credential{}, ErrMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(prefix):])
	if err != nil {
		return Credential{}, ErrMalformed
	}
	var c Credential
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if c.Name == "" || c.Token == "" {
		return Credential{}, fmt.Errorf("%w: name and token are required", ErrMalformed)
	}
	return c, nil
}

// StorageKey derives the 32-byte key that encrypts the data plane's
// last-known-good snapshot on its disk. Whoever holds the credential can
// read the snapshot; nobody else can.
func (c Credential) StorageKey() []byte {
	k, err := hkdf.Key(sha256.New, []byte(c.Token), []byte(c.Name), "portcullis/dataplane-lkg/v1", 32)
	if err != nil {
		panic(err) // only on an impossible length
	}
	return k
}
