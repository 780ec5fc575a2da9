package config

import (
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// Decoding a version against the previous one. A snapshot is the whole
// configuration, and consecutive versions differ in a few resources: the
// decode shares every resource message whose encoding is byte for byte
// the previous version's, instead of decoding a copy. That saves the
// decode's time and, more, its memory — the old and the new version are
// both live while the new one compiles and swaps in, and they hold one
// copy of everything unchanged — and it lets the compile reuse what it
// derived from those messages (see reuse.go), since a shared message is
// the same pointer.
//
// Only the elements of the snapshot's top-level repeated message fields
// (agents, pins, policy sets, …) are shared, found by the SHA-256 digest of
// their encoding; every other field is decoded as usual. The result is
// equal (proto.Equal) to proto.Unmarshal's, and the decode fails exactly
// when proto.Unmarshal does (FuzzCompile checks both).

// elements indexes a version's shared elements by the SHA-256 digest of
// their encoding, to find the previous version's message for an equal
// encoding. A digest rather than the encoding itself: the index then
// holds 32 bytes per resource instead of keeping the whole snapshot's
// encoding alive with every version, and SHA-256 is collision-resistant,
// so equal digests are equal encodings.
type elements struct {
	byDigest map[elementKey]protoreflect.Message
}

type elementKey struct {
	field  protowire.Number
	digest [sha256.Size]byte
}

// lookup returns the indexed message of key.
func (x *elements) lookup(key elementKey) (protoreflect.Message, bool) {
	if x == nil {
		return nil, false
	}
	m, ok := x.byDigest[key]
	return m, ok
}

// elementUnmarshal decodes one element as proto.Unmarshal decodes it
// inside the snapshot, one level down.
var elementUnmarshal = proto.UnmarshalOptions{RecursionLimit: protowire.DefaultRecursionLimit - 1}

// decode decodes a snapshot, sharing with prev (nil for none) every
// element of a top-level repeated message field whose encoding prev holds.
// It returns the index of the new version's elements, for the next.
func decode(data []byte, prev *elements) (*snapshotv1.Snapshot, *elements, error) {
	snap := &snapshotv1.Snapshot{}
	m := snap.ProtoReflect()
	fields := m.Descriptor().Fields()
	next := &elements{byDigest: map[elementKey]protoreflect.Message{}}
	type pending struct {
		fd  protoreflect.FieldDescriptor
		msg protoreflect.Message
	}
	var (
		rest  []byte
		elems []pending
	)
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		size := protowire.ConsumeFieldValue(num, typ, b[n:])
		if size < 0 {
			return nil, nil, protowire.ParseError(size)
		}
		field := b[:n+size]
		b = b[n+size:]
		fd := fields.ByNumber(num)
		if fd == nil || typ != protowire.BytesType || !fd.IsList() || fd.Message() == nil {
			rest = append(rest, field...)
			continue
		}
		raw, _ := protowire.ConsumeBytes(field[n:])
		key := elementKey{num, sha256.Sum256(raw)}
		msg, ok := prev.lookup(key)
		if !ok {
			msg = m.NewField(fd).List().NewElement().Message()
			if err := elementUnmarshal.Unmarshal(raw, msg.Interface()); err != nil {
				return nil, nil, fmt.Errorf("field %s: %w", fd.Name(), err)
			}
		}
		if _, dup := next.byDigest[key]; !dup {
			next.byDigest[key] = msg
		}
		elems = append(elems, pending{fd, msg})
	}
	if err := proto.Unmarshal(rest, snap); err != nil {
		return nil, nil, err
	}
	for _, e := range elems {
		m.Mutable(e.fd).List().Append(protoreflect.ValueOfMessage(e.msg))
	}
	return snap, next, nil
}
