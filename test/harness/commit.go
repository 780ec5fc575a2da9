package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CommitCacheDir is where BuildCommit keeps the builds of other commits,
// under the repository root; .bin/ is ignored by git and removed by make
// clean.
const CommitCacheDir = ".bin/commits"

// BuildCommit returns a directory holding programs (see Main) built from
// commit, which may be any revision git understands: the rolling-upgrade
// test starts a cluster on them and upgrades it to the current build. The
// first call for a commit checks it out with "git worktree add" into a
// temporary directory, builds it there and removes the worktree; the
// binaries are kept in CommitCacheDir/<full hash>/, so later runs reuse
// them at once. (The build shares the Go build cache of every other build
// for the standard library and the dependencies; only the commit's own
// packages compile, since their directory is new. -trimpath would make
// even those reusable, but at the price of compiling everything else once
// more, which costs far more on a machine that builds once.) A commit missing from the clone fails the
// test with what to do (a shallow clone lacks history).
func BuildCommit(t testing.TB, commit string, programs ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := git(root, "rev-parse", "--verify", "--quiet", commit+"^{commit}")
	if err != nil {
		t.Fatalf("harness: commit %s is not in this clone (%v); a shallow clone lacks history: run git fetch --unshallow (CI: clone with full history)", commit, err)
	}
	dir := filepath.Join(root, CommitCacheDir, hash)
	var missing []string
	for _, p := range programs {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		t.Logf("harness: %s of commit %.12s from the cache %s", strings.Join(programs, ", "), hash, dir)
		return dir
	}
	start := time.Now()
	if err := buildCommit(root, hash, dir, missing); err != nil {
		t.Fatalf("harness: build %s at commit %.12s: %v", strings.Join(missing, ", "), hash, err)
	}
	t.Logf("harness: built %s at commit %.12s into %s in %s", strings.Join(missing, ", "), hash, dir, time.Since(start).Round(time.Millisecond))
	return dir
}

// buildCommit checks hash out into a temporary worktree, builds programs
// there into a temporary directory beside dir and moves each binary into
// dir (a rename, so a build cut short never leaves a partial binary in
// the cache, and two runs building at once both end with whole ones).
func buildCommit(root, hash, dir string, programs []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	wt, err := os.MkdirTemp("", "portcullis-worktree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(wt)
	if _, err := git(root, "worktree", "add", "--detach", "--force", wt, hash); err != nil {
		return err
	}
	defer func() {
		if _, err := git(root, "worktree", "remove", "--force", wt); err != nil {
			_, _ = git(root, "worktree", "prune")
		}
	}()
	out, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	args := []string{"build", "-buildvcs=false", "-o", out + string(filepath.Separator)}
	for _, p := range programs {
		args = append(args, programPackage(p))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = wt
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	for _, p := range programs {
		if err := os.Rename(filepath.Join(out, p), filepath.Join(dir, p)); err != nil {
			return err
		}
	}
	return nil
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
