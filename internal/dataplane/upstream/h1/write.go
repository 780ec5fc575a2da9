package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// writeRequest writes req to bw byte for byte as (*http.Request).Write
// does, and closes its body. A plain request (see plainRequest), the
// kind the data plane sends, is written here without Write's per-request
// allocations (its formatted lines, its transfer writer, its body's
// LimitReader: lr is reused instead); any other is written by req.Write.
func writeRequest(bw *bufio.Writer, lr *io.LimitedReader, req *http.Request) error {
	host, ruri, ok := plainRequest(req)
	if !ok {
		return req.Write(bw)
	}
	defer closeBody(req)
	// Write's order: request line, Host, User-Agent, Content-Length,
	// then the other headers sorted by name.
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(ruri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\nUser-Agent: " + defaultUserAgent + "\r\n")
	if req.ContentLength > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		_, _ = bw.WriteString("\r\n")
	}
	var keys [maxPlainHeaders]string
	sorted := keys[:0]
	for k := range req.Header {
		if !excludedHeader(k) {
			sorted = append(sorted, k)
		}
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		for _, v := range req.Header[k] {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	if req.ContentLength == 0 {
		return nil
	}
	*lr = io.LimitedReader{R: req.Body, N: req.ContentLength}
	n, err := io.Copy(bw, lr)
	*lr = io.LimitedReader{}
	if err != nil {
		return err
	}
	extra, err := io.Copy(io.Discard, req.Body)
	if err != nil {
		return err
	}
	if n += extra; n != req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return nil
}

// defaultUserAgent is the User-Agent (*http.Request).Write sends when
// the request sets none.
const defaultUserAgent = "Go-http-client/1.1"

// maxPlainHeaders bounds the header fields of a plain request (more are
// written by req.Write).
const maxPlainHeaders = 32

// excludedHeader reports the header fields (*http.Request).Write takes
// from the request's fields rather than its Header.
func excludedHeader(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// nopCloser is the type of what io.NopCloser makes of the readers
// http.NewRequest keeps in memory (they all have WriteTo).
var nopCloser = reflect.TypeOf(io.NopCloser(&bytes.Reader{}))

// inMemory reports whether body is what http.NewRequest makes of an
// in-memory body: io.NopCloser of one of the readers (*http.Request).Write
// knows to be in memory (it then writes the head and the body in one
// go, and reading the body cannot fail).
func inMemory(body io.ReadCloser) bool {
	v := reflect.ValueOf(body)
	if v.Type() != nopCloser {
		return false
	}
	r := v.Field(0)
	if r.IsNil() {
		return false
	}
	switch r.Elem().Type() {
	case reflect.TypeFor[*bytes.Reader](), reflect.TypeFor[*strings.Reader](), reflect.TypeFor[*bytes.Buffer]():
		return true
	}
	return false
}

// plainRequest reports whether writeRequest writes req itself, with its
// Host and request URI: no client trace; a method of capital letters (not
// CONNECT); a host (req.Host, else the URL's) of letters, digits, dots,
// hyphens, colons and brackets (one Write sends as it is); a request URI
// without control bytes; no Close, transfer encoding or trailer; either
// no body, or an in-memory one of the length ContentLength gives; no
// User-Agent header; at most maxPlainHeaders header fields, each named
// with letters, digits and hyphens, with values Write would not change
// (no line breaks, no surrounding blanks). Every other request is one
// Write changes, refuses or writes differently.
func plainRequest(req *http.Request) (host, ruri string, ok bool) {
	if req.URL == nil {
		return "", "", false
	}
	host = req.Host
	if host == "" {
		host = req.URL.Host
	}
	if req.URL.Opaque != "" || !plainHost(host) ||
		req.Close || len(req.TransferEncoding) != 0 || req.Trailer != nil ||
		len(req.Header) > maxPlainHeaders || !plainMethod(req.Method) {
		return "", "", false
	}
	switch {
	case req.ContentLength == 0 && (req.Body == nil || req.Body == http.NoBody):
	case req.ContentLength > 0 && req.Body != nil && inMemory(req.Body):
	default:
		return "", "", false
	}
	if _, ok := req.Header["User-Agent"]; ok {
		return "", "", false
	}
	for k, vs := range req.Header {
		if !plainName(k) {
			return "", "", false
		}
		for _, v := range vs {
			if !plainValue(v) {
				return "", "", false
			}
		}
	}
	if httptrace.ContextClientTrace(req.Context()) != nil {
		return "", "", false
	}
	ruri = req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if ruri[i] < ' ' || ruri[i] == 0x7f {
			return "", "", false
		}
	}
	return host, ruri, true
}

func plainMethod(m string) bool {
	if m == "" || m == http.MethodConnect {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

func plainName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return true
}

func plainValue(v string) bool {
	if v != "" && (blank(v[0]) || blank(v[len(v)-1])) {
		return false
	}
	return strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0
}

func blank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
