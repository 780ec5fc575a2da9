package config_test

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"github.com/portcullis-gw/portcullis/internal/limits/limitstest"
	"google.golang.org/protobuf/proto"
)

// Bounds FuzzCompile holds every Compile to: a stack deeper than
// fuzzMaxStack crashes the fuzzed process (debug.SetMaxStack), which the
// fuzzer reports, and one Compile may allocate at most fuzzMaxAlloc. The
// largest legitimate snapshot the generator builds (a policy set of 1 MiB
// of minimal policies) allocates about 100 MiB.
const (
	fuzzMaxStack = 64 << 20
	fuzzMaxAlloc = 256 << 20
)

// FuzzCompile compiles two snapshots per input: the input's bytes as they
// are, and the fixture snapshot with resources generated from the bytes
// (package limitstest) added or replacing its own — policy sets and input
// schemas nested or repeated up to far past the limits, fields at and just
// over theirs, secrets, a freeze reason. Compile must not panic (nor take
// its own panic path), must stay within fuzzMaxStack and fuzzMaxAlloc, and
// must refuse with a bounded *config.Error; what it accepts must serve a
// tool list and an authorization without panicking. Each snapshot is also
// compiled incrementally (config.Reusing the fixture, or the generated
// snapshot for a next one generated from the same bytes): its decode must
// equal proto.Unmarshal's, and the result must be refused with the same
// problems, or serve alike (sameServing), as the compile from scratch.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{})
	f.Add(configtest.Marshal(f, configtest.Snapshot()))
	f.Add([]byte{0x0a, 0x02, 0x08})
	// Resource choice 3 (a policy set) nested ~370,000 parentheses deep;
	// choice 2 (a pin) whose input schema nests ~3,000 objects deep.
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 146})
	f.Add([]byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 137})
	f.Add([]byte("\x00\x03" + strings.Repeat("\x00", 25) + "\x02\x00\x00\x00\x03\x00\x20" + ` "a\" // /* ( [ { || !! if then `))
	prev := debug.SetMaxStack(fuzzMaxStack)
	f.Cleanup(func() { debug.SetMaxStack(prev) })

	fixture := configtest.Compile(f, configtest.Snapshot())

	f.Fuzz(func(t *testing.T, data []byte) {
		raw, rerr := compile(t, "the raw bytes", data)
		incremental(t, "the raw bytes", data, fixture, raw, rerr)
		// Text the generator took from the fuzz bytes may not be UTF-8,
		// which a snapshot cannot carry: the raw bytes cover that.
		snap, err := proto.Marshal(generated(data))
		if err != nil {
			return
		}
		gen, gerr := compile(t, "the generated snapshot", snap)
		incremental(t, "the generated snapshot", snap, fixture, gen, gerr)
		// The next version: another snapshot generated from the same
		// bytes, compiled against the generated one when it was accepted.
		prev := fixture
		if gen != nil {
			prev = gen
		}
		if next, err := proto.Marshal(generated(slices.Concat(data[min(len(data), 1):], data[:min(len(data), 1)]))); err == nil {
			c, err := compile(t, "the next generated snapshot", next)
			incremental(t, "the next generated snapshot", next, prev, c, err)
		}
	})
}

// incremental compiles snapshot reusing prev and checks that it is
// decoded as proto.Unmarshal decodes it and compiled as scratch, its
// compile from scratch (nil when refused with serr), was: refused alike,
// or serving alike.
func incremental(t *testing.T, what string, snapshot []byte, prev, scratch *config.Compiled, serr error) {
	t.Helper()
	want := &snapshotv1.Snapshot{}
	werr := proto.Unmarshal(snapshot, want)
	got, gerr := config.Decode(snapshot, prev)
	if (werr == nil) != (gerr == nil) || werr == nil && !proto.Equal(want, got) {
		t.Fatalf("%s: decoding reusing a previous version: %v, want %v (or the messages differ)", what, gerr, werr)
	}
	inc, ierr := compile(t, what+", incrementally", snapshot, config.Reusing(prev))
	switch {
	case (scratch == nil) != (inc == nil):
		t.Fatalf("%s: compiled from scratch: %v; incrementally: %v", what, serr, ierr)
	case inc == nil:
		if serr.Error() != ierr.Error() {
			t.Fatalf("%s: refused from scratch with\n%v\nincrementally with\n%v", what, serr, ierr)
		}
	default:
		sameServing(t, what, scratch, inc, fuzzKeys)
	}
}

