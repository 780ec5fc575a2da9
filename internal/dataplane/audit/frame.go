package audit

import (
	"io"

	"github.com/portcullis-gw/portcullis/internal/auditframe"
)

// The local log's frames are auditframe's (the control plane's store reads
// the same format).
const frameHeaderSize = auditframe.HeaderSize

var (
	errTorn      = auditframe.ErrTorn
	errBadLength = auditframe.ErrBadLength
	errBadCRC    = auditframe.ErrBadCRC
)

var putFrameHeader = auditframe.PutHeader

func newFrameReader(r io.Reader) *auditframe.Reader { return auditframe.NewReader(r) }
