package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// DataplaneOptions configure StartDataplane.
type DataplaneOptions struct {
	// Name labels the process in logs; normally the data plane's name, the
	// one its join credential was issued for. Required.
	Name string
	// DataDir defaults to <t.TempDir()>/<Name>.
	DataDir string
	// Listen defaults to a free port on 127.0.0.1.
	Listen string
	// ControlPlanes are the control-plane API URLs. Required.
	ControlPlanes []string
	// Credential is the join credential ("pcj1_…"). It reaches the process
	// through PORTCULLIS_DP_JOIN_CREDENTIAL, never its command line.
	// Required.
	Credential string
	// DegradedAfter and MaxStale are passed when non-zero.
	DegradedAfter, MaxStale time.Duration
	// Args are extra flags, after the harness's own.
	Args []string
	// BinDir holds the dataplane binary to run (default: the one Main
	// built), e.g. a build of another commit (BuildCommit).
	BinDir string
}

// Dataplane is a dataplane process run by a test. It can be stopped,
// killed and restarted with the same flags, data dir and listen address;
// Log keeps the output of every run and is dumped with t.Log when the test
// fails.
type Dataplane struct {
	Name    string
	DataDir string
	Listen  string
	// URL is the base URL agents call, http://<Listen>.
	URL string
	Log *LogBuffer

	t    testing.TB
	args []string
	env  []string
	mu   sync.Mutex
	d    *Daemon
	bin  string // the binary the current (or next) process runs
}

// StartDataplane starts a data plane; it does not wait for it (see
// AwaitServing and AwaitReadyz).
func StartDataplane(t testing.TB, opts DataplaneOptions) *Dataplane {
	t.Helper()
	if opts.Name == "" || len(opts.ControlPlanes) == 0 || opts.Credential == "" {
		t.Fatal("StartDataplane: Name, ControlPlanes and Credential are required")
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(t.TempDir(), opts.Name)
	}
	if opts.Listen == "" {
		opts.Listen = FreeAddr(t)
	}
	dp := &Dataplane{
		Name: opts.Name, DataDir: opts.DataDir, Listen: opts.Listen, URL: "http://" + opts.Listen,
		Log: NewLogBuffer(), t: t, bin: programIn(t, opts.BinDir, "dataplane"),
		env: []string{"PORTCULLIS_DP_JOIN_CREDENTIAL=" + opts.Credential},
	}
	dp.args = []string{
		"--data-dir", opts.DataDir,
		"--control-plane", strings.Join(opts.ControlPlanes, ","),
		"--listen", opts.Listen,
	}
	if opts.DegradedAfter != 0 {
		dp.args = append(dp.args, "--degraded-after", opts.DegradedAfter.String())
	}
	if opts.MaxStale != 0 {
		dp.args = append(dp.args, "--max-stale", opts.MaxStale.String())
	}
	dp.args = append(dp.args, opts.Args...)
	// Registered before the daemon's own cleanup, so it runs after the
	// process is gone and the log is complete.
	t.Cleanup(func() {
		if strings.Contains(dp.Log.String(), raceReport) {
			t.Errorf("dataplane %s reported a data race (see its log)", dp.Name)
		}
		if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
			t.Logf("=== log of dataplane %s (%s) ===\n%s=== end of log of dataplane %s ===", dp.Name, dp.URL, dp.Log.String(), dp.Name)
		}
	})
	dp.start()
	return dp
}

func (dp *Dataplane) start() {
	dp.t.Helper()
	dp.mu.Lock()
	bin := dp.bin
	dp.mu.Unlock()
	d := StartDaemon(dp.t, "dataplane "+dp.Name, bin, dp.args, dp.env, dp.Log)
	dp.mu.Lock()
	dp.d = d
	dp.mu.Unlock()
}

// Daemon is the data plane's current process.
func (dp *Dataplane) Daemon() *Daemon {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return dp.d
}

// Running reports whether the data plane's process runs.
func (dp *Dataplane) Running() bool { return !dp.Daemon().Exited() }

// Kill kills the data plane with SIGKILL and waits until it is gone.
func (dp *Dataplane) Kill() {
	dp.t.Logf("kill -9 dataplane %s (pid %d)", dp.Name, dp.Daemon().Pid())
	dp.Daemon().Kill()
}

// MustCleanShutdown stops the data plane with SIGTERM and fails the test
// unless it exits with status 0.
func (dp *Dataplane) MustCleanShutdown(t testing.TB) {
	t.Helper()
	dp.Daemon().MustCleanShutdown(t)
}

