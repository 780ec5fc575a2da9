package inflate_test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/inflate"
)

// gz compresses data at the best ratio.
func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bomb is n zero bytes compressed: about n/1000 bytes that inflate to n.
// It is a series of gzip members (valid gzip, which readers concatenate),
// each 1 MiB of zeros compressed once, so building it costs next to
// nothing.
func bomb(t testing.TB, n int) []byte {
	t.Helper()
	const mib = 1 << 20
	full := gz(t, make([]byte, mib))
	out := bytes.Repeat(full, n/mib)
	if n%mib != 0 {
		out = append(out, gz(t, make([]byte, n%mib))...)
	}
	return out
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyReader hides every method but Read (so Reset buffers it itself).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestReader(t *testing.T) {
	text := bytes.Repeat([]byte(`{"name":"agent","labels":{"team":"payments"}},`), 2000) // ~94 KB, very regular
	noise := random(t, 256<<10)
	tests := []struct {
		name    string
		limits  inflate.Limits
		data    []byte // compressed input
		want    []byte // the output, when accepted
		wantErr error
	}{
		{name: "within every bound", limits: inflate.Limits{MaxBytes: 1 << 20, MaxRatio: 100, Slack: 1 << 20}, data: gz(t, text), want: text},
		{name: "exactly MaxBytes", limits: inflate.Limits{MaxBytes: int64(len(noise)), MaxRatio: 100, Slack: 64 << 10}, data: gz(t, noise), want: noise},
		{name: "one byte over MaxBytes", limits: inflate.Limits{MaxBytes: int64(len(noise)) - 1}, data: gz(t, noise), wantErr: inflate.ErrTooLarge},
		{name: "regular text under the slack", limits: inflate.Limits{MaxRatio: 2, Slack: 1 << 20}, data: gz(t, text), want: text},
		{name: "regular text past the slack at a low ratio bound", limits: inflate.Limits{MaxRatio: 2, Slack: 4 << 10}, data: gz(t, text), wantErr: inflate.ErrRatio},
		{name: "bomb under a generous size limit", limits: inflate.Limits{MaxBytes: 256 << 20, MaxRatio: inflate.DefaultMaxRatio, Slack: inflate.DefaultSlack}, data: bomb(t, 64<<20), wantErr: inflate.ErrRatio},
		{name: "bomb without a ratio bound", limits: inflate.Limits{MaxBytes: 1 << 20}, data: bomb(t, 64<<20), wantErr: inflate.ErrTooLarge},
		{name: "not gzip", limits: inflate.Limits{MaxBytes: 1 << 20}, data: []byte("plain text"), wantErr: gzip.ErrHeader},
	}
	for _, tt := range tests {
		for _, src := range []struct {
			name string
			wrap func([]byte) io.Reader
		}{
			{"byte reader", func(b []byte) io.Reader { return bytes.NewBuffer(b) }},
			{"plain reader", func(b []byte) io.Reader { return onlyReader{bytes.NewReader(b)} }},
		} {
			t.Run(tt.name+"/"+src.name, func(t *testing.T) {
				r := inflate.NewReader(tt.limits)
				err := r.Reset(src.wrap(tt.data))
				var got []byte
				if err == nil {
					got, err = io.ReadAll(r)
				}
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("error %v, want %v", err, tt.wantErr)
					}
					if tt.limits.MaxBytes > 0 && int64(len(got)) > tt.limits.MaxBytes {
						t.Fatalf("returned %d bytes, beyond MaxBytes %d", len(got), tt.limits.MaxBytes)
					}
					return
				}
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Fatalf("got %d bytes, want %d bytes", len(got), len(tt.want))
				}
			})
		}
	}
}

// TestReaderReuse: a pooled Reader starts each message with fresh counts,
// and a refusal does not stick to the next message.
func TestReaderReuse(t *testing.T) {
	r := inflate.NewReader(inflate.Limits{MaxBytes: 4 << 20, MaxRatio: inflate.DefaultMaxRatio, Slack: 64 << 10})
	small := []byte(`{"name":"a"}`)
	for i, step := range []struct {
		data    []byte
		wantErr error
	}{
		{gz(t, small), nil},
		{bomb(t, 8<<20), inflate.ErrRatio},
		{gz(t, small), nil},
	} {
		if err := r.Reset(bytes.NewBuffer(step.data)); err != nil {
			t.Fatalf("message %d: reset: %v", i, err)
		}
		got, err := io.ReadAll(r)
		if !errors.Is(err, step.wantErr) {
			t.Fatalf("message %d: error %v, want %v", i, err, step.wantErr)
		}
		if step.wantErr == nil && !bytes.Equal(got, small) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBombWork: refusing a bomb inflates about MaxRatio times the input
// read, not the bomb's full size; measured as bytes allocated while
// reading into a growing buffer, as a Connect handler does.
func TestBombWork(t *testing.T) {
	const size = 256 << 20
	data := bomb(t, size)
	r := inflate.NewReader(inflate.Limits{MaxBytes: size, MaxRatio: inflate.DefaultMaxRatio, Slack: inflate.DefaultSlack})
	var out bytes.Buffer
	allocs := allocated(func() {
		if err := r.Reset(bytes.NewBuffer(data)); err != nil {
			t.Fatal(err)
		}
		if _, err := out.ReadFrom(r); !errors.Is(err, inflate.ErrRatio) {
			t.Fatalf("error %v, want %v", err, inflate.ErrRatio)
		}
	})
	bound := 4 * (inflate.DefaultMaxRatio*int64(len(data)) + inflate.DefaultSlack)
	t.Logf("a %d-byte bomb of %d MiB: refused after %d bytes of output, %d bytes allocated (bound %d)", len(data), size>>20, out.Len(), allocs, bound)
	if allocs > uint64(bound) {
		t.Fatalf("allocated %d bytes refusing the bomb, want at most %d", allocs, bound)
	}
}

// allocated is the number of bytes the process allocated while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func FuzzReader(f *testing.F) {
	f.Add(gz(f, []byte(`{"name":"a"}`)), int64(1<<10))
	f.Add(bomb(f, 1<<20), int64(64<<10))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, int64(10))
	f.Fuzz(func(t *testing.T, data []byte, n int64) {
		limit := int64(uint64(n)%(1<<20)) + 1 //nolint:gosec // any value maps into the range
		r := inflate.NewReader(inflate.Limits{MaxBytes: limit, MaxRatio: inflate.DefaultMaxRatio, Slack: 4 << 10})
		if err := r.Reset(bytes.NewReader(data)); err != nil {
			return
		}
		got, _ := io.ReadAll(r)
		if int64(len(got)) > limit {
			t.Fatalf("returned %d bytes, beyond MaxBytes %d", len(got), limit)
		}
		if slack := int64(4 << 10); int64(len(got)) > slack && int64(len(got)) > inflate.DefaultMaxRatio*int64(len(data))+slack {
			t.Fatalf("returned %d bytes from %d compressed", len(got), len(data))
		}
	})
}
