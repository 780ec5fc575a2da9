package audit

import (
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// hashPrefix separates audit record hashes from any other SHA-256 use.
const hashPrefix = "portcullis.audit.v1.Record\n"

// hashSize is the length of hash and prev_hash.
const hashSize = sha256.Size

// deterministic is the encoding records are stored and hashed in.
var deterministic = proto.MarshalOptions{Deterministic: true}

// chainHash is the hash r must carry, per the rule documented on
// auditv1.Record's hash field; scratch is reused for the encoding. r.Hash
// is ignored (and left as it was).
func chainHash(r *auditv1.Record, scratch []byte) ([hashSize]byte, []byte, error) {
	saved := r.Hash
	r.Hash = nil
	b, err := deterministic.MarshalAppend(scratch[:0], r)
	r.Hash = saved
	if err != nil {
		return [hashSize]byte{}, scratch, fmt.Errorf("encode audit record: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(hashPrefix))
	h.Write(r.PrevHash)
	h.Write(b)
	var sum [hashSize]byte
	h.Sum(sum[:0])
	return sum, b, nil
}
