package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"sync"
)

// readResponseHead reads the head of one response to req from br as
// http.ReadResponse does, and returns the same Response. A plain response
// (see plainHead), the kind upstreams send, whose head arrived whole with
// its first bytes, is parsed here in one string and a few allocations;
// any other is read by http.ReadResponse, which then finds br as it was.
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	// Waiting for the first bytes is what ReadResponse does first; its
	// failure is ReadResponse's.
	if _, err := br.Peek(1); err != nil {
		if br.Buffered() == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	buf, _ := br.Peek(br.Buffered())
	if pr, n, ok := plainHead(buf, req); ok {
		_, _ = br.Discard(n)
		pr.resp.Body = pr.body.init(br, &pr.resp)
		return &pr.resp, nil
	}
	return http.ReadResponse(br, req)
}

// plainResponse is a plain response with its body, the first values of
// its header fields and its transfer encoding: one allocation.
type plainResponse struct {
	resp   http.Response
	body   plainBody
	values [plainValues]string
	te     [1]string
}

// plainValues is how many header fields' first values a plainResponse
// holds; a head with more lines gets a slice of its own.
const plainValues = 8

// Limits of a plain head.
const maxPlainLines = 64

// plainHead parses the head at the start of buf when it is plain, and
// returns the response (its Body not set) and the head's length. Plain
// is: complete in buf; lines ended by CRLF; the status line "HTTP/1.1",
// a three-digit status of 200 or more other than 204 and 304, and an
// optional reason; at most maxPlainLines header fields, with canonical
// names of letters, digits and hyphens and values of visible ASCII,
// spaces and tabs, none continued on the next line; no Connection,
// Trailer or Pragma field; either one Content-Length of digits or one
// "Transfer-Encoding: chunked", not both; and a request other than HEAD.
// These are the heads ReadResponse reads without changing anything of
// them but the Transfer-Encoding field it removes.
func plainHead(buf []byte, req *http.Request) (*plainResponse, int, bool) {
	if req != nil && req.Method == http.MethodHead {
		return nil, 0, false
	}
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false
	}
	end += 4
	head := buf[:end]
	for i, c := range head {
		if c == '\n' && (i == 0 || head[i-1] != '\r') || c == '\r' && (i+1 == len(head) || head[i+1] != '\n') {
			return nil, 0, false // a bare LF or CR: textproto reads lines its own way
		}
	}
	// One string for the status and every field's name and value.
	s := string(head)
	line, rest, _ := strings.Cut(s, "\r\n")
	status, code, ok := plainStatusLine(line)
	if !ok {
		return nil, 0, false
	}
	lines := strings.Count(rest, "\r\n") - 1 // the last is the blank line
	if lines > maxPlainLines {
		return nil, 0, false
	}
	pr := new(plainResponse)
	hdr := make(http.Header, lines)
	strs := pr.values[:]
	if lines > len(strs) {
		strs = make([]string, lines)
	}
	var (
		chunked   bool
		length    = int64(-1)
		teSeen    bool
		lengthSet bool
	)
	for {
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			break
		}
		k, v, ok := plainField(line)
		if !ok {
			return nil, 0, false
		}
		switch k {
		case "Connection", "Trailer", "Pragma":
			return nil, 0, false
		case "Transfer-Encoding":
			if teSeen || v != "chunked" {
				return nil, 0, false
			}
			teSeen, chunked = true, true
			continue // ReadResponse removes it
		case "Content-Length":
			if lengthSet || v == "" || len(v) > 18 {
				return nil, 0, false
			}
			length = 0
			for i := 0; i < len(v); i++ {
				if v[i] < '0' || v[i] > '9' {
					return nil, 0, false
				}
				length = length*10 + int64(v[i]-'0')
			}
			lengthSet = true
		}
		if vv := hdr[k]; vv == nil {
			strs[0] = v
			hdr[k], strs = strs[:1:1], strs[1:]
		} else {
			hdr[k] = append(vv, v)
		}
	}
	if chunked == lengthSet {
		return nil, 0, false // both, or neither (a body until the connection closes)
	}
	pr.resp = http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, ContentLength: length, Request: req,
	}
	if chunked {
		pr.te[0] = "chunked"
		pr.resp.TransferEncoding = pr.te[:]
	}
	return pr, end, true
}

