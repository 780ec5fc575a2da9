package demo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tool names.
const (
	ToolGetWeather    = "get_weather"
	ToolListInvoices  = "list_invoices"
	ToolCreateInvoice = "create_invoice"
	ToolSendPayment   = "send_payment"
)

type weatherIn struct {
	City string `json:"city" jsonschema:"city to report on"`
}

type weatherOut struct {
	City     string `json:"city"`
	Forecast string `json:"forecast"`
	TempC    int    `json:"temp_c"`
}

type listInvoicesIn struct {
	Customer string `json:"customer,omitempty" jsonschema:"only this customer's invoices"`
	Limit    int    `json:"limit,omitempty" jsonschema:"at most this many invoices (default all)"`
}

// Invoice is an invoice the demo server keeps in memory.
type Invoice struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	Amount   int    `json:"amount"`
}

type listInvoicesOut struct {
	Invoices []Invoice `json:"invoices"`
}

type createInvoiceIn struct {
	Customer string `json:"customer" jsonschema:"customer to bill"`
	Amount   int    `json:"amount" jsonschema:"amount in cents"`
}

type sendPaymentIn struct {
	To     string `json:"to" jsonschema:"payee"`
	Amount int    `json:"amount" jsonschema:"amount in cents"`
}

type sendPaymentOut struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
	Status string `json:"status"`
}

// billing is the demo server's state; safe for concurrent use.
type billing struct {
	mu       sync.Mutex
	invoices []Invoice
	payments int
}

func newBilling() *billing {
	return &billing{invoices: []Invoice{
		{ID: "inv-1", Customer: "acme", Amount: 12000},
		{ID: "inv-2", Customer: "globex", Amount: 4500},
	}}
}

func ptr[T any](v T) *T { return &v }

// retooler re-registers one tool with a changed definition and the same
// handler.
type retooler func(change func(*mcp.Tool))

// addTool registers t with h and returns how to register it again changed.
func addTool[In, Out any](s *mcp.Server, t *mcp.Tool, h mcp.ToolHandlerFor[In, Out]) retooler {
	base := *t // before AddTool fills in the inferred schemas
	mcp.AddTool(s, t, h)
	return func(change func(*mcp.Tool)) {
		nt := base
		change(&nt)
		mcp.AddTool(s, &nt, h) // replaces the tool; the SDK notifies list_changed
	}
}

// addTools registers the four tools and returns how to change each.
// Annotations describe what each tool really does; a gateway must still
// not trust them alone.
func addTools(s *mcp.Server, b *billing, latency time.Duration, stop <-chan struct{}) map[string]retooler {
	retool := map[string]retooler{}
	wait := func(ctx context.Context) error {
		if latency <= 0 {
			return nil
		}
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("call abandoned: %w", ctx.Err())
		case <-stop:
			return fmt.Errorf("server shutting down")
		}
	}

	retool[ToolGetWeather] = addTool(s, &mcp.Tool{
		Name:        ToolGetWeather,
		Description: "Current weather for a city (made-up data).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in weatherIn) (*mcp.CallToolResult, weatherOut, error) {
		if err := wait(ctx); err != nil {
			return nil, weatherOut{}, err
		}
		out := weatherOut{City: in.City, Forecast: "sunny", TempC: 10 + len(in.City)%15}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{
			Text: fmt.Sprintf("%s: %s, %d°C", out.City, out.Forecast, out.TempC),
		}}}, out, nil
	})

	retool[ToolListInvoices] = addTool(s, &mcp.Tool{
		Name:        ToolListInvoices,
		Description: "List invoices, optionally for one customer.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in listInvoicesIn) (*mcp.CallToolResult, listInvoicesOut, error) {
		if err := wait(ctx); err != nil {
			return nil, listInvoicesOut{}, err
		}
		if in.Limit < 0 {
			return nil, listInvoicesOut{}, fmt.Errorf("limit must not be negative")
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		out := listInvoicesOut{Invoices: []Invoice{}}
		for _, inv := range b.invoices {
			if in.Customer != "" && !strings.EqualFold(inv.Customer, in.Customer) {
				continue
			}
			if in.Limit > 0 && len(out.Invoices) == in.Limit {
				break
			}
			out.Invoices = append(out.Invoices, inv)
		}
		return nil, out, nil
	})

	retool[ToolCreateInvoice] = addTool(s, &mcp.Tool{
		Name:        ToolCreateInvoice,
		Description: "Create an invoice for a customer.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in createInvoiceIn) (*mcp.CallToolResult, Invoice, error) {
		if err := wait(ctx); err != nil {
			return nil, Invoice{}, err
		}
		if in.Amount <= 0 {
			return nil, Invoice{}, fmt.Errorf("amount must be positive")
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		inv := Invoice{ID: fmt.Sprintf("inv-%d", len(b.invoices)+1), Customer: in.Customer, Amount: in.Amount}
		b.invoices = append(b.invoices, inv)
		return nil, inv, nil
	})

	retool[ToolSendPayment] = addTool(s, &mcp.Tool{
		Name:        ToolSendPayment,
		Description: "Send a payment (pretend: no money moves).",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in sendPaymentIn) (*mcp.CallToolResult, sendPaymentOut, error) {
		if err := wait(ctx); err != nil {
			return nil, sendPaymentOut{}, err
		}
		if in.Amount <= 0 {
			return nil, sendPaymentOut{}, fmt.Errorf("amount must be positive")
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.payments++
		return nil, sendPaymentOut{ID: fmt.Sprintf("pay-%d", b.payments), To: in.To, Amount: in.Amount, Status: "sent"}, nil
	})
	return retool
}
