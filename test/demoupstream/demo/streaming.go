package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tools of Options.StreamingTools: they exercise what a broker must relay
// while a call runs.
const (
	// ToolCount reports progress for each step before answering.
	ToolCount = "count"
	// ToolConfirmTransfer asks the client to confirm (an elicitation)
	// before answering.
	ToolConfirmTransfer = "confirm_transfer"
)

type countIn struct {
	Steps int `json:"steps" jsonschema:"how many progress notifications to send (1-20)"`
}

type confirmIn struct {
	Amount int `json:"amount" jsonschema:"amount in cents to confirm"`
}

// addStreamingTools registers count and confirm_transfer.
func addStreamingTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolCount, Description: "Count to steps, reporting progress at each step.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in countIn) (*mcp.CallToolResult, any, error) {
		if in.Steps < 1 || in.Steps > 20 {
			return errorResult("steps must be between 1 and 20"), nil, nil
		}
		token := req.Params.GetProgressToken()
		for i := 1; i <= in.Steps; i++ {
			if token != nil {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: token, Progress: float64(i), Total: float64(in.Steps), Message: fmt.Sprintf("step %d", i),
				}); err != nil {
					return nil, nil, err
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		return textResult(fmt.Sprintf("counted to %d", in.Steps)), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolConfirmTransfer, Description: "Ask the user to confirm a transfer, then report the answer.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in confirmIn) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
			Message: fmt.Sprintf("Confirm the transfer of %d cents?", in.Amount),
			RequestedSchema: map[string]any{
				"type":       "object",
				"properties": map[string]any{"confirm": map[string]any{"type": "boolean"}},
				"required":   []string{"confirm"},
			},
		})
		if err != nil {
			// The client could not answer: the tool reports it as a
			// tool failure (an isError result), not a protocol error.
			return errorResult("elicitation failed: " + err.Error()), nil, nil //nolint:nilerr // a failed elicitation is the tool's result
		}
		if res.Action == "accept" && res.Content["confirm"] == true {
			return textResult(fmt.Sprintf("transfer of %d confirmed", in.Amount)), nil, nil
		}
		return textResult(fmt.Sprintf("transfer of %d declined (%s)", in.Amount, res.Action)), nil, nil
	})
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func errorResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
