package a2a_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	a2agw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/a2a"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/test/a2aagent/agent"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const agentToken = "agent-only-secret"

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// recorder keeps audit records.
type recorder struct {
	mu      sync.Mutex
	records []*auditv1.Record
}

func (r *recorder) Write(_ context.Context, rec *auditv1.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}

func (r *recorder) all() []*auditv1.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.records)
}

// backend is the data plane's pipeline over one compiled configuration.
type backend struct {
	cfg *config.Compiled
	run pipeline.Handler
}

func (b *backend) Begin(r *http.Request) *pipeline.Call {
	c := &pipeline.Call{Config: b.cfg, Mode: configsyncv1.Mode_MODE_NORMAL, Start: time.Now()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.SourceIP = ap.Addr()
	}
	return c
}

func (b *backend) Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	return b.run(ctx, c)
}

// a2aPolicies: the payments team may use every remote agent except
// travel's "book" skill; marketing may read tasks, never send.
const a2aPolicies = `permit(principal in Team::"payments", action, resource is RemoteAgent);
@id("no-booking")
forbid(principal, action == Action::"a2a:send_message", resource) when { context has skill && context.skill == "book" };
permit(principal in Team::"marketing", action in Action::"a2a_read", resource);
`

// world is a gateway in front of a real SDK agent of each version.
type world struct {
	gw       *httptest.Server
	agent    *agent.Agent
	legacy   *agent.Agent
	audit    *recorder
	agentURL string
}

func startWorld(t *testing.T) *world {
	t.Helper()
	w := &world{audit: &recorder{}}
	srv := func(legacy bool) (*agent.Agent, *httptest.Server) {
		mux := http.NewServeMux()
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		a := agent.New(s.URL, agent.Options{Token: agentToken, Legacy: legacy})
		mux.Handle("/", a.Handler())
		return a, s
	}
	var travel, old *httptest.Server
	w.agent, travel = srv(false)
	w.legacy, old = srv(true)
	w.agentURL = travel.URL

	snap := configtest.Snapshot()
	snap.TaskIdKey = bytes.Repeat([]byte{9}, 32)
	snap.PolicySets[0].Source = a2aPolicies
	for name, s := range map[string]*httptest.Server{"travel": travel, "legacy": old} {
		snap.Upstreams = append(snap.Upstreams, &configv1.Upstream{
			Meta: &configv1.ResourceMeta{Name: name}, Protocol: configv1.Protocol_PROTOCOL_A2A, Url: s.URL + agent.RPCPath,
			Credential: &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Bearer{Bearer: &configv1.BearerCredential{Secret: name + "-token"}}},
		})
		snap.Secrets = append(snap.Secrets, &snapshotv1.SecretValue{Name: name + "-token", Version: 1, Value: []byte(agentToken), Hosts: []string{"127.0.0.1"}})
		snap.ToolPins = append(snap.ToolPins, authztest.CardPin(name, configv1.ToolClass_TOOL_CLASS_MUTATING, fetchCard(t, s.URL)))
	}
	cfg := configtest.Compile(t, snap)
	pool := a2agw.NewPool(testLogger(t))
	t.Cleanup(func() { _ = pool.Close() })
	fw := &a2agw.Forwarder{Pool: pool, Logger: testLogger(t)}
	b := &backend{cfg: cfg, run: pipeline.Chain(fw.Forward, stages.Default(stages.Options{Audit: stages.Audit{Writer: w.audit, Dataplane: "dp"}})...)}
	h := a2agw.NewHandler(b, testLogger(t), "dp-test", nil)
	t.Cleanup(h.Stop)
	w.gw = httptest.NewServer(h)
	t.Cleanup(w.gw.Close)
	return w
}

// fetchCard reads an agent's card as an operator approves it: as served.
func fetchCard(t *testing.T, base string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/agent-card.json", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("card: %d %v", res.StatusCode, err)
	}
	return b
}

// bearer adds a fixed bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func httpClient(t *testing.T, key string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: bearer{token: key, base: tr}}
}

