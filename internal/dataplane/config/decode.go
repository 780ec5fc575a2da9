package config

import (
	"bytes"
	"fmt"
	"hash/maphash"

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
// (agents, pins, policy sets, …) are shared; every other field is decoded
// as usual. The result is equal (proto.Equal) to proto.Unmarshal's, and
// the decode fails exactly when proto.Unmarshal does (FuzzCompile checks
// both).

// elements indexes the encodings of a version's shared elements, to find
// the previous version's message for an equal encoding.
type elements struct {
	seed maphash.Seed
	// byHash is each element by field number and the hash of its
	// encoding; an encoding whose hash collides with another's is not
	// indexed (it is decoded afresh next time).
	byHash map[elementKey]element
}

type elementKey struct {
	field protowire.Number
	hash  uint64
}

// element is one decoded element and its encoding (a sub-slice of the
// version's snapshot bytes, kept for the byte comparison).
type element struct {
	raw []byte
	msg protoreflect.Message
}

// lookup returns the indexed message of field with encoding raw.
func (x *elements) lookup(field protowire.Number, raw []byte) (protoreflect.Message, bool) {
	if x == nil {
		return nil, false
	}
	e, ok := x.byHash[elementKey{field, maphash.Bytes(x.seed, raw)}]
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil, false
	}
	return e.msg, true
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
	next := &elements{seed: maphash.MakeSeed(), byHash: map[elementKey]element{}}
	if prev != nil {
		next.seed = prev.seed
	}
	collided := map[elementKey]bool{}
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
		msg, ok := prev.lookup(num, raw)
		if !ok {
			msg = m.NewField(fd).List().NewElement().Message()
			if err := elementUnmarshal.Unmarshal(raw, msg.Interface()); err != nil {
				return nil, nil, fmt.Errorf("field %s: %w", fd.Name(), err)
			}
		}
		key := elementKey{num, maphash.Bytes(next.seed, raw)}
		if old, dup := next.byHash[key]; dup && !bytes.Equal(old.raw, raw) || collided[key] {
			delete(next.byHash, key)
			collided[key] = true
		} else if !dup {
			next.byHash[key] = element{raw: raw, msg: msg}
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
