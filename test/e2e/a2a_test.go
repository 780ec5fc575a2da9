package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// a2aPolicy: the ops team may do anything with remote agents; the dev team
// may only read tasks (so it meets other agents' task ids).
const a2aPolicy = `@id("ops-agents")
permit(principal in Team::"ops", action, resource is RemoteAgent);
@id("dev-reads")
permit(principal in Team::"dev", action in Action::"a2a_read", resource is RemoteAgent);
`

// a2aGateway is a gateway with the test A2A agent (a server of the
// official Go SDK) registered as upstream "travel" and its card approved.
type a2aGateway struct {
	*gateway
	agent *harness.A2AAgent
}

func startA2AGateway(t *testing.T, dataplanes ...string) *a2aGateway {
	t.Helper()
	if len(dataplanes) == 0 {
		dataplanes = []string{"dp1"}
	}
	g := &a2aGateway{gateway: startGateway(t, 1, dataplanes...)}
	token := "agt_" + randomHex(t, 16)
	g.agent = harness.StartA2AAgent(t, harness.A2AAgentOptions{Token: token})
	g.gwctl(t, "secret", "set", "travel-token", "--hosts", "127.0.0.1", "--from-file", g.writeFile(t, "travel.secret", token))
	g.gwctl(t, "upstream", "add", "travel", "--protocol", "a2a", "--url", g.agent.URL, "--bearer-secret", "travel-token")

	// Discovery shows the card, new; approval needs the operator's class.
	var found struct {
		Tools []discovered `json:"tools"`
	}
	harness.GwctlJSON(t, g.env(), &found, "upstream", "discover", "travel", "-o", "json", "--timeout", "20s")
	if len(found.Tools) != 1 || found.Tools[0].Name != "agent-card" || found.Tools[0].Status != "new" || !strings.Contains(string(found.Tools[0].Definition), "Travel Agent") {
		t.Fatalf("discover travel: %+v", found.Tools)
	}
	r := harness.Gwctl(t, g.env(), "upstream", "approve-card", "travel", "--timeout", "20s")
	if r.OK() || !strings.Contains(r.Stderr, "--class is required") {
		t.Fatalf("approve-card without --class: %s", r)
	}
	g.approveCard(t, "mutating")
	g.awaitVersion(t, g.applyPolicy(t, "a2a", a2aPolicy))
	return g
}

// approveCard approves the agent's live card and waits until the data
// plane serves it.
func (g *a2aGateway) approveCard(t *testing.T, class string) {
	t.Helper()
	var out struct {
		Pin revisioned `json:"pin"`
	}
	harness.GwctlJSON(t, g.env(), &out, "upstream", "approve-card", "travel", "--class", class, "-o", "json", "--timeout", "20s")
	g.awaitVersion(t, uint64(out.Pin.Meta.Revision))
}

func (g *a2aGateway) awaitVersion(t *testing.T, v uint64) {
	t.Helper()
	for _, dp := range g.dps {
		awaitVersion(t, dp, v, 20*time.Second)
	}
}

// endpoint is the first data plane's URL of the travel agent.
func (g *a2aGateway) endpoint() string { return g.dps[0].URL + "/a2a/travel" }

// bearerRT adds a fixed bearer token to every request.
type bearerRT struct {
	token string
	base  http.RoundTripper
}

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func keyClient(t *testing.T, key string) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: bearerRT{token: key, base: tr}}
}

// sdkClient resolves the travel agent's card through the gateway as key
// and builds the official Go SDK's client from it.
func (g *a2aGateway) sdkClient(t *testing.T, ctx context.Context, key string) (*a2aclient.Client, *a2a.AgentCard) {
	t.Helper()
	return g.sdkClientAt(t, ctx, key, g.endpoint())
}

