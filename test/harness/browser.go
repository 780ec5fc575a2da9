package harness

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumEnv names the browser binary when it is not "chromium" on PATH.
const ChromiumEnv = "PORTCULLIS_CHROMIUM"

// Chromium returns the path of the headless browser the browser tests
// drive. It fails the test, never skips it, when there is none: CI
// installs Debian's chromium (.ci/run), and a browser test that silently
// did not run would hide a broken web view.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("this test drives a real browser and found none: install Debian's chromium (apt-get install -y chromium; .ci/run does), or set %s to a Chromium binary", ChromiumEnv)
	return ""
}

// BrowserOptions configure Browser.
type BrowserOptions struct {
	// TrustCAFile is a PEM CA certificate whose chains the browser accepts
	// (the cluster CA): its key is the only one whose certificate errors
	// are ignored.
	TrustCAFile string
	// Timeout bounds everything the browser does for the test.
	Timeout time.Duration
}

// Browser starts a headless Chromium with a fresh profile, for t alone,
// and returns a chromedp context of one tab. The browser ends when the
// test does. The flags keep it off the network but for the pages it is
// sent to (this machine refuses any other connection).
func Browser(t testing.TB, opts BrowserOptions) context.Context {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	}
	if opts.TrustCAFile != "" {
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, opts.TrustCAFile)))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	tctx, cancelTimeout := context.WithTimeout(actx, opts.Timeout)
	ctx, cancelTab := chromedp.NewContext(tctx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelTimeout()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", Chromium(t), err)
	}
	return ctx
}

// spkiHash is the base64 SHA-256 of the public key of the PEM certificate
// in file, as Chromium's --ignore-certificate-errors-spki-list takes it.
func spkiHash(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read CA certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
