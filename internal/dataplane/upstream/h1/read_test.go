package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"testing/iotest"
)

// errString is err's text, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzReadResponseHead: readResponseHead reads every stream of bytes as
// http.ReadResponse does: the same Response (status, protocol, header,
// length, transfer encoding, close), the same body, read in any pattern,
// with the same errors, the same trailer, and the stream left at the same
// place; arriving at once or a byte at a time.
func FuzzReadResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: abc\r\nDate: Sun, 06 Dec 2026 16:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\nevent: message\ndata: {}\n\n\r\n0\r\n\r\nnext",
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
		"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: v\r\n\r\nrest",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A:  a \t\r\nX-A: b\r\nx-lower: c\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nX-A:  a \t\r\nX-A: b\r\nX-Empty:\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 007\r\n\r\n1234567",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nz",
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nz",
		"HTTP/1.1 200 OK\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
		"",
		"garbage",
	} {
		f.Add([]byte(s), []byte{1, 7, 64}, false, false)
	}
	f.Fuzz(func(t *testing.T, stream, reads []byte, oneByte, head bool) {
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.example/mcp", nil)
		if head {
			req.Method = http.MethodHead
		}
		reader := func() *bufio.Reader {
			var r io.Reader = bytes.NewReader(stream)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			return bufio.NewReaderSize(r, bufSize)
		}
		wbr, gbr := reader(), reader()
		want, werr := http.ReadResponse(wbr, req)
		got, gerr := readResponseHead(gbr, req)
		if errString(gerr) != errString(werr) {
			t.Fatalf("error %v, want %v", gerr, werr)
		}
		if werr != nil {
			return
		}
		if d := diffResponses(got, want); d != "" {
			t.Fatal(d)
		}
		if len(reads) == 0 {
			reads = []byte{16}
		}
		for i := 0; ; i++ {
			size := int(reads[i%len(reads)])
			gp, wp := make([]byte, size), make([]byte, size)
			gn, gerr := got.Body.Read(gp)
			wn, werr := want.Body.Read(wp)
			if gn != wn || !bytes.Equal(gp[:gn], wp[:wn]) || errString(gerr) != errString(werr) {
				t.Fatalf("read %d: %d %q %v, want %d %q %v", i, gn, gp[:gn], gerr, wn, wp[:wn], werr)
			}
			if werr != nil || i > 10000 {
				break
			}
		}
		if !reflect.DeepEqual(got.Trailer, want.Trailer) {
			t.Fatalf("trailer %v, want %v", got.Trailer, want.Trailer)
		}
		gc, wc := got.Body.Close(), want.Body.Close()
		if errString(gc) != errString(wc) {
			t.Fatalf("close: %v, want %v", gc, wc)
		}
		gn, gerr := got.Body.Read(make([]byte, 1))
		wn, werr := want.Body.Read(make([]byte, 1))
		if gn != wn || errString(gerr) != errString(werr) {
			t.Fatalf("read after close: %d %v, want %d %v", gn, gerr, wn, werr)
		}
		grest, _ := io.ReadAll(gbr)
		wrest, _ := io.ReadAll(wbr)
		if !bytes.Equal(grest, wrest) {
			t.Fatalf("left %q, want %q", grest, wrest)
		}
	})
}

// diffResponses says how got differs from want, except in their bodies.
func diffResponses(got, want *http.Response) string {
	type head struct {
		Status                 string
		StatusCode             int
		Proto                  string
		ProtoMajor, ProtoMinor int
		Header, Trailer        http.Header
		ContentLength          int64
		TransferEncoding       []string
		Close, Uncompressed    bool
		Request                *http.Request
		NoBody                 bool
	}
	of := func(r *http.Response) head {
		return head{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.Trailer,
			r.ContentLength, r.TransferEncoding, r.Close, r.Uncompressed, r.Request, r.Body == http.NoBody}
	}
	if g, w := of(got), of(want); !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("response\n%+v\nwant\n%+v", g, w)
	}
	return ""
}

// TestReadResponseHeadPlain: an upstream's usual answer is read here,
// in fewer allocations than http.ReadResponse makes.
func TestReadResponseHeadPlain(t *testing.T) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: abc\r\nDate: Sun, 06 Dec 2026 16:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n")
	req, _ := http.NewRequest(http.MethodPost, "http://upstream.example/mcp", nil)
	r := bytes.NewReader(answer)
	br := bufio.NewReaderSize(r, bufSize)
	count := func(read func(*bufio.Reader, *http.Request) (*http.Response, error)) float64 {
		return testing.AllocsPerRun(100, func() {
			r.Reset(answer)
			br.Reset(r)
			resp, err := read(br, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Mcp-Session-Id") != "abc" {
				t.Fatal("header lost")
			}
		})
	}
	if _, _, ok := plainHead(answer, req); !ok {
		t.Fatal("not plain")
	}
	got, std := count(readResponseHead), count(http.ReadResponse)
	t.Logf("%v allocations, http.ReadResponse %v", got, std)
	if got >= std {
		t.Errorf("%v allocations, no fewer than http.ReadResponse's %v", got, std)
	}
}
