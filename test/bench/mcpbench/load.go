package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// mcpProtocolVersion is the MCP version the benchmark's client asks for.
const mcpProtocolVersion = "2025-06-18"

// target is one path to the upstream's tool: an MCP endpoint, the tool's
// name there, the headers every request carries (the session, and the
// agent's credential for the data plane) and the processes that make up
// its proxy (none when direct).
type target struct {
	name     string
	endpoint string
	tool     string
	bearer   string
	client   *http.Client
	pids     func() []int
	upstream func() []int // the upstream's process, whose CPU is reported too
	// metrics scrapes the proxy's /metrics (series to value); nil when it
	// has none. Set for the data planes, whose stage times it reads.
	metrics func() (map[string]float64, error)

	header http.Header // set by initialize
	nextID atomic.Int64
}

func newTarget(name, endpoint, tool, bearer string, conns int, pids func() []int) *target {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &target{name: name, endpoint: endpoint, tool: tool, bearer: bearer,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, pids: pids}
}

func (tg *target) close() { tg.client.CloseIdleConnections() }

// procMetrics is what the benchmark reads of a data plane's /metrics: its
// stage times and the Go runtime's cumulative allocation counters.
type procMetrics struct {
	stages     stageTimes
	mallocs    float64 // go_memstats_mallocs_total: heap objects allocated
	allocBytes float64 // go_memstats_alloc_bytes_total: bytes allocated
}

// since is what happened between the scrapes before and m.
func (m procMetrics) since(before procMetrics) procMetrics {
	return procMetrics{stages: m.stages.since(before.stages), mallocs: m.mallocs - before.mallocs, allocBytes: m.allocBytes - before.allocBytes}
}

func parseProcMetrics(series map[string]float64) procMetrics {
	return procMetrics{stages: parseStageTimes(series), mallocs: series["go_memstats_mallocs_total"], allocBytes: series["go_memstats_alloc_bytes_total"]}
}

// scrape reads the target's /metrics; ok is false without metrics.
func (tg *target) scrape() (m procMetrics, ok bool, err error) {
	if tg.metrics == nil {
		return procMetrics{}, false, nil
	}
	series, err := tg.metrics()
	if err != nil {
		return procMetrics{}, false, fmt.Errorf("%s: scrape /metrics: %w", tg.name, err)
	}
	return parseProcMetrics(series), true, nil
}

// initialize opens an MCP session as a client would (initialize, then the
// notifications/initialized notification) and makes every later request
// carry its Mcp-Session-Id and the negotiated MCP-Protocol-Version.
func (tg *target) initialize(ctx context.Context) error {
	tg.header = http.Header{}
	params := fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"mcpbench","version":"1"}}`, mcpProtocolVersion)
	resp, body, err := tg.post(ctx, []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":`+params+`}`))
	if err != nil {
		return fmt.Errorf("%s: initialize: %w", tg.name, err)
	}
	msg, err := decodeAnswer(resp, body)
	if err != nil {
		return fmt.Errorf("%s: initialize: %w", tg.name, err)
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if msg.Error != nil || json.Unmarshal(msg.Result, &res) != nil || res.ProtocolVersion == "" {
		return fmt.Errorf("%s: initialize: unexpected answer %q", tg.name, body)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		tg.header.Set("Mcp-Session-Id", id)
	}
	tg.header.Set("MCP-Protocol-Version", res.ProtocolVersion)
	resp, body, err = tg.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return fmt.Errorf("%s: notifications/initialized: %w", tg.name, err)
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: notifications/initialized: %s: %q", tg.name, resp.Status, body)
	}
	return nil
}

// post sends one JSON-RPC message and reads the whole answer.
func (tg *target) post(ctx context.Context, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if tg.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+tg.bearer)
	}
	for k, v := range tg.header {
		req.Header[k] = v
	}
	resp, err := tg.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// answer is a JSON-RPC response.
