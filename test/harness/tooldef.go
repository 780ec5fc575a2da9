package harness

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
)

// LiveToolDefinition returns tool's definition exactly as the MCP server
// at url lists it now (hc carries the server's credential; nil for none).
// Tests pin it so that drift detection finds the pin and the server in
// agreement. It fails the test if the server does not list the tool.
func LiveToolDefinition(t testing.TB, url string, hc *http.Client, tool string) []byte {
	t.Helper()
	if hc == nil {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	c, err := mcpclient.New(mcpclient.Config{URL: url, HTTP: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defs, err := c.ListTools(ctx)
	if err != nil {
		t.Fatalf("list the tools of %s: %v", url, err)
	}
	for _, d := range defs {
		var head struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(d, &head) == nil && head.Name == tool {
			return d
		}
	}
	t.Fatalf("%s does not list %s", url, tool)
	return nil
}
