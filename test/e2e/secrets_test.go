package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditotlp/otlptest"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestSecretsNeverLeak is issue 6's secret scan: a data plane configured
// with --audit-redact and an OTLP export handles calls whose arguments
// carry a configured field's value and secret-looking strings (a JWT, an
// AWS access key id, an agent's API key); then no audit record at the data
// plane or the control plane, no line any gateway process logged and no
// OTLP export holds any of them, nor the upstream's credential, nor an
// agent's API key. The records do show the redaction markers, so the scan
// is not vacuous.
func TestSecretsNeverLeak(t *testing.T) {
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	g := startGateway(t, 1)
	dp := g.startDataplane(t, "dp-secrets", "--audit-redact", "password,card.number", "--audit-otlp-endpoint", rcv.URL())
	dp.AwaitServing(t, harness.StartTimeout)
	awaitVersion(t, dp, g.policyVersion, 20*time.Second)

	password := "hunter2-" + randomHex(t, 6)
	card := "4111" + randomHex(t, 6)
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZS0" + randomHex(t, 8) + "In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	awsKey := "AKIA" + strings.ToUpper(randomHex(t, 8))
	secrets := map[string]string{
		"configured password": password, "configured card number": card, "JWT": jwt, "AWS access key id": awsKey,
		"ops agent's API key": g.opsKey, "dev agent's API key": g.devKey, "upstream credential": g.upstreamSecret,
	}

	// Allowed calls with secrets in a schema field, and calls whose extra
	// fields the schema refuses (recorded all the same).
	for _, city := range []string{jwt, awsKey, g.devKey, "Bearer " + jwt, "Oslo"} {
		mustCall(t, dp, g.opsKey, actionWeather, weatherArgs(city))
	}
	for _, args := range []map[string]any{
		{"city": "Oslo", "password": password},
		{"city": "Oslo", "card": map[string]any{"number": card, "exp": "12/30"}},
		{"city": "Oslo", "notes": "token " + jwt + " and key " + awsKey},
	} {
		c, err := dp.CallTool(t.Context(), g.opsKey, actionWeather, args)
		if err != nil || c.Reason != "invalid_arguments" {
			t.Fatalf("call with extra arguments: %v, reason %q (want invalid_arguments)", err, c.Reason)
		}
	}
	// A call refused by policy, with a secret in its arguments.
	if c, err := dp.CallTool(t.Context(), g.devKey, actionWeather, weatherArgs(awsKey)); err != nil || c.Reason != "denied" {
		t.Fatalf("dev agent's call: %v, reason %q", err, c.Reason)
	}

	local, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(local) < 9 {
		t.Fatalf("%d local records, want at least 9", len(local))
	}
	harness.Await(t, 30*time.Second, "every record exported over OTLP", func() error {
		if n := len(rcv.Records()); n < len(local) {
			return fmt.Errorf("%d of %d records exported", n, len(local))
		}
		return nil
	})
	harness.Await(t, 30*time.Second, "every record uploaded", func() error {
		if n := len(queryAll(t, g.env(), "--dataplane", "dp-secrets")); n < len(local) {
			return fmt.Errorf("%d of %d records uploaded", n, len(local))
		}
		return nil
	})

	// The redaction happened where the secrets were.
	var args strings.Builder
	for _, r := range local {
		args.WriteString(r.ArgumentsJSON)
		args.WriteByte('\n')
	}
	for _, marker := range []string{`"password":"[REDACTED]"`, `"number":"[REDACTED]"`, `[REDACTED:jwt]`, `[REDACTED:aws_access_key]`, `[REDACTED:portcullis_api_key]`, `"city":"Oslo"`} {
		if !strings.Contains(args.String(), marker) {
			t.Errorf("no local record's arguments hold %s:\n%s", marker, args.String())
		}
	}

	// Everything that could hold a secret.
	places := map[string][]byte{}
	for _, r := range local {
		places[fmt.Sprintf("local record %d", r.Sequence)] = fmt.Appendf(nil, "%+v", r)
	}
	cp := harness.MustGwctl(t, g.env(), "audit", "query", "--all", "--limit", "1000", "-o", "json", "--timeout", "30s")
	places["gwctl audit query -o json (every chain)"] = []byte(cp.Stdout)
	csv := harness.MustGwctl(t, g.env(), "audit", "query", "-o", "csv", "--timeout", "30s")
	places["gwctl audit query -o csv"] = []byte(csv.Stdout)
	places["data plane log"] = []byte(dp.Log.String())
	for _, n := range g.c.Nodes {
		places["control plane "+n.NodeID+" log"] = []byte(n.Log.String())
	}
	for i, b := range rcv.Bodies() {
		places[fmt.Sprintf("OTLP export request %d", i+1)] = b
	}
	for _, lr := range rcv.Records() {
		places["OTLP log record "+otlptest.Attributes(lr)["portcullis.audit.sequence"]] = []byte(lr.String())
	}
	for where, b := range places {
		for what, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
	t.Logf("scanned %d places (%d local records, %d OTLP requests, %d process logs) for %d secrets", len(places), len(local), len(rcv.Bodies()), 1+len(g.c.Nodes), len(secrets))
}
