package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// allocsBefore is BenchmarkToolsCall's data-plane allocations per call
// (dataplane − direct) before issue 14's optimisation, for the goal "at
// least halved": 316 allocations and 29.8 KB per call, measured on the
// development machine on 2026-12-06.
const (
	allocsBefore      = 316
	allocBytesBefore  = 29_800
	allocsBeforeLabel = "2026-12-06, before issue 14's optimisation"
)

// benchResult is one benchmark's figures (medians over -count runs).
type benchResult struct {
	name                   string // without the -GOMAXPROCS suffix
	nsPerOp, bytes, allocs float64
	// cpuUs is the process's CPU time per call in µs (cpu-µs/op; 0 when
	// the benchmark does not report it).
	cpuUs float64
}

// allocReport is what the allocation benchmark found.
type allocReport struct {
	cmd     string
	results map[string]benchResult // by sub-benchmark: "direct", "dataplane"
	err     error
}

// runAllocBench runs BenchmarkToolsCall of pkg three times with benchtime
// (in the module root) and returns the medians of its sub-benchmarks.
func runAllocBench(ctx context.Context, root, pkg, benchtime string) allocReport {
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkToolsCall$", "-benchmem", "-benchtime", benchtime, "-count", "3", pkg}
	rep := allocReport{cmd: "go " + strings.Join(args, " ")}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		rep.err = fmt.Errorf("%s: %w\n%s", rep.cmd, err, out)
		return rep
	}
	rep.results = parseBench(out)
	if len(rep.results) == 0 {
		rep.err = fmt.Errorf("%s printed no benchmark result:\n%s", rep.cmd, out)
	}
	return rep
}

// parseBench reads go test -bench -benchmem output: for each
// BenchmarkToolsCall/<sub>, the medians of ns/op, B/op and allocs/op.
func parseBench(out []byte) map[string]benchResult {
	type runs struct{ ns, b, allocs, cpu []float64 }
	byName := map[string]*runs{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkToolsCall/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkToolsCall/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		var ns, b, allocs, cpu float64
		var seen int
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				ns, seen = v, seen|1
			case "B/op":
				b, seen = v, seen|2
			case "allocs/op":
				allocs, seen = v, seen|4
			case "cpu-µs/op":
				cpu = v
			}
		}
		if seen != 7 {
			continue
		}
		r := byName[name]
		if r == nil {
			r = &runs{}
			byName[name] = r
			order = append(order, name)
		}
		r.ns, r.b, r.allocs, r.cpu = append(r.ns, ns), append(r.b, b), append(r.allocs, allocs), append(r.cpu, cpu)
	}
	out2 := map[string]benchResult{}
	for _, name := range order {
		r := byName[name]
		out2[name] = benchResult{name: name, nsPerOp: spreadOf(r.ns).med, bytes: spreadOf(r.b).med, allocs: spreadOf(r.allocs).med, cpuUs: spreadOf(r.cpu).med}
	}
	return out2
}