// plainStatusLine parses "HTTP/1.1 200 OK": the status ("200 OK") and
// its code, for a code of 200 or more that allows a body.
func plainStatusLine(line string) (string, int, bool) {
	const proto = "HTTP/1.1 "
	if len(line) < len(proto)+3 || line[:len(proto)] != proto {
		return "", 0, false
	}
	status := line[len(proto):]
	code := 0
	for i := range 3 {
		c := status[i]
		if c < '0' || c > '9' {
			return "", 0, false
		}
		code = code*10 + int(c-'0')
	}
	if len(status) > 3 && status[3] != ' ' || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return "", 0, false
	}
	return status, code, true
}

// plainField parses a header line "Name: value" whose name is canonical
// (letters, digits and hyphens) and whose value is visible ASCII, spaces
// and tabs, and returns the name and the value without its surrounding
// blanks, as textproto does.
func plainField(line string) (string, string, bool) {
	k, v, ok := strings.Cut(line, ":")
	if !ok || k == "" {
		return "", "", false
	}
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '-':
			upper = true
			continue
		case '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			if !upper {
				return "", "", false
			}
		case 'a' <= c && c <= 'z':
			if upper {
				return "", "", false
			}
		default:
			return "", "", false
		}
		upper = false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\t' && (c < ' ' || c > '~') {
			return "", "", false
		}
	}
	return k, strings.Trim(v, " \t"), true
}

// plainBody is the body of a plain response, read as net/http's own
// response body reads it: a Content-Length body ends with its last byte
// (io.ErrUnexpectedEOF when the stream ends before); a chunked one with
// its last chunk and trailer, whose fields go to the response's Trailer.
type plainBody struct {
	mu     sync.Mutex
	length io.LimitedReader // a Content-Length body's rest (R nil when chunked)
	// chunked reads a chunked body; br and resp, for its trailer, are
	// cleared once it was read.
	chunked io.Reader
	br      *bufio.Reader
	resp    *http.Response

	sawEOF, closed bool
}

// init makes b resp's body, read from br, and returns it (http.NoBody
// for an empty one, as ReadResponse does).
func (b *plainBody) init(br *bufio.Reader, resp *http.Response) io.ReadCloser {
	if resp.ContentLength == 0 {
		return http.NoBody
	}
	if resp.ContentLength > 0 {
		b.length = io.LimitedReader{R: br, N: resp.ContentLength}
	} else {
		b.chunked, b.br, b.resp = httputil.NewChunkedReader(br), br, resp
	}
	return b
}

func (b *plainBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *plainBody) readLocked(p []byte) (n int, err error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
	} else {
		n, err = b.length.Read(p)
	}
	if errors.Is(err, io.EOF) {
		b.sawEOF = true
		if b.resp != nil {
			if e := b.readTrailer(); e != nil {
				err = e
				b.sawEOF = false
				b.closed = true
			}
			b.br, b.resp = nil, nil
		} else if b.chunked == nil && b.length.N > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil && n > 0 && b.chunked == nil && b.length.N == 0 {
		err = io.EOF
		b.sawEOF = true
	}
	return n, err
}

var (
	errTrailerEOF  = errors.New("http: unexpected EOF reading trailer")
	errLongTrailer = errors.New("http: suspiciously long trailer after chunked body")
)

// readTrailer reads what follows a chunked body's last chunk: an empty
// line, or trailer fields, which are set in the response's Trailer.
func (b *plainBody) readTrailer() error {
	buf, err := b.br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		_, _ = b.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !upcomingDoubleCRLF(b.br) {
		return errLongTrailer
	}
	hdr, err := textproto.NewReader(b.br).ReadMIMEHeader()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errTrailerEOF
		}
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header(hdr)
	} else {
		maps.Copy(b.resp.Trailer, http.Header(hdr))
	}
	return nil
}

// upcomingDoubleCRLF reports whether the reader's buffer holds the end
// of a header block (net/http bounds a trailer this way).
func upcomingDoubleCRLF(r *bufio.Reader) bool {
	for n := 4; ; n++ {
		buf, err := r.Peek(n)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// Close reads the rest of the body, as net/http's does (h1 closes the
// connection first when the body was not read to its end, so that this
// returns at once).
func (b *plainBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	var err error
	if !b.sawEOF {
		_, err = io.Copy(io.Discard, lockedBody{b})
	}
	b.closed = true
	return err
}

// lockedBody reads a plainBody whose lock is held.
type lockedBody struct{ b *plainBody }

func (l lockedBody) Read(p []byte) (int, error) {
	if l.b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return l.b.readLocked(p)
}