type answer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// decodeAnswer reads the JSON-RPC response of an MCP POST, sent as JSON
// (the data plane) or as an event stream (the SDK's default, the demo
// upstream): then the last data line holds the response.
func decodeAnswer(resp *http.Response, body []byte) (answer, error) {
	var a answer
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var data []byte
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = bytes.TrimSpace(d)
			}
		}
		body = data
	}
	if err := json.Unmarshal(body, &a); err != nil || (a.Result == nil) == (a.Error == nil) {
		return a, fmt.Errorf("not a JSON-RPC response")
	}
	return a, nil
}

// call makes one tools/call and returns "" when the tool ran and
// succeeded, else a short description of what went wrong (the error
// class the report counts).
func (tg *target) call(ctx context.Context) string {
	id := tg.nextID.Add(1)
	body := make([]byte, 0, 160)
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = strconv.AppendInt(body, id, 10)
	body = append(body, `,"method":"tools/call","params":{"name":"`...)
	body = append(body, tg.tool...)
	body = append(body, `","arguments":{"city":"Oslo"}}}`...)
	resp, b, err := tg.post(ctx, body)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled"
		}
		return "transport: " + trimErr(err)
	}
	a, err := decodeAnswer(resp, b)
	if err != nil {
		return err.Error()
	}
	if a.Error != nil {
		return fmt.Sprintf("JSON-RPC error %d: %s", a.Error.Code, a.Error.Message)
	}
	var res struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(a.Result, &res); err != nil {
		return "malformed tools/call result"
	}
	if res.IsError {
		text := ""
		if len(res.Content) > 0 {
			text = res.Content[0].Text
		}
		return "isError: " + text
	}
	return ""
}

// trimErr keeps an error message short enough to count by.
func trimErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// errorCounts counts failed calls by description.
type errorCounts map[string]int

func (e errorCounts) add(o errorCounts) {
	for k, v := range o {
		e[k] += v
	}
}

func (e errorCounts) total() int {
	n := 0
	for _, v := range e {
		n += v
	}
	return n
}

