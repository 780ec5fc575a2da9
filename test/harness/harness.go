// Package harness runs the real Portcullis binaries for end-to-end tests, in
// the style of Tailscale's tstest/integration: the programs are built once
// per test binary (Main, from TestMain), each test starts daemons as a user
// would (StartControlPlane, StartCluster), waits on conditions with
// deadlines (AwaitReady, Await), drives them with gwctl (Gwctl) and shuts
// them down (MustCleanShutdown). Every process a test starts is killed when
// the test ends, and Main fails the run if one outlived its test.
//
// Everything listens on 127.0.0.1 only.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// DefaultPrograms are the binaries Main builds when given none.
var DefaultPrograms = []string{"controlplane", "gwctl"}

var (
	binMu  sync.Mutex
	binDir string          // where Main built the programs
	built  map[string]bool // program name → built
)

// Main builds programs (DefaultPrograms when empty) from cmd/<name> (the
// demo upstream from test/demoupstream) into a temporary directory, runs
// the tests, removes the directory, and checks that no process started
// through this package and no goroutine outlived the tests. It returns the
// exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
//
// Set PORTCULLIS_E2E_RACE=1 to build the programs with the race detector.
func Main(m *testing.M, programs ...string) int {
	if len(programs) == 0 {
		programs = DefaultPrograms
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if err := build(dir, programs); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "harness: built %s in %s\n", strings.Join(programs, ", "), time.Since(start).Round(time.Millisecond))
	binMu.Lock()
	binDir = dir
	built = map[string]bool{}
	for _, p := range programs {
		built[p] = true
	}
	binMu.Unlock()

	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	if n := killLeftovers(); n > 0 {
		fmt.Fprintf(os.Stderr, "harness: %d process(es) outlived their test and were killed\n", n)
		code = 1
	}
	if err := goleak.Find(ignore); err != nil {
		fmt.Fprintln(os.Stderr, "harness: goroutines leaked:", err)
		code = 1
	}
	return code
}

// programPackages maps the programs that do not live in cmd/<name> to
// their package; every other program is built from ./cmd/<name>.
var programPackages = map[string]string{
	"demoupstream": "./test/demoupstream", // the demo MCP upstream
	"etcdmember":   "./test/etcdmember",   // etcd's own server, at the pinned version
	"a2aagent":     "./test/a2aagent",     // the test A2A agent
	"fakellm":      "./test/fakellm",      // the fake LLM provider
}

// programPackage is the package path go build compiles program from.
func programPackage(program string) string {
	if pkg, ok := programPackages[program]; ok {
		return pkg
	}
	return "./cmd/" + program
}

// build compiles each program (see programPackage) into dir with one go
// build; each binary is named after the last element of its package path,
// which is the program's name.
func build(dir string, programs []string) error {
	return buildTagged(dir, "", programs)
}

// BuildTagged compiles programs (see Main) from the current source with
// the build tags tags (comma-separated, as for go build -tags) into dir,
// without making them the programs Bin returns: start them with the BinDir
// options or RestartFrom.
func BuildTagged(dir, tags string, programs ...string) error {
	return buildTagged(dir, tags, programs)
}

func buildTagged(dir, tags string, programs []string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if os.Getenv("PORTCULLIS_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	for _, p := range programs {
		args = append(args, programPackage(p))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// RepoRoot is the module root, found from this file's location
// (<root>/test/harness/harness.go).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the harness source file")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root %s: %w", root, err)
	}
	return root, nil
}

// Bin returns the path of a program Main built. It fails the test when the
// program was not built (Main not called from TestMain, or not listed).
func Bin(t testing.TB, program string) string {
	t.Helper()
	p, err := binPath(program)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BinDir is the directory Main (or BuildPrograms) built the programs into.
func BinDir(t testing.TB) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		t.Fatal("harness: no programs were built; call harness.Main from TestMain")
	}
	return binDir
}

// programIn is the path of program in dir, which must exist; an empty dir
// means the one Main built it in.
func programIn(t testing.TB, dir, program string) string {
	t.Helper()
	if dir == "" {
		return Bin(t, program)
	}
	p := filepath.Join(dir, program)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: no %s in %s: %v", program, dir, err)
	}
	return p
}

func binPath(program string) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if !built[program] {
		return "", fmt.Errorf("harness: %s was not built; call harness.Main(m, ...%q) from TestMain", program, program)
	}
	return filepath.Join(binDir, program), nil
}
