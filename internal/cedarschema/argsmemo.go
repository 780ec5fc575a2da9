package cedarschema

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/cedar-policy/cedar-go/x/exp/schema/ast"
)

// maxMemo bounds the arguments memo: past it the memo starts again empty.
// It holds several times the 1,000 tools of the scale fixture (issue 14).
const maxMemo = 8192

// argsMemo remembers the context.arguments type of each set of input
// schemas Generate has typed (argumentsUnion), by their content. The
// control plane generates the whole schema on every pin write, and typing
// 1,000 unchanged input schemas again (JSON decoding and conversion) was
// a third of it. argumentsUnion is a pure function of the bytes, so the
// memo changes no result; the types it holds are never modified (the
// resolver and the renderers only read the AST).
var argsMemo = struct {
	sync.Mutex
	m map[[sha256.Size]byte]ast.RecordType
}{m: map[[sha256.Size]byte]ast.RecordType{}}

// memoArguments is argumentsUnion through argsMemo. Errors are not
// remembered.
func memoArguments(first []byte, others [][]byte) (ast.RecordType, error) {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, s := range append([][]byte{first}, others...) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write(s)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	argsMemo.Lock()
	rec, ok := argsMemo.m[key]
	argsMemo.Unlock()
	if ok {
		return rec, nil
	}
	rec, err := argumentsUnion(first, others)
	if err != nil {
		return nil, err
	}
	argsMemo.Lock()
	if len(argsMemo.m) >= maxMemo {
		clear(argsMemo.m)
	}
	argsMemo.m[key] = rec
	argsMemo.Unlock()
	return rec, nil
}
