package harness

import (
	"errors"
	"os"
	"os/exec"
	"strings"
)

// FindNginx returns the nginx binary the benchmarks' baseline runs: bin
// when set, else nginx on PATH, else /usr/sbin/nginx (Debian's).
func FindNginx(bin string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not on PATH nor in /usr/sbin (run scripts/ensure-nginx, or pass -nginx)")
}

// NginxVersion is "nginx/1.22.1" or the like.
func NginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "nginx (unknown version)"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
}