// String lists the counts, most frequent first.
func (e errorCounts) String() string {
	keys := slices.SortedFunc(maps.Keys(e), func(a, b string) int { return e[b] - e[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d× %s", e[k], k))
	}
	return strings.Join(parts, "; ")
}

// newHist is a histogram of latencies in microseconds, 1 µs to 60 s, with
// three significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(d.Microseconds(), 1), h.HighestTrackableValue()))
}

// runResult is one load run on one target.
type runResult struct {
	calls   int // answered calls counted (errors included)
	errors  errorCounts
	hist    *hdrhistogram.Histogram
	elapsed time.Duration // the measured window
	cpu     time.Duration // of the proxy's processes in the window
	upCPU   time.Duration // of the upstream in the window
	rss     int64         // the proxy's peak RSS (VmHWM) after the run
	// stages is the data plane's own time per pipeline stage over the
	// measured window (fixed rate only); stagesErr says why it is missing.
	stages    stageTimes
	stagesErr error
	// mallocs and allocBytes are the data plane's heap allocations over
	// the window, less what one scrape of /metrics allocates (fixed rate
	// only; haveAllocs says they were scraped).
	mallocs, allocBytes float64
	haveAllocs          bool
}

func (r runResult) pct(q float64) time.Duration {
	return time.Duration(r.hist.ValueAtQuantile(q)) * time.Microsecond
}

// mean is the mean latency.
func (r runResult) mean() time.Duration {
	return time.Duration(r.hist.Mean() * float64(time.Microsecond))
}

func (r runResult) max() time.Duration { return time.Duration(r.hist.Max()) * time.Microsecond }

// fixedRate sends calls at rate per second, open loop: call i is due at
// start + i/rate whether or not earlier calls have been answered, and its
// latency runs from that intended time to the end of its answer, so time a
// call spends waiting for a free sender (at most inflight calls are in
// flight) or for a late scheduler counts against the target (no
// coordinated omission). Calls due in the warm-up are made but not
// recorded. When the target has metrics, they are scraped as the measured
// window starts (off the sending loop, so no call is sent late for it) and
// once every call is answered, for the stage times.
func fixedRate(ctx context.Context, tg *target, rate, inflight int, warmup, dur time.Duration) runResult {
	// What one scrape allocates in the data plane, from two scrapes back to
	// back while no call runs: the window's delta holds about one scrape
	// (the end of the first, the start of the last).
	var scrapeCost procMetrics
	if s1, ok1, err1 := tg.scrape(); ok1 && err1 == nil {
		if s2, ok2, err2 := tg.scrape(); ok2 && err2 == nil {
			scrapeCost = s2.since(s1)
		}
	}
	interval := time.Second / time.Duration(rate)
	n := int((warmup + dur) / interval)
	due := make(chan time.Time, n)
	start := time.Now()
	measureFrom := start.Add(warmup)
	hists := make([]*hdrhistogram.Histogram, inflight)
	errs := make([]errorCounts, inflight)
	var wg sync.WaitGroup
	for w := range inflight {
		hists[w], errs[w] = newHist(), errorCounts{}
		wg.Go(func() {
			for intended := range due {
				e := tg.call(ctx)
				lat := time.Since(intended)
				if intended.Before(measureFrom) || e == "cancelled" {
					continue
				}
				record(hists[w], lat)
				if e != "" {
					errs[w][e]++
				}
			}
		})
	}
	var cpu0, up0 time.Duration
	var before procMetrics
	var beforeOK bool
	var beforeErr error
	scraped := make(chan struct{})
	sampled := false
	for i := range n {
		next := start.Add(time.Duration(i) * interval)
		if !sampled && !next.Before(measureFrom) {
			cpu0, up0, sampled = cpuOf(tg.pids()), cpuOf(tg.upstream()), true
			go func() {
				defer close(scraped)
				before, beforeOK, beforeErr = tg.scrape()
			}()
		}
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		due <- next
	}
	close(due)
	wg.Wait()
	r := runResult{errors: errorCounts{}, hist: newHist(), elapsed: dur}
	r.cpu = cpuOf(tg.pids()) - cpu0
	r.upCPU = cpuOf(tg.upstream()) - up0
	r.rss = hwmOf(tg.pids())
	if sampled {
		<-scraped
		after, afterOK, err := tg.scrape()
		if beforeOK && afterOK {
			d := after.since(before)
			r.stages, r.haveAllocs = d.stages, true
			r.mallocs = max(d.mallocs-scrapeCost.mallocs, 0)
			r.allocBytes = max(d.allocBytes-scrapeCost.allocBytes, 0)
		}
		r.stagesErr = errors.Join(beforeErr, err)
	}
	for w := range inflight {
		r.hist.Merge(hists[w])
		r.errors.add(errs[w])
	}
	r.calls = int(r.hist.TotalCount())
	return r
}

// maxThroughput runs workers closed loops (each sends its next call when
// the previous one is answered) for warmup+dur and counts the calls
// answered within the last dur.
func maxThroughput(ctx context.Context, tg *target, workers int, warmup, dur time.Duration) runResult {
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+dur)
	hists := make([]*hdrhistogram.Histogram, workers)
	errs := make([]errorCounts, workers)
	var wg sync.WaitGroup
	for w := range workers {
		hists[w], errs[w] = newHist(), errorCounts{}
		wg.Go(func() {
			for ctx.Err() == nil {
				sent := time.Now()
				if !sent.Before(until) {
					return
				}
				e := tg.call(ctx)
				end := time.Now()
				if end.Before(from) || end.After(until) || e == "cancelled" {
					continue
				}
				record(hists[w], end.Sub(sent))
				if e != "" {
					errs[w][e]++
				}
			}
		})
	}
	select {
	case <-time.After(time.Until(from)):
	case <-ctx.Done():
	}
	cpu0, up0 := cpuOf(tg.pids()), cpuOf(tg.upstream())
	select {
	case <-time.After(time.Until(until)):
	case <-ctx.Done():
	}
	cpu, upCPU := cpuOf(tg.pids())-cpu0, cpuOf(tg.upstream())-up0
	wg.Wait()
	r := runResult{errors: errorCounts{}, hist: newHist(), elapsed: dur, cpu: cpu, upCPU: upCPU, rss: hwmOf(tg.pids())}
	for w := range workers {
		r.hist.Merge(hists[w])
		r.errors.add(errs[w])
	}
	r.calls = int(r.hist.TotalCount())
	return r
}