// fuzzKeys are the fixture's API keys.
var fuzzKeys = []string{configtest.PayerKey, configtest.MarketerKey, configtest.ExpiredKey, configtest.DisabledKey}

// compile compiles snapshot and checks what FuzzCompile promises. It
// returns what Compile returned.
func compile(t *testing.T, what string, snapshot []byte, opts ...config.Option) (*config.Compiled, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := config.Compile(snapshot, opts...)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > fuzzMaxAlloc {
		t.Fatalf("compiling %s (%d bytes) allocated %d MiB, more than %d", what, len(snapshot), alloc>>20, fuzzMaxAlloc>>20)
	}
	if err != nil {
		var cerr *config.Error
		if !errors.As(err, &cerr) {
			t.Fatalf("compiling %s: error %T, want *config.Error", what, err)
		}
		msg := err.Error()
		if len(msg) > config.MaxErrorBytes {
			t.Fatalf("compiling %s: error of %d bytes", what, len(msg))
		}
		if strings.Contains(msg, "failed unexpectedly") {
			t.Fatalf("compiling %s panicked: %s", what, msg)
		}
		return nil, err
	}
	_ = c.Tools()
	agent, ok := c.AgentByAPIKey(configtest.PayerKey, callAt)
	if !ok {
		return c, nil
	}
	for _, tool := range c.Tools() {
		_ = c.Authorize(context.Background(), newCall(c, agent, tool.Action, `{"amount": 100, "to": "bob"}`))
	}
	_ = c.Listable(context.Background(), newCall(c, agent, "", ""), pipeline.KindTool)
	return c, nil
}

// generated is the fixture snapshot with resources generated from data.
func generated(data []byte) *snapshotv1.Snapshot {
	g := limitstest.New(data)
	s := configtest.Snapshot()
	for i := 0; i < 4 && (i == 0 || !g.Done()); i++ {
		switch r := g.Resource(configtest.Upstream, configtest.BearerSecret).(type) {
		case *configv1.Agent:
			s.Agents = append(s.Agents, r)
		case *configv1.Upstream:
			s.Upstreams = append(s.Upstreams, r)
		case *configv1.ToolPin:
			s.ToolPins = append(s.ToolPins, r)
		case *configv1.PolicySet:
			if g.Bool() {
				s.PolicySets[0].Source = r.GetSource() // replace the fixture's
			} else {
				s.PolicySets = append(s.PolicySets, r)
			}
		case *configv1.IdentitySource:
			s.IdentitySources = append(s.IdentitySources, r)
		case *configv1.ValueList:
			s.ValueLists = append(s.ValueLists, r)
		case *configv1.Setting:
			s.Settings = append(s.Settings, r)
		case *configv1.InspectionRule:
			s.InspectionRules = append(s.InspectionRules, r)
		}
	}
	switch g.Intn(8) {
	case 5:
		s.Secrets = append(s.Secrets, &snapshotv1.SecretValue{Name: g.Name(), Value: make([]byte, g.Size(limits.SecretValue))})
	case 6:
		s.Freeze = &snapshotv1.Freeze{Frozen: true, Reason: g.Text(limits.FreezeReason)}
	case 7:
		s.ClusterCaPem = g.Text(limits.CAPEM)
	}
	if g.Intn(4) == 3 {
		// A rollout whose candidate replaces or adds a set.
		r := g.Rollout(configtest.PolicySet)
		if g.Bool() {
			r.PolicySet = g.Name()
		}
		s.Rollout = &snapshotv1.Rollout{
			Id: r.GetMeta().GetName(), Stage: configv1.RolloutStage(g.Intn(7)), CanaryBasisPoints: uint32(g.Intn(10002)),
			Candidate: &configv1.PolicySet{Meta: &configv1.ResourceMeta{Name: r.GetPolicySet()}, Source: r.GetSource(), Version: int64(g.Intn(100))},
		}
	}
	return s
}
