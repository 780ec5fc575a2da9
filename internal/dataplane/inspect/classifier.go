package inspect

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
)

// The classifier protocol. The data plane POSTs (Content-Type
// application/json)
//
//	{"side": "request", "protocol": "mcp", "operation": "call",
//	 "upstream": "demo", "target": "fetch", "rule": "judge",
//	 "parts": [{"where": "arguments", "json": {...}},
//	           {"where": "content[0].text", "text": "..."}]}
//
// and reads back {"labels": ["prompt_injection", ...]}: an empty list
// means nothing was found. Each label (1-64 of a-z, 0-9, '_', '-', '.')
// becomes the finding classifier.<label>. Anything else — a timeout, a
// status other than 200, a body that is not that object — is the finding
// classifier.unavailable, which blocks when the rule fails closed.

// Bounds of the classifier protocol.
const (
	// maxVerdictBytes bounds a classifier's answer.
	maxVerdictBytes = 64 << 10
	// maxLabels bounds the labels of one verdict.
	maxLabels = 16
	// maxLabelLen bounds a label.
	maxLabelLen = 64
	// verdictTTL is how long a verdict is reused for the same input.
	verdictTTL = 10 * time.Minute
	// maxVerdicts bounds the verdicts kept.
	maxVerdicts = 10_000
)

// Call describes the call a classifier judges.
type Call struct {
	Side      Side
	Protocol  string
	Operation string
	Upstream  string
	Target    string
}

type classifyRequest struct {
	Side      string         `json:"side"`
	Protocol  string         `json:"protocol"`
	Operation string         `json:"operation"`
	Upstream  string         `json:"upstream"`
	Target    string         `json:"target"`
	Rule      string         `json:"rule"`
	Parts     []classifyPart `json:"parts"`
}

type classifyPart struct {
	Where string          `json:"where"`
	Text  *string         `json:"text,omitempty"`
	JSON  json.RawMessage `json:"json,omitempty"`
}

type verdict struct {
	Labels []string `json:"labels"`
}

// ClassifierClient asks classifier services for verdicts and remembers
// each verdict for the same rule and input. It is safe for concurrent
// use; the zero value is not usable (NewClassifierClient).
type ClassifierClient struct {
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*http.Client // by egress policy
	cache   *verdictCache
}

// NewClassifierClient returns a client; now is its clock (nil: time.Now).
func NewClassifierClient(now func() time.Time) *ClassifierClient {
	if now == nil {
		now = time.Now
	}
	return &ClassifierClient{now: now, clients: map[string]*http.Client{}, cache: newVerdictCache(maxVerdicts)}
}

// httpClient returns the client that dials under pol.
func (c *ClassifierClient) httpClient(pol egress.Policy) *http.Client {
	key := fmt.Sprint(pol)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[key]; ok {
		return hc
	}
	if len(c.clients) >= 8 {
		for k, hc := range c.clients {
			hc.CloseIdleConnections()
			delete(c.clients, k)
		}
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, ControlContext: pol.DialControlContext}
	hc := &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // the egress policy judges the real destination
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.clients[key] = hc
	return hc
}

// Close releases idle connections.
func (c *ClassifierClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, hc := range c.clients {
		hc.CloseIdleConnections()
	}
}

// Classify asks each rule's classifier about parts and returns the
// findings: a label each, or classifier.unavailable when a classifier
// could not answer. Verdicts for the same rule, URL and input are reused
// for a while. Rules without a classifier are skipped.
func (c *ClassifierClient) Classify(ctx context.Context, rules []*Rule, pol egress.Policy, call Call, parts []Part) []Finding {
	var out []Finding
	for _, r := range rules {
		if r.Classifier == nil {
			continue
		}
		labels, err := c.classify(ctx, r, pol, call, parts)
		if err != nil {
			a := Flag
			if r.Classifier.FailClosed {
				a = Block
			}
			out = append(out, Finding{Rule: r, Detector: "classifier", Kind: "unavailable", Action: a, Location: call.Side.String() + ": " + err.Error()})
			continue
		}
		for _, l := range labels {
			out = append(out, Finding{Rule: r, Detector: "classifier", Kind: l, Action: ceilingAction(r), Location: call.Side.String()})
		}
	}
	return out
}

// errClassifier errors are safe to record (they name no address).
type classifierError string

