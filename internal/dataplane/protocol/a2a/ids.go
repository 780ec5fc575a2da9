package a2a

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

// Gateway-issued ids. An agent never sees an upstream's task or context
// id: it sees
//
//	g1<k>.<base64url(upstream id)>.<base64url(mac)>
//
// where k is "t" for a task and "c" for a context, and mac the first 16
// bytes of HMAC-SHA256 under the snapshot's task_id_key over the kind, the
// agent that owns the id, the upstream and the upstream's id. An id is
// issued to the agent whose call produced it; only that agent can use it,
// only with that upstream, on any data plane of the cluster (they share the
// key, nothing else). Anything else — another agent's id, an id of another
// upstream, a forged or raw upstream id — is unknown: the caller learns
// nothing about whether such a task exists.
const (
	idPrefix = "g1"
	macBytes = 16
	// maxUpstreamID bounds an upstream's id the gateway wraps.
	maxUpstreamID = 512
	// macLabel separates these MACs from any other use of the key.
	macLabel = "portcullis/a2a-id/v1"
)

// errForeignID is an id that is not one the gateway issued to this agent
// for this upstream.
var errForeignID = errors.New("not an id the gateway issued to this agent for this agent's upstream")

// errLongID is an upstream id too long to wrap.
var errLongID = errors.New("the agent answered with an id longer than the gateway accepts")

// idCodec wraps and unwraps the ids of one agent's calls to one upstream.
type idCodec struct {
	key             []byte
	owner, upstream string
}

func kindChar(k a2awire.IDKind) string {
	if k == a2awire.ContextID {
		return "c"
	}
	return "t"
}

func (c idCodec) mac(k a2awire.IDKind, id string) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, part := range []string{macLabel, kindChar(k), c.owner, c.upstream, id} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:macBytes]
}

// wrap is an a2awire.Mapper: the id the caller sees for an upstream's id.
func (c idCodec) wrap(k a2awire.IDKind, id string) (string, error) {
	if len(id) > maxUpstreamID {
		return "", errLongID
	}
	enc := base64.RawURLEncoding
	return idPrefix + kindChar(k) + "." + enc.EncodeToString([]byte(id)) + "." + enc.EncodeToString(c.mac(k, id)), nil
}

// unwrap is an a2awire.Mapper: the upstream's id behind an id the caller
// sent, or errForeignID.
func (c idCodec) unwrap(k a2awire.IDKind, gw string) (string, error) {
	rest, ok := strings.CutPrefix(gw, idPrefix+kindChar(k)+".")
	if !ok || len(gw) > 2*maxUpstreamID {
		return "", errForeignID
	}
	encID, encMAC, ok := strings.Cut(rest, ".")
	if !ok {
		return "", errForeignID
	}
	// Strict: one id per task, never two encodings of it.
	enc := base64.RawURLEncoding.Strict()
	id, err1 := enc.DecodeString(encID)
	sum, err2 := enc.DecodeString(encMAC)
	if err1 != nil || err2 != nil || len(sum) != macBytes || len(id) > maxUpstreamID {
		return "", errForeignID
	}
	if !hmac.Equal(sum, c.mac(k, string(id))) {
		return "", errForeignID
	}
	return string(id), nil
}
