package audit

import (
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// hashSize is the length of hash and prev_hash.
const hashSize = auditchain.HashSize

// deterministic is the encoding records are stored and hashed in.
var deterministic = proto.MarshalOptions{Deterministic: true}

// chainHash is the hash r must carry, per the rule documented on
// auditv1.Record's hash field, shared with the control plane that stores
// and verifies the chain (auditchain); scratch is reused for the encoding.
// r.Hash is ignored (and left as it was).
func chainHash(r *auditv1.Record, scratch []byte) ([hashSize]byte, []byte, error) {
	return auditchain.Hash(r, scratch)
}
