package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// restoreBomb is a gzip-compressed RestoreBackupRequest whose data field
// holds size zero bytes: about size/1000 bytes on the wire. It is a series
// of gzip members (valid gzip: readers concatenate them), the zeros
// compressed 1 MiB at a time once.
func restoreBomb(t *testing.T, size int) []byte {
	t.Helper()
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	const mib = 1 << 20
	out := gz(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), uint64(size))) //nolint:gosec // size is positive
	out = append(out, bytes.Repeat(gz(make([]byte, mib)), size/mib)...)
	if size%mib != 0 {
		out = append(out, gz(make([]byte, size%mib))...)
	}
	return out
}

// procStatusKiB reads a "<field>: N kB" line of /proc/<pid>/status.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the control plane's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("%s: %q: %v", field, rest, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// TestUnauthenticatedGzipRestoreCostsNothing reproduces finding 2 of issue
// 11 against a real control plane: gzip-compressed RestoreBackup requests
// that would inflate to 250 MiB each, sent without a token, several at once
// over Connect and gRPC. Each is refused with a 401 (UNAUTHENTICATED)
// before its body is read, and the node's peak resident memory stays
// modest; an admin's bomb is refused too, after bounded work.
func TestUnauthenticatedGzipRestoreCostsNothing(t *testing.T) {
	c := harness.StartCluster(t, 1)
	cp := c.Nodes[0]
	pid := cp.Daemon().Pid()
	before := procStatusKiB(t, pid, "VmHWM")

	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	bomb := restoreBomb(t, 250<<20)
	const path = "/portcullis.admin.v1.BackupService/RestoreBackup"
	// send posts the bomb and returns the Connect or gRPC code name.
	send := func(grpc bool, token string) (string, error) {
		body, ctype := bomb, "application/proto"
		if grpc {
			env := make([]byte, 5, 5+len(bomb))
			env[0] = 1
			binary.BigEndian.PutUint32(env[1:], uint32(len(bomb))) //nolint:gosec // far below 4 GiB
			body, ctype = append(env, bomb...), "application/grpc"
		}
		r, err := http.NewRequest(http.MethodPost, cp.URL+path, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		r.Header.Set("Content-Type", ctype)
		if grpc {
			r.Header.Set("Grpc-Encoding", "gzip")
			r.Header.Set("Te", "trailers")
		} else {
			r.Header.Set("Content-Encoding", "gzip")
			r.Header.Set("Connect-Protocol-Version", "1")
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(r)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if grpc {
			status := resp.Trailer.Get("Grpc-Status")
			if status == "" {
				status = resp.Header.Get("Grpc-Status")
			}
			return map[string]string{"8": "resource_exhausted", "16": "unauthenticated"}[status] + " (grpc-status " + status + ")", nil
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
	}

	const rounds, concurrent = 4, 8
	start := time.Now()
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, concurrent)
		for i := range concurrent {
			wg.Go(func() {
				grpc := i%2 == 1
				got, err := send(grpc, "")
				switch {
				case err != nil:
					errs <- err
				case grpc && !strings.HasPrefix(got, "unauthenticated"):
					errs <- fmt.Errorf("gRPC: %s, want unauthenticated", got)
				case !grpc && !strings.HasPrefix(got, "401 ") || !grpc && !strings.Contains(got, `"code":"unauthenticated"`):
					errs <- fmt.Errorf("Connect: %s, want 401 unauthenticated", got)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
	}
	unauth := procStatusKiB(t, pid, "VmHWM")
	t.Logf("%d unauthenticated %d-byte bombs (%d at a time) refused in %s; control plane peak RSS %d KiB before, %d KiB after",
		rounds*concurrent, len(bomb), concurrent, time.Since(start).Round(time.Millisecond), before, unauth)

	// An admin may send one too: it is read, and refused for its ratio
	// after bounded work.
	for _, grpc := range []bool{false, true} {
		got, err := send(grpc, c.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "resource_exhausted") {
			t.Errorf("an admin's bomb (gRPC %v): %s, want resource_exhausted", grpc, got)
		}
	}
	after := procStatusKiB(t, pid, "VmHWM")
	t.Logf("after two admin bombs: peak RSS %d KiB, now %d KiB", after, procStatusKiB(t, pid, "VmRSS"))

	limit := 150 << 10 // KiB
	if os.Getenv("PORTCULLIS_E2E_RACE") == "1" {
		limit *= 4 // the race detector's shadow memory
	}
	if after > limit {
		t.Errorf("the control plane's peak RSS reached %d KiB, want at most %d KiB", after, limit)
	}
	if !cp.Running() {
		t.Fatal("the control plane exited")
	}
}
