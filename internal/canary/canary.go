// Package canary decides which agents a policy rollout's candidate decides
// for in its canary stage. Every data plane computes the same answer from
// the rollout id and the agent's name alone, an agent in the canary at a
// share stays in as the share grows, and each rollout (a new id) draws a
// fresh sample:
//
//	bucket = first 8 bytes of SHA-256(rollout id || 0x00 || agent name),
//	         as a big-endian integer, mod 10,000
//	in the canary  ⇔  bucket < share in basis points (share × 10,000)
package canary

import (
	"crypto/sha256"
	"encoding/binary"
)

// Buckets is the number of buckets: shares are in basis points.
const Buckets = 10_000

// Bucket is agent's bucket in rollout id, in [0, Buckets).
func Bucket(id, agent string) uint32 {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(agent))
	var sum [sha256.Size]byte
	return uint32(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Buckets)
}

// In reports whether agent is in rollout id's canary at a share of
// basisPoints (0 to 10,000).
func In(id, agent string, basisPoints uint32) bool {
	return Bucket(id, agent) < basisPoints
}
