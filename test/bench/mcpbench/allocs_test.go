package main

import "testing"

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
goarch: amd64
pkg: github.com/portcullis-gw/portcullis/test/bench/callbench
cpu: Intel(R) Xeon(R) Processor
BenchmarkToolsCall/direct-2         	    2000	     62911 ns/op	   10267 B/op	     132 allocs/op
BenchmarkToolsCall/direct-2         	    2000	     47410 ns/op	   10249 B/op	     131 allocs/op
BenchmarkToolsCall/direct-2         	    2000	     45999 ns/op	   10272 B/op	     133 allocs/op
BenchmarkToolsCall/dataplane-2      	    2000	    300832 ns/op	       201.7 cpu-µs/op	   40161 B/op	     448 allocs/op
BenchmarkToolsCall/dataplane-2      	    2000	    182718 ns/op	       177.9 cpu-µs/op	   40019 B/op	     448 allocs/op
BenchmarkToolsCall/broken-2         	    2000	    182718 ns/op
BenchmarkOther-2                    	    2000	    1 ns/op	   1 B/op	     1 allocs/op
PASS
`)
	got := parseBench(out)
	want := map[string]benchResult{
		"direct":    {name: "direct", nsPerOp: 47410, bytes: 10267, allocs: 132},
		"dataplane": {name: "dataplane", nsPerOp: (300832 + 182718) / 2.0, bytes: (40161 + 40019) / 2.0, allocs: 448, cpuUs: (201.7 + 177.9) / 2.0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %+v, want %+v", name, got[name], w)
		}
	}
}