// client resolves the agent's card through the gateway, as key, and
// builds the official SDK's client from it (the 0.3 transport for a 0.3
// agent).
func (w *world) client(t *testing.T, ctx context.Context, key, name string, legacy bool) (*a2aclient.Client, *a2a.AgentCard) {
	t.Helper()
	resolver := agentcard.Resolver{Client: httpClient(t, key)}
	opt := a2aclient.WithJSONRPCTransport(httpClient(t, key))
	if legacy {
		resolver.CardParser = a2av0.NewAgentCardParser()
		opt = a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: httpClient(t, key)})
	}
	card, err := resolver.Resolve(ctx, w.gw.URL+"/a2a/"+name)
	if err != nil {
		t.Fatalf("resolve the card of %s through the gateway: %v", name, err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, opt)
	if err != nil {
		t.Fatalf("client for %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	return c, card
}

func textMessage(text string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
}

// TestSDKThroughTheGateway drives the gateway with the official Go SDK's
// client in front of the SDK's server: the card, send, stream, get, list,
// cancel, resubscription after a dropped stream, policy, ownership of
// tasks, push configuration and the audit records.
func TestSDKThroughTheGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w := startWorld(t)
	payer, card := w.client(t, ctx, configtest.PayerKey, "travel", false)

	t.Run("the card names only the gateway", func(t *testing.T) {
		raw, _ := json.Marshal(card)
		if strings.Contains(string(raw), strings.TrimPrefix(w.agentURL, "http://")) {
			t.Errorf("the card names the agent's address: %s", raw)
		}
		if len(card.SupportedInterfaces) != 1 || card.SupportedInterfaces[0].URL != w.gw.URL+"/a2a/travel" ||
			card.SupportedInterfaces[0].ProtocolBinding != a2a.TransportProtocolJSONRPC {
			t.Errorf("interfaces = %+v", card.SupportedInterfaces)
		}
		if card.Capabilities.PushNotifications || !card.Capabilities.ExtendedAgentCard || len(card.Signatures) != 0 {
			t.Errorf("capabilities = %+v", card.Capabilities)
		}
		if _, ok := card.SecuritySchemes["agent-key"]; ok || len(card.SecuritySchemes) != 2 {
			t.Errorf("security schemes = %v, want the gateway's", card.SecuritySchemes)
		}
		var skills []string
		for _, s := range card.Skills {
			skills = append(skills, s.ID)
		}
		if !slices.Equal(skills, []string{"search"}) {
			t.Errorf("skills = %v, want [search] (policy forbids book)", skills)
		}
		ext, err := payer.GetExtendedAgentCard(ctx, &a2a.GetExtendedAgentCardRequest{})
		if err != nil || len(ext.Skills) != 1 || ext.SupportedInterfaces[0].URL != card.SupportedInterfaces[0].URL {
			t.Errorf("extended card = %+v, %v", ext, err)
		}
	})

	var done *a2a.Task
	t.Run("send", func(t *testing.T) {
		res, err := payer.SendMessage(ctx, textMessage("hello"))
		if err != nil {
			t.Fatal(err)
		}
		task, ok := res.(*a2a.Task)
		if !ok || task.Status.State != a2a.TaskStateCompleted || len(task.Artifacts) != 1 || task.Artifacts[0].Parts[0].Text() != "echo: hello" {
			t.Fatalf("result = %#v", res)
		}
		if !strings.HasPrefix(string(task.ID), "g1t.") || !strings.HasPrefix(task.ContextID, "g1c.") {
			t.Errorf("ids %s, %s are not the gateway's", task.ID, task.ContextID)
		}
		done = task
	})

	t.Run("stream", func(t *testing.T) {
		var kinds []string
		var chunks []string
		for ev, err := range payer.SendStreamingMessage(ctx, textMessage("steps:5")) {
			if err != nil {
				t.Fatal(err)
			}
			switch e := ev.(type) {
			case *a2a.Task:
				kinds = append(kinds, "task:"+string(e.Status.State))
			case *a2a.TaskStatusUpdateEvent:
				kinds = append(kinds, "status:"+string(e.Status.State))
			case *a2a.TaskArtifactUpdateEvent:
				chunks = append(chunks, e.Artifact.Parts[0].Text())
				kinds = append(kinds, "artifact")
			}
		}
		want := []string{"task:" + string(a2a.TaskStateSubmitted), "status:" + string(a2a.TaskStateWorking), "artifact", "artifact", "artifact", "artifact", "artifact", "status:" + string(a2a.TaskStateCompleted)}
		if !slices.Equal(kinds, want) {
			t.Errorf("events %v, want %v", kinds, want)
		}
		if !slices.Equal(chunks, []string{"chunk 0", "chunk 1", "chunk 2", "chunk 3", "chunk 4"}) {
			t.Errorf("chunks out of order: %v", chunks)
		}
	})

	t.Run("get and list", func(t *testing.T) {
		got, err := payer.GetTask(ctx, &a2a.GetTaskRequest{ID: done.ID})
		if err != nil || got.ID != done.ID || got.Status.State != a2a.TaskStateCompleted {
			t.Fatalf("get = %+v, %v", got, err)
		}
		list, err := payer.ListTasks(ctx, &a2a.ListTasksRequest{ContextID: done.ContextID})
		if err != nil || len(list.Tasks) != 1 || list.Tasks[0].ID != done.ID {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if _, err := payer.ListTasks(ctx, &a2a.ListTasksRequest{}); !errors.Is(err, a2a.ErrInvalidParams) {
			t.Errorf("an unfiltered list: %v, want invalid params", err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		var id a2a.TaskID
		var states []a2a.TaskState
		for ev, err := range payer.SendStreamingMessage(ctx, textMessage("wait:cancel-me")) {
			if err != nil {
				t.Fatal(err)
			}
			switch e := ev.(type) {
			case *a2a.Task:
				id = e.ID
			case *a2a.TaskStatusUpdateEvent:
				states = append(states, e.Status.State)
				if e.Status.State == a2a.TaskStateWorking {
					task, err := payer.CancelTask(ctx, &a2a.CancelTaskRequest{ID: id})
					if err != nil || task.ID != id || task.Status.State != a2a.TaskStateCanceled {
						t.Errorf("cancel = %+v, %v", task, err)
					}
				}
			}
		}
		if states[len(states)-1] != a2a.TaskStateCanceled {
			t.Errorf("states %v, want the stream to end canceled", states)
		}
	})

	t.Run("resubscribe after a dropped stream", func(t *testing.T) {
		sctx, drop := context.WithCancel(ctx)
		var id a2a.TaskID
		for ev, err := range payer.SendStreamingMessage(sctx, textMessage("wait:resume")) {
			if err != nil {
				t.Fatal(err)
			}
			if task, ok := ev.(*a2a.Task); ok {
				id = task.ID
			}
			if st, ok := ev.(*a2a.TaskStatusUpdateEvent); ok && st.Status.State == a2a.TaskStateWorking {
				break
			}
		}
		drop()
		var got []string
		for ev, err := range payer.SubscribeToTask(ctx, &a2a.SubscribeToTaskRequest{ID: id}) {
			if err != nil {
				t.Fatal(err)
			}
			switch e := ev.(type) {
			case *a2a.Task:
				got = append(got, "task:"+string(e.Status.State))
				release(t, w.agentURL, "resume")
			case *a2a.TaskArtifactUpdateEvent:
				got = append(got, "artifact:"+e.Artifact.Parts[0].Text())
			case *a2a.TaskStatusUpdateEvent:
				got = append(got, "status:"+string(e.Status.State))
			}
		}
		if len(got) < 3 || got[len(got)-2] != "artifact:released" || got[len(got)-1] != "status:"+string(a2a.TaskStateCompleted) {
			t.Errorf("resubscribed events %v, want the artifact and completion", got)
		}
	})

	marketer, _ := w.client(t, ctx, configtest.MarketerKey, "travel", false)
	t.Run("policy denies with an A2A error", func(t *testing.T) {
		_, err := marketer.SendMessage(ctx, textMessage("hello"))
		if !errors.Is(err, a2a.ErrUnauthorized) {
			t.Fatalf("marketer's send: %v, want the SDK's unauthorized error", err)
		}
		_, err = payer.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("x")), Metadata: map[string]any{"skill": "book"}})
		if !errors.Is(err, a2a.ErrUnauthorized) || !strings.Contains(err.Error(), "no-booking") {
			t.Fatalf("booking: %v, want a denial naming the policy", err)
		}
	})

	t.Run("another agent's task is not found", func(t *testing.T) {
		_, err := marketer.GetTask(ctx, &a2a.GetTaskRequest{ID: done.ID})
		if !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("marketer reading payer's task: %v, want task not found", err)
		}
		_, err = marketer.ListTasks(ctx, &a2a.ListTasksRequest{ContextID: done.ContextID})
		if !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("marketer listing payer's context: %v, want task not found", err)
		}
		// A raw or forged id is unknown too.
		if _, err := payer.GetTask(ctx, &a2a.GetTaskRequest{ID: "not-a-gateway-id"}); !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("a raw id: %v", err)
		}
	})

	t.Run("push notifications are refused", func(t *testing.T) {
		_, err := payer.CreateTaskPushConfig(ctx, &a2a.PushConfig{TaskID: done.ID, URL: "https://hook.example/x"})
		if !errors.Is(err, a2a.ErrPushNotificationNotSupported) {
			t.Fatalf("push config: %v", err)
		}
	})

	t.Run("0.3 agent with a 0.3 client", func(t *testing.T) {
		old, card := w.client(t, ctx, configtest.PayerKey, "legacy", true)
		if card.SupportedInterfaces[0].URL != w.gw.URL+"/a2a/legacy" || card.SupportedInterfaces[0].ProtocolVersion != a2av0.Version {
			t.Errorf("legacy card interfaces %+v", card.SupportedInterfaces)
		}
		res, err := old.SendMessage(ctx, textMessage("hi"))
		task, ok := res.(*a2a.Task)
		if err != nil || !ok || task.Status.State != a2a.TaskStateCompleted || !strings.HasPrefix(string(task.ID), "g1t.") {
			t.Fatalf("0.3 send = %#v, %v", res, err)
		}
		n := 0
		for _, err := range old.SendStreamingMessage(ctx, textMessage("steps:2")) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 5 {
			t.Errorf("0.3 stream: %d events, want 5", n)
		}
		got, err := old.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID})
		if err != nil || got.ID != task.ID {
			t.Errorf("0.3 get = %+v, %v", got, err)
		}
		// A 1.0 request to a 0.3 agent is refused: no translation.
		body := `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.gw.URL+"/a2a/legacy", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("A2A-Version", "1.0")
		resp, err := httpClient(t, configtest.PayerKey).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "-32009") {
			t.Errorf("1.0 to a 0.3 agent: %s", b)
		}
	})

	// The agent saw only its own credential.
	for _, auth := range seen(t, w.agentURL) {
		if auth != "Bearer "+agentToken {
			t.Errorf("the agent saw Authorization %q", auth)
		}
	}
	// Every call left a record; a send's names its task and state.
	var sends int
	for _, r := range w.audit.all() {
		if r.GetProtocol() != "a2a" {
			t.Errorf("record of protocol %q", r.GetProtocol())
		}
		if d := r.GetTask(); r.GetMethod() == "SendMessage" && r.GetOutcome() == "ok" && d.GetTaskId() == string(done.ID) {
			sends++
			if d.GetState() != string(a2a.TaskStateCompleted) || d.GetContextId() != done.ContextID || d.GetMessageBytes() == 0 {
				t.Errorf("send record detail %v", d)
			}
		}
	}
	if sends != 1 {
		t.Errorf("%d records of the first send, want 1", sends)
	}
}

func release(t *testing.T, base, key string) {
	t.Helper()
	res, err := http.Post(base+"/control/release/"+key, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}

func seen(t *testing.T, base string) []string {
	t.Helper()
	res, err := http.Get(base + "/control/seen")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out []string
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
