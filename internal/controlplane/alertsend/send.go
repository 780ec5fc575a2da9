package alertsend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
	"github.com/portcullis-gw/portcullis/internal/excerpt"
)

// AttemptTimeout bounds one delivery attempt.
const AttemptTimeout = 10 * time.Second

// maxResponse bounds the response body read (and discarded) per attempt.
const maxResponse = 4 << 10

// Sender posts alert bodies to webhooks. It dials only what the egress
// policy allows (checked on the address actually dialed), follows no
// redirect and never keeps a response body. Safe for concurrent use.
type Sender struct {
	client *http.Client
}

// NewSender returns a Sender dialing under policy.
func NewSender(policy egress.Policy) *Sender {
	dialer := &net.Dialer{Timeout: 5 * time.Second, ControlContext: policy.DialControlContext}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		Proxy:                 nil, // an alert goes where the rule says, or nowhere
	}
	return &Sender{client: &http.Client{
		Transport: tr,
		Timeout:   AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Attempt is how one delivery attempt ended.
type Attempt struct {
	// Status is the receiver's HTTP status (0 when none answered).
	Status int
	// Err says why the attempt failed (nil: a 2xx answer). Its text is
	// safe to store and show: a status line, or a transport error without
	// the URL; never a response body.
	Err error
}

// Send posts body to rawURL with the given headers.
func (s *Sender) Send(ctx context.Context, rawURL string, body []byte, header http.Header) Attempt {
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Attempt{Err: errors.New("the webhook URL cannot be used")}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Portcullis-Alerts/1")
	resp, err := s.client.Do(req)
	if err != nil {
		return Attempt{Err: transportError(err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Attempt{Status: resp.StatusCode}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Attempt{Status: resp.StatusCode, Err: fmt.Errorf("the receiver answered %d and redirects are not followed: give the rule the final URL", resp.StatusCode)}
	default:
		return Attempt{Status: resp.StatusCode, Err: fmt.Errorf("the receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
}

// transportError words a failure to reach the receiver without the URL
// (which may hold a token) and with anything quoted made safe.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, egress.ErrRefused):
		return errors.New("the egress policy refuses the webhook's address")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %s", AttemptTimeout)
	}
	return fmt.Errorf("the receiver could not be reached: %s", excerpt.Text(err.Error(), 200))
}
