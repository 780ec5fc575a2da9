package authz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

// FuzzAuthorizeArguments feeds arbitrary argument bytes to the fixture's
// pay tool. Whatever the bytes, the forbid on amounts of 500 or more must
// hold: an allowed call's amount, read by an ordinary JSON parser that
// keeps the last of duplicate keys, is an integer below 500.
func FuzzAuthorizeArguments(f *testing.F) {
	for _, seed := range []string{
		`{"amount": 100, "to": "bob"}`,
		`{"amount": 900, "to": "bob"}`,
		`{"amount": 4.99e2, "to": "bob"}`,
		`{"amount": 100, "to": "bob", "amount": 900}`,
		`{"amount": "900", "to": "bob"}`,
		`{"amount": 1e999999999, "to": "bob"}`,
		`{"amount": -0.0, "to": "bob", "memo": null}`,
		`{"amount": 499.0000000000000000001, "to": "x"}`,
	} {
		f.Add([]byte(seed))
	}
	e := authztest.Compile(f, authztest.Snapshot())
	f.Fuzz(func(t *testing.T, args []byte) {
		d := e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, string(args)))
		if !d.Allowed {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(args))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("allowed arguments that do not decode: %q", args)
		}
		n, ok := v["amount"].(json.Number)
		if !ok {
			t.Fatalf("allowed arguments without a numeric amount: %q", args)
		}
		amount, ok := new(big.Rat).SetString(string(n))
		if !ok || !amount.IsInt() || amount.Cmp(big.NewRat(500, 1)) >= 0 {
			t.Fatalf("allowed a payment of %s: %q", n, args)
		}
	})
}