// Restart starts the data plane again with the same flags, environment,
// data dir and listen address; a data plane that still runs is stopped
// first (SIGTERM). It does not wait (see AwaitServing).
func (dp *Dataplane) Restart() {
	dp.t.Helper()
	if dp.Running() {
		if err := dp.Daemon().Stop(15 * time.Second); err != nil {
			dp.t.Logf("restart dataplane %s: stop: %v", dp.Name, err)
		}
	}
	dp.start()
}

// RestartFrom is Restart with the dataplane binary in binDir: how a
// rolling upgrade replaces a data plane's binary while keeping its data
// dir (last-known-good snapshot, audit log) and listen address. A data
// plane that still runs is stopped with SIGTERM first, and the test fails
// unless it exits cleanly.
func (dp *Dataplane) RestartFrom(binDir string) {
	dp.t.Helper()
	if dp.Running() {
		if err := dp.Daemon().Stop(15 * time.Second); err != nil {
			dp.t.Fatalf("dataplane %s: stop for a restart from %s: %v", dp.Name, binDir, err)
		}
	}
	bin := programIn(dp.t, binDir, "dataplane")
	dp.mu.Lock()
	dp.bin = bin
	dp.mu.Unlock()
	dp.start()
}

// LastKnownGoodFile is the encrypted snapshot the data plane keeps on disk.
func (dp *Dataplane) LastKnownGoodFile() string { return filepath.Join(dp.DataDir, "snapshot.lkg") }

// AuditLogDir is the data plane's local audit log (segment files).
func (dp *Dataplane) AuditLogDir() string { return filepath.Join(dp.DataDir, "audit") }

