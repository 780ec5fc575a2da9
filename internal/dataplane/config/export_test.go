package config

import (
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Decode is the decode Compile runs, sharing with prev's messages (nil
// for none), for FuzzCompile to hold to proto.Unmarshal.
func Decode(data []byte, prev *Compiled) (*snapshotv1.Snapshot, error) {
	s, _, err := decode(data, prev.elements())
	return s, err
}
