package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"connectrpc.com/connect"
)

// GiveUpError is returned when the caller's deadline passed (or it was
// cancelled) before any server answered the call.
type GiveUpError struct {
	Elapsed time.Duration
	URL     string // server of the last attempt
	Last    error  // error of the last attempt
	Cause   error  // the context's error
}

func (e *GiveUpError) Error() string {
	if errors.Is(e.Cause, context.Canceled) {
		return "cancelled"
	}
	return fmt.Sprintf("no control-plane server answered within %s (last error: %s: %s); check --server or raise --timeout",
		e.Elapsed.Round(100*time.Millisecond), e.URL, reason(e.Last))
}

func (e *GiveUpError) Unwrap() error { return e.Cause }

func giveUp(ctx context.Context, start time.Time, u string, last error) error {
	return &GiveUpError{Elapsed: time.Since(start), URL: u, Last: last, Cause: ctx.Err()}
}

// TLSError is a failure to verify a server's certificate or to speak TLS
// with it. Every server of a cluster presents the same CA, so it is not
// retried on the others.
type TLSError struct {
	URL  string
	Err  error
	Hint string
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.URL, e.Err, e.Hint)
}

func (e *TLSError) Unwrap() error { return e.Err }

// permanent recognises TLS failures, which no other server will cure.
func permanent(u, caFile string, err error) error {
	var (
		hostErr   x509.HostnameError
		verifyErr *tls.CertificateVerificationError
		authErr   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		recordErr tls.RecordHeaderError
	)
	if errors.As(err, &hostErr) {
		return &TLSError{URL: u, Err: hostErr,
			Hint: "use a --server address that the control plane's certificate names"}
	}
	var cause error
	switch {
	case errors.As(err, &verifyErr):
		cause = verifyErr.Err
	case errors.As(err, &authErr):
		cause = authErr
	case errors.As(err, &invalid):
		cause = invalid
	case errors.As(err, &recordErr):
		return &TLSError{URL: u, Err: errors.New("the server does not speak TLS"),
			Hint: "a control plane in --dev mode serves plain HTTP: use an http:// URL"}
	default:
		return nil
	}
	hint := "the server's certificate could not be verified; pass --ca-file <control-plane data dir>/tls/ca.crt"
	if caFile != "" {
		hint = fmt.Sprintf("the server's certificate is not signed by the CA in %s; pass --ca-file <control-plane data dir>/tls/ca.crt of this cluster", caFile)
	}
	return &TLSError{URL: u, Err: cause, Hint: hint}
}

// retryable reports whether err means the attempt did not reach a working
// node, so that another server may succeed.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return true
	case connect.CodeUnknown:
		var ue *url.Error
		var ne net.Error
		return errors.As(err, &ue) || errors.As(err, &ne)
	}
	return false
}

// reason is the short text of a failed attempt for warnings.
func reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