// AwaitServing waits until the data plane answers GET /healthz with 200; it
// fails the test at the deadline or when the process exits.
func (dp *Dataplane) AwaitServing(t testing.TB, timeout time.Duration) {
	t.Helper()
	done := dp.Daemon().Done()
	deadline := time.Now().Add(timeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		status, body, err := httpGet(dp.URL + "/healthz")
		if err == nil && status == http.StatusOK {
			return
		}
		if err == nil {
			err = fmt.Errorf("status %d: %s", status, bytes.TrimSpace(body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("dataplane %s not serving within %s: %v", dp.Name, timeout, err)
		}
		select {
		case <-done:
			t.Fatalf("dataplane %s exited before serving (last error: %v)", dp.Name, err)
		case <-time.After(backoff):
		}
	}
}

// ReadyStatus is the data plane's GET /readyz answer.
type ReadyStatus struct {
	// HTTPStatus is 200 while the data plane serves (normal or degraded),
	// 503 otherwise (starting or stale).
	HTTPStatus int    `json:"-"`
	Mode       string `json:"mode"` // normal, degraded, stale or starting
	Version    uint64 `json:"version"`
	// Epoch is the epoch of Version (0 while nothing is served).
	Epoch        uint64    `json:"epoch"`
	ControlPlane bool      `json:"control_plane"`
	LastContact  time.Time `json:"last_contact"`
}

func (s ReadyStatus) String() string {
	return fmt.Sprintf("%d mode=%s version=%d epoch=%d control_plane=%t", s.HTTPStatus, s.Mode, s.Version, s.Epoch, s.ControlPlane)
}

// Readyz asks the data plane's /readyz once.
func (dp *Dataplane) Readyz() (ReadyStatus, error) {
	var st ReadyStatus
	status, body, err := httpGet(dp.URL + "/readyz")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("dataplane %s /readyz: status %d, body %q: %w", dp.Name, status, body, err)
	}
	st.HTTPStatus = status
	return st, nil
}

// AwaitReadyz polls /readyz until cond accepts the answer and returns that
// answer; it fails the test with the last answer at the deadline.
func (dp *Dataplane) AwaitReadyz(t testing.TB, timeout time.Duration, what string, cond func(ReadyStatus) error) ReadyStatus {
	t.Helper()
	var st ReadyStatus
	Await(t, timeout, fmt.Sprintf("dataplane %s: %s", dp.Name, what), func() error {
		var err error
		if st, err = dp.Readyz(); err != nil {
			return err
		}
		if err := cond(st); err != nil {
			return fmt.Errorf("/readyz says %s: %w", st, err)
		}
		return nil
	})
	return st
}

// Metrics fetches /metrics once and returns the samples by series, e.g.
// `portcullis_dataplane_mode{mode="degraded"}` → 1.
func (dp *Dataplane) Metrics() (map[string]float64, error) {
	status, body, err := httpGet(dp.URL + "/metrics")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("dataplane %s /metrics: status %d", dp.Name, status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("dataplane %s /metrics: line %q: %w", dp.Name, line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// AuditRecord is one record of the data plane's audit log (the fields the
// tests look at).
type AuditRecord struct {
	Time      time.Time
	Sequence  uint64
	Dataplane string
	Agent     string
	Method    string
	Upstream  string
	// Tool is the target as agents name it ("<prefix>__<tool>");
	// TargetOwn is its upstream's own name.
	Tool            string
	TargetOwn       string
	SnapshotVersion Int64
	Mode            string
	Decision        string
	Outcome         string
	Reason          string
	User            string
	ArgumentsJSON   string
	ResponseBytes   int64
	// Kind is the event kind ("EVENT_KIND_CALL", …).
	Kind string
	// For a refusal summary: the source network and count.
	SourceNetwork string
	Count         uint64
	// Items is, for a list, how many items the agent was shown.
	Items uint32
	// UpstreamLatency is the time spent upstream (0 when the call never
	// reached it).
	UpstreamLatency time.Duration
	// Findings are what runtime inspection found.
	Findings []AuditFinding
	// ToolVersion is, for a tool call, the version of the tool's pin the
	// call was validated against; ToolDeprecated is set when that version
	// was deprecated (the call carried the notice).
	ToolVersion    int64
	ToolDeprecated bool
	// Task is, for an operation on a remote agent (A2A), its task detail.
	Task struct {
		ID, ContextID, State, Skill string
		MessageBytes, EventBytes    int64
		Events, Tasks               uint32
	}
}

// AuditFinding is one finding of runtime inspection in an audit record.
type AuditFinding struct {
	Detector, Kind, Rule, Mode, Side, Location, Action string
}

// Name is the finding's name, "<detector>.<kind>".
func (f AuditFinding) Name() string { return f.Detector + "." + f.Kind }

// AuditRecords reads the whole audit log (a record still being written
// when it is read is left out).
func (dp *Dataplane) AuditRecords() ([]AuditRecord, error) {
	var out []AuditRecord
	for r, err := range audit.ReadDir(dp.AuditLogDir(), 1) {
		if err != nil {
			return nil, err
		}
		rec := AuditRecord{
			Time:            r.GetTime().AsTime(),
			Sequence:        r.GetSequence(),
			Dataplane:       r.GetDataplane(),
			Agent:           r.GetAgent(),
			Method:          r.GetMethod(),
			Upstream:        r.GetUpstream(),
			Tool:            r.GetTool(),
			TargetOwn:       r.GetTargetOwn(),
			SnapshotVersion: Int64(r.GetSnapshotVersion()),
			Mode:            r.GetMode(),
			Decision:        r.GetDecision(),
			Outcome:         r.GetOutcome(),
			Reason:          r.GetReason(),
			User:            r.GetUser(),
			ArgumentsJSON:   r.GetArgumentsJson(),
			ResponseBytes:   r.GetResponseBytes(),
			Kind:            r.GetKind().String(),
			SourceNetwork:   r.GetRefusalSummary().GetSourceNetwork(),
			Count:           r.GetRefusalSummary().GetCount(),
			Items:           r.GetList().GetItems(),
			UpstreamLatency: r.GetUpstreamLatency().AsDuration(),
			Findings:        findings(r.GetFindings()),
			ToolVersion:     r.GetToolVersion(),
			ToolDeprecated:  r.GetToolDeprecated(),
		}
		if d := r.GetTask(); d != nil {
			rec.Task.ID, rec.Task.ContextID, rec.Task.State, rec.Task.Skill = d.GetTaskId(), d.GetContextId(), d.GetState(), d.GetSkill()
			rec.Task.MessageBytes, rec.Task.EventBytes, rec.Task.Events, rec.Task.Tasks = d.GetMessageBytes(), d.GetEventBytes(), d.GetEvents(), d.GetTasks()
		}
		out = append(out, rec)
	}
	return out, nil
}

func findings(fs []*auditv1.Finding) []AuditFinding {
	var out []AuditFinding
	for _, f := range fs {
		out = append(out, AuditFinding{Detector: f.GetDetector(), Kind: f.GetKind(), Rule: f.GetRule(), Mode: f.GetMode(),
			Side: f.GetSide(), Location: f.GetLocation(), Action: f.GetAction()})
	}
	return out
}

// httpGet makes one plain-HTTP GET with a fresh, keep-alive-free client
// (so no idle connection goroutine outlives it) and returns the status and
// at most 8 MiB of the body.
func httpGet(url string) (int, []byte, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}