// sdkClientAt is sdkClient through the agent's URL on another data plane.
func (g *a2aGateway) sdkClientAt(t *testing.T, ctx context.Context, key, endpoint string) (*a2aclient.Client, *a2a.AgentCard) {
	t.Helper()
	hc := keyClient(t, key)
	card, err := (&agentcard.Resolver{Client: hc}).Resolve(ctx, endpoint)
	if err != nil {
		t.Fatalf("resolve the card through the gateway: %v", err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	return c, card
}

func say(text string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
}

// TestA2AGoSDK: an agent on the official Go SDK calls the remote agent
// through a real data plane: the card names only the gateway, send,
// stream (every update, in order), get, list, cancel, subscribing again
// after a dropped stream; an agent policy denies gets the SDK's
// unauthorized error and cannot read another agent's task; every call is
// audited with its task; the agent sees only its own credential. Task ids
// hold on every data plane, which share no state: the second data plane
// serves the owner its task and refuses it to the other agent.
func TestA2AGoSDK(t *testing.T) {
	g := startA2AGateway(t, "dp1", "dp2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ops, card := g.sdkClient(t, ctx, g.opsKey)

	raw, _ := json.Marshal(card)
	if strings.Contains(string(raw), g.agent.Addr) || len(card.SupportedInterfaces) != 1 || card.SupportedInterfaces[0].URL != g.endpoint() {
		t.Fatalf("the card names more than the gateway: %s", raw)
	}
	if card.Capabilities.PushNotifications || len(card.Skills) != 2 {
		t.Errorf("card capabilities %+v, skills %+v", card.Capabilities, card.Skills)
	}

	res, err := ops.SendMessage(ctx, say("hello"))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	task, ok := res.(*a2a.Task)
	if !ok || task.Status.State != a2a.TaskStateCompleted || task.Artifacts[0].Parts[0].Text() != "echo: hello" {
		t.Fatalf("send result %#v", res)
	}

	var events []string
	for ev, err := range ops.SendStreamingMessage(ctx, say("steps:4")) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		events = append(events, eventName(ev))
	}
	want := []string{"task:TASK_STATE_SUBMITTED", "status:TASK_STATE_WORKING", "artifact:chunk 0", "artifact:chunk 1", "artifact:chunk 2", "artifact:chunk 3", "status:TASK_STATE_COMPLETED"}
	if !slices.Equal(events, want) {
		t.Errorf("stream events %v, want %v", events, want)
	}

	if got, err := ops.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID}); err != nil || got.Status.State != a2a.TaskStateCompleted {
		t.Errorf("get: %+v, %v", got, err)
	}
	if list, err := ops.ListTasks(ctx, &a2a.ListTasksRequest{ContextID: task.ContextID}); err != nil || len(list.Tasks) != 1 || list.Tasks[0].ID != task.ID {
		t.Errorf("list: %+v, %v", list, err)
	}

	// Cancel a waiting task from within its stream.
	var last a2a.TaskState
	var waiting a2a.TaskID
	for ev, err := range ops.SendStreamingMessage(ctx, say("wait:go-cancel")) {
		if err != nil {
			t.Fatalf("stream to cancel: %v", err)
		}
		switch e := ev.(type) {
		case *a2a.Task:
			waiting = e.ID
		case *a2a.TaskStatusUpdateEvent:
			last = e.Status.State
			if last == a2a.TaskStateWorking {
				if c, err := ops.CancelTask(ctx, &a2a.CancelTaskRequest{ID: waiting}); err != nil || c.Status.State != a2a.TaskStateCanceled {
					t.Errorf("cancel: %+v, %v", c, err)
				}
			}
		}
	}
	if last != a2a.TaskStateCanceled {
		t.Errorf("the cancelled task's stream ended in %s", last)
	}

	// Drop a stream; subscribe again; the task's remaining updates arrive.
	sctx, drop := context.WithCancel(ctx)
	var resumed a2a.TaskID
	for ev, err := range ops.SendStreamingMessage(sctx, say("wait:go-resume")) {
		if err != nil {
			t.Fatalf("stream to drop: %v", err)
		}
		if tk, ok := ev.(*a2a.Task); ok {
			resumed = tk.ID
		}
		if eventName(ev) == "status:TASK_STATE_WORKING" {
			break
		}
	}
	drop()
	var again []string
	for ev, err := range ops.SubscribeToTask(ctx, &a2a.SubscribeToTaskRequest{ID: resumed}) {
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		if _, ok := ev.(*a2a.Task); ok {
			g.agent.Release(t, "go-resume")
		}
		again = append(again, eventName(ev))
	}
	if len(again) < 3 || again[len(again)-2] != "artifact:released" || again[len(again)-1] != "status:TASK_STATE_COMPLETED" {
		t.Errorf("events after subscribing again: %v", again)
	}

	// The dev agent: policy denies it a send, and the ops agent's task is
	// unknown to it.
	dev, _ := g.sdkClient(t, ctx, g.devKey)
	if _, err := dev.SendMessage(ctx, say("hello")); !errors.Is(err, a2a.ErrUnauthorized) || !strings.Contains(err.Error(), "default deny") {
		t.Errorf("dev's send: %v, want the SDK's unauthorized error", err)
	}
	if _, err := dev.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID}); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Errorf("dev reading ops' task: %v, want task not found", err)
	}
	other := g.dps[1].URL + "/a2a/travel"
	opsThere, _ := g.sdkClientAt(t, ctx, g.opsKey, other)
	if got, err := opsThere.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID}); err != nil || got.ID != task.ID || got.Status.State != a2a.TaskStateCompleted {
		t.Errorf("ops reading its task on the other data plane: %+v, %v", got, err)
	}
	devThere, _ := g.sdkClientAt(t, ctx, g.devKey, other)
	if _, err := devThere.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID}); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Errorf("dev reading ops' task on the other data plane: %v, want task not found", err)
	}

	awaitAudit(t, g.dps[0], func(r harness.AuditRecord) bool {
		return r.Method == "SendMessage" && r.Agent == "ops-agent" && r.Upstream == "travel" && r.Outcome == "ok" &&
			r.Task.ID == string(task.ID) && r.Task.ContextID == task.ContextID && r.Task.State == "TASK_STATE_COMPLETED" && r.Task.MessageBytes > 0
	})
	awaitAudit(t, g.dps[0], func(r harness.AuditRecord) bool {
		return r.Method == "SendStreamingMessage" && r.Outcome == "ok" && r.Task.Events == 6 && r.Task.State == "TASK_STATE_COMPLETED"
	})
	awaitAudit(t, g.dps[0], func(r harness.AuditRecord) bool {
		return r.Method == "GetTask" && r.Agent == "dev-agent" && r.Reason == "unknown_task" && r.Task.ID == string(task.ID)
	})
	awaitAudit(t, g.dps[0], func(r harness.AuditRecord) bool {
		return r.Method == "SendMessage" && r.Agent == "dev-agent" && r.Decision == "deny"
	})
	seen, err := g.agent.Seen()
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range seen {
		if strings.Contains(auth, g.opsKey) || strings.Contains(auth, g.devKey) || !strings.HasPrefix(auth, "Bearer agt_") {
			t.Fatalf("the agent saw Authorization %q", auth)
		}
	}
}

