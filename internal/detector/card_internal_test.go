package detector

import (
	"fmt"
	"testing"
)

// TestAnyIssuerCoversIssuerPrefix: the early test of a card window's first
// digits never rejects a number issuerPrefix would accept.
func TestAnyIssuerCoversIssuerPrefix(t *testing.T) {
	for p := 0; p < 1_000_000; p += 7 {
		d := []byte(fmt.Sprintf("%06d", p))
		if anyIssuer(d) {
			continue
		}
		for n := minCardDigits; n <= maxCardDigits; n++ {
			full := append([]byte(string(d)), make([]byte, n-len(d))...)
			for i := len(d); i < n; i++ {
				full[i] = '0'
			}
			if issuerPrefix(full) {
				t.Fatalf("anyIssuer(%s) = false, but issuerPrefix accepts %s", d, full)
			}
		}
	}
}
