// Package auditchain is the audit hash-chain rule shared by the data plane,
// which writes chains, and the control plane, which stores and verifies
// them. The rule is documented on the hash field of auditv1.Record.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// HashSize is the length of hash and prev_hash.
const HashSize = sha256.Size

// prefix separates audit record hashes from any other SHA-256 use.
const prefix = "portcullis.audit.v1.Record\n"

// deterministic is the encoding records are hashed in.
var deterministic = proto.MarshalOptions{Deterministic: true}

// Zero is the prev_hash of a chain's first record.
var Zero = make([]byte, HashSize)

// Hash returns the hash r must carry; scratch is reused for the encoding
// and returned. r.Hash is ignored and left as it was, so r must not be
// shared with another goroutine during the call.
func Hash(r *auditv1.Record, scratch []byte) ([HashSize]byte, []byte, error) {
	saved := r.Hash
	r.Hash = nil
	b, err := deterministic.MarshalAppend(scratch[:0], r)
	r.Hash = saved
	if err != nil {
		return [HashSize]byte{}, scratch, fmt.Errorf("encode audit record: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(r.PrevHash)
	h.Write(b)
	var sum [HashSize]byte
	h.Sum(sum[:0])
	return sum, b, nil
}

// Check reports why r does not carry the hash the rule gives it, or does
// not follow prev (the previous record's hash; nil when unknown), as a
// short reason; "" when it does.
func Check(r *auditv1.Record, prev []byte, scratch []byte) (string, []byte) {
	if len(r.PrevHash) != HashSize {
		return fmt.Sprintf("prev_hash is %d bytes", len(r.PrevHash)), scratch
	}
	if prev != nil && !bytes.Equal(r.PrevHash, prev) {
		return fmt.Sprintf("prev_hash does not match the hash of record %d", r.Sequence-1), scratch
	}
	sum, scratch, err := Hash(r, scratch)
	if err != nil {
		return err.Error(), scratch
	}
	if !bytes.Equal(r.Hash, sum[:]) {
		return "hash does not match the record's contents", scratch
	}
	return "", scratch
}