func eventName(ev a2a.Event) string {
	switch e := ev.(type) {
	case *a2a.Task:
		return "task:" + string(e.Status.State)
	case *a2a.TaskStatusUpdateEvent:
		return "status:" + string(e.Status.State)
	case *a2a.TaskArtifactUpdateEvent:
		return "artifact:" + e.Artifact.Parts[0].Text()
	case *a2a.Message:
		return "message"
	}
	return fmt.Sprintf("%T", ev)
}

// TestA2AJavaScriptSDK: the official JavaScript SDK (npm, run by Node)
// through the data plane: card, send, stream, get, list, cancel,
// subscribing again after a dropped stream, a policy refusal and another
// agent's task.
func TestA2AJavaScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (Node 20+): %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "a2ajsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@a2a-js", "sdk")); err != nil {
		t.Fatalf("the JavaScript A2A SDK is not installed: run `npm ci --prefix test/a2ajsclient` (make e2e does): %v", err)
	}
	g := startA2AGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.mjs"), g.endpoint(), g.agent.Base)
	cmd.Env = append(os.Environ(), "PORTCULLIS_AGENT_KEY="+g.opsKey, "PORTCULLIS_OTHER_KEY="+g.devKey)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("a2ajsclient failed: %v\n%s", err, stderr.String())
	}
	var got struct {
		CardText string `json:"cardText"`
		Send     struct {
			ID, ContextID, State, Artifact string
		} `json:"send"`
		Stream       []string `json:"stream"`
		Get          struct{ ID, State string }
		List         []string `json:"list"`
		Cancel       []string `json:"cancel"`
		Canceled     string   `json:"canceled"`
		Resubscribed []string `json:"resubscribed"`
		Denied       struct{ Name, Message string }
		Foreign      struct{ Name, Message string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("a2ajsclient output %q: %v", out, err)
	}
	t.Logf("a2ajsclient: %s", out)
	if strings.Contains(got.CardText, g.agent.Addr) || !strings.Contains(got.CardText, g.endpoint()) {
		t.Errorf("the card names more than the gateway: %s", got.CardText)
	}
	if got.Send.State != "COMPLETED" || got.Send.Artifact != "echo: hello" || !strings.HasPrefix(got.Send.ID, "g1t.") {
		t.Errorf("send %+v", got.Send)
	}
	if want := []string{"task:SUBMITTED", "status:WORKING", "artifact:chunk 0", "artifact:chunk 1", "artifact:chunk 2", "status:COMPLETED"}; !slices.Equal(got.Stream, want) {
		t.Errorf("stream %v, want %v", got.Stream, want)
	}
	if got.Get.ID != got.Send.ID || got.Get.State != "COMPLETED" || !slices.Equal(got.List, []string{got.Send.ID}) {
		t.Errorf("get %+v, list %v", got.Get, got.List)
	}
	if got.Canceled != "CANCELED" || len(got.Cancel) == 0 || got.Cancel[len(got.Cancel)-1] != "status:CANCELED" {
		t.Errorf("cancel %v → %s", got.Cancel, got.Canceled)
	}
	if n := len(got.Resubscribed); n < 3 || got.Resubscribed[n-2] != "artifact:released" || got.Resubscribed[n-1] != "status:COMPLETED" {
		t.Errorf("resubscribed %v", got.Resubscribed)
	}
	if !strings.Contains(got.Denied.Message, "default deny") {
		t.Errorf("denied %+v", got.Denied)
	}
	if got.Foreign.Name != "JsonRpcTaskNotFoundError" && got.Foreign.Name != "TaskNotFoundError" {
		t.Errorf("another agent's task: %+v", got.Foreign)
	}
}

