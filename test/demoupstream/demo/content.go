package demo

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Content of Options.Content: resources and prompts a broker federates.
const (
	ResourceReadme   = "demo://readme"
	TemplateInvoice  = "demo://invoices/{id}"
	PromptSummarize  = "summarize"
	readmeText       = "The demo upstream: weather, invoices and payments."
	invoiceURIPrefix = "demo://invoices/"
)

// addContent registers a resource, a resource template and a prompt.
func addContent(s *mcp.Server) {
	s.AddResource(&mcp.Resource{URI: ResourceReadme, Name: "readme", MIMEType: "text/plain", Description: "What this server offers."},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: readmeText}}}, nil
		})
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: TemplateInvoice, Name: "invoice", MIMEType: "application/json"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			id := strings.TrimPrefix(req.Params.URI, invoiceURIPrefix)
			if id == "" || strings.Contains(id, "/") {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json",
				Text: fmt.Sprintf(`{"id":%q,"amount":1200}`, id)}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: PromptSummarize, Description: "Summarize a topic.",
		Arguments: []*mcp.PromptArgument{{Name: "topic", Required: true}}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user",
				Content: &mcp.TextContent{Text: "Summarize " + req.Params.Arguments["topic"] + " in one paragraph."}}}}, nil
		})
}