func (e classifierError) Error() string { return string(e) }

func (c *ClassifierClient) classify(ctx context.Context, r *Rule, pol egress.Policy, call Call, parts []Part) ([]string, error) {
	body, err := json.Marshal(classifyRequest{
		Side: call.Side.String(), Protocol: call.Protocol, Operation: call.Operation,
		Upstream: call.Upstream, Target: call.Target, Rule: r.Name, Parts: cutParts(parts, r.Classifier.MaxInput),
	})
	if err != nil {
		return nil, classifierError("the input could not be encoded")
	}
	key := sha256.Sum256(append([]byte(r.Classifier.URL+"\n"), body...))
	if labels, ok := c.cache.get(key, c.now()); ok {
		return labels, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.Classifier.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Classifier.URL, bytes.NewReader(body))
	if err != nil {
		return nil, classifierError("bad classifier URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient(pol).Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return nil, classifierError(fmt.Sprintf("no answer within %s", r.Classifier.Timeout))
		case errors.Is(err, egress.ErrRefused):
			return nil, classifierError("the egress policy refuses the classifier's address")
		}
		return nil, classifierError("the classifier could not be reached")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, classifierError(fmt.Sprintf("the classifier answered HTTP %d", resp.StatusCode))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxVerdictBytes+1))
	if err != nil {
		return nil, classifierError("the classifier's answer could not be read")
	}
	if len(raw) > maxVerdictBytes {
		return nil, classifierError("the classifier's answer is too large")
	}
	var v verdict
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&v); err != nil || v.Labels == nil && !bytes.Contains(raw, []byte(`"labels"`)) {
		return nil, classifierError(`the classifier's answer is not {"labels": [...]}`)
	}
	labels, err := checkLabels(v.Labels)
	if err != nil {
		return nil, err
	}
	c.cache.put(key, labels, c.now().Add(verdictTTL))
	return labels, nil
}

// checkLabels lower-cases labels and refuses any that could not be a
// finding's kind.
func checkLabels(in []string) ([]string, error) {
	if len(in) > maxLabels {
		return nil, classifierError(fmt.Sprintf("the classifier gave more than %d labels", maxLabels))
	}
	out := make([]string, 0, len(in))
	for _, l := range in {
		l = strings.ToLower(l)
		if l == "" || len(l) > maxLabelLen || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "" {
			return nil, classifierError("the classifier gave a label that is not 1-64 of a-z, 0-9, '_', '-', '.'")
		}
		out = append(out, l)
	}
	return out, nil
}

// cutParts are parts as sent, at most n bytes of text and JSON in all: a
// JSON part that does not fit is sent as the start of its text.
func cutParts(parts []Part, n int) []classifyPart {
	out := make([]classifyPart, 0, len(parts))
	for _, p := range parts {
		if n <= 0 {
			break
		}
		cp := classifyPart{Where: p.Where}
		switch {
		case p.JSON != nil && len(p.JSON) <= n:
			cp.JSON = p.JSON
			n -= len(p.JSON)
		default:
			t := p.Text
			if p.JSON != nil {
				t = string(p.JSON)
			}
			t = strings.ToValidUTF8(head(t, n), "")
			cp.Text = &t
			n -= len(t)
		}
		out = append(out, cp)
	}
	return out
}

// head returns the first n bytes of s (n ≥ 0).
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// verdictCache is a bounded LRU of verdicts with expiry.
type verdictCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[[32]byte]*list.Element
}

type cached struct {
	key     [32]byte
	labels  []string
	expires time.Time
}

func newVerdictCache(n int) *verdictCache {
	return &verdictCache{max: n, order: list.New(), items: map[[32]byte]*list.Element{}}
}

func (c *verdictCache) get(key [32]byte, now time.Time) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	v := e.Value.(*cached)
	if now.After(v.expires) {
		c.order.Remove(e)
		delete(c.items, key)
		return nil, false
	}
	c.order.MoveToFront(e)
	return v.labels, true
}

func (c *verdictCache) put(key [32]byte, labels []string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*cached).labels, e.Value.(*cached).expires = labels, expires
		c.order.MoveToFront(e)
		return
	}
	c.items[key] = c.order.PushFront(&cached{key: key, labels: labels, expires: expires})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cached).key)
	}
}
