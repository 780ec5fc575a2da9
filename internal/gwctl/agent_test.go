package gwctl_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/gwctltest"
)

func TestAgentListAcrossPages(t *testing.T) {
	decodeJSON := func(t *testing.T, out string) []byte { return []byte(out) }
	decodeYAML := func(t *testing.T, out string) []byte {
		b, err := yaml.YAMLToJSON([]byte(out))
		if err != nil {
			t.Fatalf("output is not YAML: %v", err)
		}
		return b
	}
	tests := []struct {
		name   string
		format string
		decode func(*testing.T, string) []byte // nil: table
		want   string                          // substring of the raw output
	}{
		{name: "table", format: "table"},
		{name: "json", format: "json", decode: decodeJSON, want: "\"apiKeys\": ["},
		{name: "yaml", format: "yaml", decode: decodeYAML, want: "agents:\n- apiKeys:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gwctltest.NewCluster(t, 1, gwctltest.WithMaxPageSize(2))
			c.AddAgents("alpha", "bravo", "charlie")

			r := gw(t, "--server", c.URLs(), "-o", tt.format, "agent", "list")
			mustSucceed(t, r)
			if r.stderr != "" {
				t.Errorf("stderr = %q", r.stderr)
			}
			if n := len(c.Nodes[0].Requests()); n != 2 {
				t.Errorf("%d ListAgents calls, want 2 pages", n)
			}
			if tt.decode == nil {
				want := "" +
					"NAME      TEAM           OWNER           DISABLED   KEYS   REVISION\n" +
					"alpha     team-alpha     owner-alpha     no         1      1\n" +
					"bravo     team-bravo     owner-bravo     no         1      2\n" +
					"charlie   team-charlie   owner-charlie   no         1      3\n"
				if r.stdout != want {
					t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
				}
				return
			}
			if !strings.Contains(r.stdout, tt.want) {
				t.Errorf("output lacks %q", tt.want)
			}
			var got adminv1.ListAgentsResponse
			if err := protojson.Unmarshal(tt.decode(t, r.stdout), &got); err != nil {
				t.Fatalf("output is not a ListAgentsResponse: %v", err)
			}
			var names []string
			for _, a := range got.GetAgents() {
				names = append(names, a.GetMeta().GetName())
			}
			if strings.Join(names, ",") != "alpha,bravo,charlie" || got.GetNextPageToken() != "" {
				t.Errorf("agents %v, next page token %q", names, got.GetNextPageToken())
			}
		})
	}
}

func TestAgentCreatePrintsKeyOnceAndJSONHasAPIKey(t *testing.T) {
	c := gwctltest.NewCluster(t, 1)
	r := gw(t, "--server", c.URLs(), "-o", "json", "agent", "create", "bot", "--label", "env=prod", "--key-ttl", "30d")
	mustSucceed(t, r)
	var got adminv1.CreateAgentResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.GetApiKey(), "pck_") || !strings.Contains(r.stdout, `"apiKey": "pck_`) {
		t.Errorf("json lacks apiKey:\n%s", r.stdout)
	}
	if got.GetAgent().GetMeta().GetLabels()["env"] != "prod" {
		t.Errorf("labels = %v", got.GetAgent().GetMeta().GetLabels())
	}
	if exp := got.GetAgent().GetApiKeys()[0].GetExpireTime().AsTime(); !exp.Equal(gwctltest.Now.AddDate(0, 0, 30)) {
		t.Errorf("key expires %v, want 30 days after %v", exp, gwctltest.Now)
	}

	r = gw(t, "--server", c.URLs(), "agent", "create", "bot2")
	mustSucceed(t, r)
	if strings.Count(r.stdout, "pck_") != 1 || !strings.Contains(r.stdout, "API key (shown only this once") {
		t.Errorf("table output should show the key once, clearly marked:\n%s", r.stdout)
	}
}
