package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"google.golang.org/protobuf/proto"
)

// timings are the durations of repeated runs of one step.
type timings []time.Duration

func (d timings) min() time.Duration { return slices.Min(d) }
func (d timings) max() time.Duration { return slices.Max(d) }
func (d timings) median() time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}

// inProcess is what is measured without processes: the control plane's
// snapshot build and the data plane's compile of it.
type inProcess struct {
	build      timings // Builder.Build: assemble, encode, gzip
	assemble   timings // configsync.Snapshot
	encode     timings // deterministic proto encoding
	compress   timings // gzip (BestSpeed, as Build does)
	rawBytes   int
	gzipBytes  int
	decode     timings // proto decoding only (the floor of any consumer)
	compile    timings // config.Compile: what a data plane does per version
	compiledGo uint64  // Go heap held by one compiled config
}

// measureInProcess times the snapshot build of st at the control plane
// and the data plane's compile of it, in this process.
func measureInProcess(st *state.State, sz size, runs int) (inProcess, error) {
	var m inProcess
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		return m, err
	}
	var built *configsync.Built
	for range runs {
		t := time.Now()
		b, err := configsync.NewBuilder(sealer).Build(st)
		if err != nil {
			return m, fmt.Errorf("build snapshot: %w", err)
		}
		m.build = append(m.build, time.Since(t))
		built = b

		t = time.Now()
		snap, err := configsync.Snapshot(st, sealer)
		if err != nil {
			return m, err
		}
		m.assemble = append(m.assemble, time.Since(t))
		t = time.Now()
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
		if err != nil {
			return m, err
		}
		m.encode = append(m.encode, time.Since(t))
		t = time.Now()
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		_, _ = zw.Write(data)
		_ = zw.Close()
		m.compress = append(m.compress, time.Since(t))
	}
	m.rawBytes, m.gzipBytes = len(built.Bytes), len(built.Gzip)

	var snap snapshotv1.Snapshot
	if err := proto.Unmarshal(built.Bytes, &snap); err != nil {
		return m, err
	}
	if len(snap.GetAgents()) != sz.agents || len(snap.GetToolPins()) != sz.tools || len(snap.GetPolicySets()) != 1 {
		return m, fmt.Errorf("the snapshot holds %d agents, %d pins, %d policy sets; want %d, %d, 1",
			len(snap.GetAgents()), len(snap.GetToolPins()), len(snap.GetPolicySets()), sz.agents, sz.tools)
	}
	for range runs {
		t := time.Now()
		var s snapshotv1.Snapshot
		if err := proto.Unmarshal(built.Bytes, &s); err != nil {
			return m, err
		}
		m.decode = append(m.decode, time.Since(t))
		t = time.Now()
		if _, err := config.Compile(built.Bytes); err != nil {
			return m, fmt.Errorf("compile the snapshot: %w", err)
		}
		m.compile = append(m.compile, time.Since(t))
	}
	m.compiledGo = heldBy(func() any {
		c, err := config.Compile(built.Bytes)
		if err != nil {
			return nil
		}
		return c
	})
	return m, nil
}

// heldBy returns how much more Go heap is live while the value f returns
// is held than before f ran, each after a full collection.
func heldBy(f func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}