// TestA2ACardDrift: a card change upstream quarantines the agent — its
// card and every call refused — until an operator approves the new card.
func TestA2ACardDrift(t *testing.T) {
	g := startA2AGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ops, _ := g.sdkClient(t, ctx, g.opsKey)
	if _, err := ops.SendMessage(ctx, say("hello")); err != nil {
		t.Fatalf("send before the change: %v", err)
	}

	g.agent.AddSkill(t, "exfiltrate")
	// A card request re-checks the agent when its last check is older
	// than the data plane's list interval: poll until it is refused.
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := getCard(t, ctx, g.endpoint(), g.opsKey)
		if status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changed card is still served: %d %s", status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	_, err := ops.SendMessage(ctx, say("hello"))
	if err == nil || !strings.Contains(err.Error(), "changed its agent card") || !strings.Contains(err.Error(), "gwctl upstream approve-card travel") {
		t.Fatalf("send to a quarantined agent: %v", err)
	}
	awaitAudit(t, g.dps[0], func(r harness.AuditRecord) bool { return r.Upstream == "travel" && r.Reason == "quarantined" })
	var found struct {
		Tools []discovered `json:"tools"`
	}
	harness.GwctlJSON(t, g.env(), &found, "upstream", "discover", "travel", "-o", "json", "--timeout", "20s")
	if found.Tools[0].Status != "changed" {
		t.Errorf("discover after the change: %+v", found.Tools[0])
	}

	g.approveCard(t, "mutating")
	status, body := getCard(t, ctx, g.endpoint(), g.opsKey)
	if status != http.StatusOK || !strings.Contains(body, "exfiltrate") {
		t.Fatalf("card after approval: %d %s", status, body)
	}
	if _, err := ops.SendMessage(ctx, say("hello")); err != nil {
		t.Fatalf("send after approval: %v", err)
	}
}

func getCard(t *testing.T, ctx context.Context, endpoint, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/.well-known/agent-card.json", nil)
	res, err := keyClient(t, key).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
