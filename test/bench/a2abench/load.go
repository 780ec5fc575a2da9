package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// target is one path to the agent: a JSON-RPC endpoint, the bearer token
// the path takes (the agent's own directly and through nginx, the bench
// agent's API key through the data plane) and the processes of its proxy.
type target struct {
	name     string
	endpoint string
	bearer   string
	client   *http.Client
	pids     func() []int
	next     atomic.Int64
}

func newTarget(name, endpoint, bearer string, conns int, pids func() []int) *target {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &target{name: name, endpoint: endpoint, bearer: bearer, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, pids: pids}
}

func (tg *target) close() { tg.client.CloseIdleConnections() }

// call sends one SendMessage (A2A 1.0) that makes a task, which the agent
// completes with an echo artifact, and checks the answer is a task.
func (tg *target) call(ctx context.Context) error {
	n := tg.next.Add(1)
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"SendMessage","params":{"message":{"messageId":"bench-%d","role":"ROLE_USER","parts":[{"text":"hello"}]}}}`, n, n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.endpoint, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("A2A-Version", "1.0")
	req.Header.Set("Authorization", "Bearer "+tg.bearer)
	resp, err := tg.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var a struct {
		Result *struct {
			Task *struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"result"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("not a JSON-RPC response: %w", err)
	}
	switch {
	case a.Error != nil:
		return fmt.Errorf("JSON-RPC error %d", a.Error.Code)
	case a.Result == nil || a.Result.Task == nil || a.Result.Task.ID == "":
		return fmt.Errorf("the result is not a task")
	}
	return nil
}

// errorCounts counts failed calls by their first error text.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (e *errorCounts) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int{}
	}
	e.m[err.Error()]++
}

func (e *errorCounts) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.m {
		n += c
	}
	return n
}

func (e *errorCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprint(e.m)
}

// runResult is one measured run.
type runResult struct {
	hist    *hdrhistogram.Histogram
	calls   int
	errors  *errorCounts
	elapsed time.Duration
	cpu     time.Duration // the proxy's user+system time in the window
}

func newResult() runResult {
	return runResult{hist: hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3), errors: &errorCounts{}}
}

func (r runResult) pct(p float64) time.Duration {
	return time.Duration(r.hist.ValueAtQuantile(p)) * time.Microsecond
}

func (r runResult) max() time.Duration { return time.Duration(r.hist.Max()) * time.Microsecond }

func (r runResult) perSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls-r.errors.total()) / r.elapsed.Seconds()
}

// fixedRate sends rate calls/s, open loop, for warmup (not recorded) then
// duration; each call is timed from its intended send time, so a call
// that waits for one of the inflight slots counts its wait.
func fixedRate(ctx context.Context, tg *target, rate, inflight int, warmup, duration time.Duration) runResult {
	res := newResult()
	var mu sync.Mutex
	slots := make(chan struct{}, inflight)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	var wg sync.WaitGroup
	var cpu0 time.Duration
	cpuTaken := false
	for i := 0; ; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if !intended.Before(end) || ctx.Err() != nil {
			break
		}
		if d := time.Until(intended); d > 0 {
			time.Sleep(d) // pacing the generator, not waiting for a condition
		}
		if !cpuTaken && !intended.Before(measureFrom) {
			cpu0, cpuTaken = cpuOf(tg.pids()), true
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(intended time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			err := tg.call(ctx)
			lat := time.Since(intended)
			if intended.Before(measureFrom) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.calls++
			if err != nil {
				res.errors.add(err)
				return
			}
			_ = res.hist.RecordValue(lat.Microseconds())
		}(intended)
	}
	wg.Wait()
	res.cpu = cpuOf(tg.pids()) - cpu0
	res.elapsed = duration
	return res
}

// maxThroughput runs workers closed-loop for warmup, then counts the calls
// answered in duration.
func maxThroughput(ctx context.Context, tg *target, workers int, warmup, duration time.Duration) runResult {
	res := newResult()
	var mu sync.Mutex
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+duration)
	var cpu0 atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				if !t0.Before(measureFrom) {
					once.Do(func() { cpu0.Store(int64(cpuOf(tg.pids()))) })
				}
				err := tg.call(ctx)
				if t0.Before(measureFrom) || time.Now().After(end) {
					continue
				}
				mu.Lock()
				res.calls++
				if err != nil {
					res.errors.add(err)
				} else {
					_ = res.hist.RecordValue(time.Since(t0).Microseconds())
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.cpu = cpuOf(tg.pids()) - time.Duration(cpu0.Load())
	res.elapsed = duration
	return res
}

// cpuOf sums the user+system CPU time of pids (from /proc/<pid>/stat,
// in USER_HZ = 100 ticks per second); processes that are gone count zero.
func cpuOf(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil {
			sum += st.cpu
		}
	}
	return sum
}
