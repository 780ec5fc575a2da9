package mcp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
)

type issuers []string

func (i issuers) AuthorizationServers() []string { return append([]string(nil), i...) }

func TestMetadataHandler(t *testing.T) {
	h := mcpgw.NewMetadataHandler(issuers{"https://idp.b.example", "https://idp.a.example"}, mcpgw.WithPublicURL("https://gw.example/"))
	tests := []struct {
		name, method, path string
		status             int
	}{
		{"root", http.MethodGet, mcpgw.MetadataPath, http.StatusOK},
		{"path-suffixed", http.MethodGet, mcpgw.MetadataPath + "/mcp", http.StatusOK},
		{"post refused", http.MethodPost, mcpgw.MetadataPath, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if tt.status != http.StatusOK {
				return
			}
			var doc struct {
				Resource     string   `json:"resource"`
				Servers      []string `json:"authorization_servers"`
				BearerMethod []string `json:"bearer_methods_supported"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Resource != "https://gw.example/mcp" || len(doc.Servers) != 2 || doc.Servers[0] != "https://idp.a.example" ||
				len(doc.BearerMethod) != 1 || doc.BearerMethod[0] != "header" {
				t.Fatalf("metadata = %+v", doc)
			}
		})
	}
}

func TestMetadataHandlerListsNoServersAsAnEmptyArray(t *testing.T) {
	rec := httptest.NewRecorder()
	mcpgw.NewMetadataHandler(issuers(nil)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, mcpgw.MetadataPath, nil))
	if !strings.Contains(rec.Body.String(), `"authorization_servers":[]`) {
		t.Fatalf("metadata %s: authorization_servers must be an array", rec.Body.String())
	}
}

func TestMetadataHandlerRefusesAHostileHost(t *testing.T) {
	h := mcpgw.NewMetadataHandler(issuers{})
	req := httptest.NewRequest(http.MethodGet, mcpgw.MetadataPath, nil)
	req.Host = `evil" onload="x`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d for a hostile Host, want 400", rec.Code)
	}
}
