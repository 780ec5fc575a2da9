package alertsend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	// HeaderSignature carries the signature: "t=<unix seconds>,v1=<hex>",
	// where the hex is HMAC-SHA256(key, "<t>." || body) and key is the
	// value of the rule's signing secret.
	HeaderSignature = "Portcullis-Signature"
	// HeaderAlertID names the alert; every attempt to deliver one alert
	// carries the same id (and the same body), so a receiver deduplicates
	// on it.
	HeaderAlertID = "Portcullis-Alert-Id"
)

// DefaultTolerance is how old a signature's timestamp Verify accepts.
const DefaultTolerance = 5 * time.Minute

// Sign returns the signature header's value for body sent at t.
func Sign(key []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("the signature does not match")
	ErrStale        = errors.New("the signature's timestamp is outside the tolerance (a replay?)")
)

// Verify checks a signature header against body, as a receiver does: the
// MAC in constant time, and the timestamp within tolerance of now, so a
// captured delivery cannot be replayed later (receivers also remember the
// alert ids they accepted within the tolerance).
func Verify(key []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header", ErrBadSignature)
	}
	want := mac(key, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
