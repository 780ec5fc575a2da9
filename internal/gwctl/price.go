package gwctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) priceCommand() *cobra.Command {
	cmd := group("price", "Manage model prices: what a million tokens of a model cost, from which date")
	cmd.AddCommand(a.priceSet(), a.priceGet(), a.priceList(), a.priceDelete())
	return cmd
}

// parseMicros reads an amount of the currency ("2.50") as micro-units,
// exactly: at most six decimal places, no sign.
func parseMicros(flag, s string) (int64, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" && frac == "" || len(frac) > 6 || strings.ContainsAny(whole+frac, "+-eE") {
		return 0, fmt.Errorf("invalid --%s %q: want an amount such as 2.50 (at most 6 decimal places)", flag, s)
	}
	if whole == "" {
		whole = "0"
	}
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	if err1 != nil || err2 != nil || w > 1<<40 {
		return 0, fmt.Errorf("invalid --%s %q: want an amount such as 2.50", flag, s)
	}
	return w*1_000_000 + f, nil
}

// microsText renders micro-units as an amount ("2.50").
func microsText(m int64) string {
	s := fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
	s = strings.TrimRight(s, "0")
	if strings.HasSuffix(s, ".") {
		s += "00"
	} else if i := strings.IndexByte(s, '.'); len(s)-i == 2 {
		s += "0"
	}
	return s
}

// parseFrom reads --from: a date (midnight UTC) or an RFC 3339 time.
func parseFrom(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid --from %q: want a date (2026-01-01) or an RFC 3339 time", s)
	}
	return t, nil
}

func (a *app) priceSet() *cobra.Command {
	var input, output, cached, cacheWrite, from string
	cmd := &cobra.Command{
		Use:   "set UPSTREAM/MODEL --in AMOUNT --out AMOUNT [--cached AMOUNT] [--cache-write AMOUNT] [--from DATE]",
		Short: "Set a model's price per million tokens, from a date on",
		Long: `Sets what a million tokens of a model cost, in the currency of every price
table and budget (one currency for the gateway; USD by convention), from
--from on (a date, midnight UTC, or an RFC 3339 time; default: since always).
Earlier and later prices are kept: a call is priced by the price in force
when it started. A price with the same --from is replaced.

--in is the price of a million input tokens, --out of a million output
tokens (reasoning included); --cached of input tokens read from the
provider's prompt cache, --cache-write of input tokens written to it
(Anthropic); both default to --in. There are no built-in prices: a model without one has no cost, and
is refused while a cost budget applies to the caller.

  gwctl price set openai/gpt-4o --in 2.50 --cached 1.25 --out 10.00 --from 2026-01-01`,
		Args: exactArgs("UPSTREAM/MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			upstream, model, ok := strings.Cut(args[0], "/")
			if !ok || upstream == "" || model == "" {
				return fmt.Errorf("%q: name the model as UPSTREAM/MODEL (the upstream's name and the provider's model id)", args[0])
			}
			entry := &configv1.PriceEntry{}
			var err error
			if entry.InputMicros, err = parseMicros("in", input); err != nil {
				return err
			}
			if entry.OutputMicros, err = parseMicros("out", output); err != nil {
				return err
			}
			if cmd.Flags().Changed("cached") {
				v, err := parseMicros("cached", cached)
				if err != nil {
					return err
				}
				entry.CachedInputMicros = &v
			}
			if cmd.Flags().Changed("cache-write") {
				v, err := parseMicros("cache-write", cacheWrite)
				if err != nil {
					return err
				}
				entry.CacheWriteMicros = &v
			}
			if from != "" {
				t, err := parseFrom(from)
				if err != nil {
					return err
				}
				entry.EffectiveTime = timestamppb.New(t)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := setPrice(ctx, c, upstream, model, entry)
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("price of %s set (%d entries)", args[0], len(resp.GetModelPrice().GetPrices()))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "in", "", "per million input tokens")
	f.StringVar(&output, "out", "", "per million output tokens")
	f.StringVar(&cached, "cached", "", "per million cached input tokens (default: --in)")
	f.StringVar(&cacheWrite, "cache-write", "", "per million input tokens written to the cache (default: --in)")
	f.StringVar(&from, "from", "", "when the price starts to apply (default: since always)")
	_ = cmd.MarkFlagRequired("in")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// setPrice adds entry to the model's price table (replacing the entry with
// the same effective time), at the table's revision: a concurrent change
// makes the write fail rather than be lost.
func setPrice(ctx context.Context, c *client.Client, upstream, model string, entry *configv1.PriceEntry) (*adminv1.SetModelPriceResponse, error) {
	name := upstream + "/" + model
	table := &configv1.ModelPrice{Meta: &configv1.ResourceMeta{Name: name}, Upstream: upstream, Model: model}
	var rev uint64
	cur, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetModelPriceResponse], error) {
		return s.Price.GetModelPrice(ctx, connect.NewRequest(&adminv1.GetModelPriceRequest{Name: name}))
	})
	switch {
	case err == nil:
		table = proto.CloneOf(cur.GetModelPrice())
		rev = table.GetMeta().GetRevision()
	case connect.CodeOf(err) != connect.CodeNotFound:
		return nil, err
	}
	at := func(e *configv1.PriceEntry) time.Time {
		if e.GetEffectiveTime() == nil {
			return time.Time{}
		}
		return e.GetEffectiveTime().AsTime()
	}
	table.Prices = slices.DeleteFunc(table.Prices, func(e *configv1.PriceEntry) bool { return at(e).Equal(at(entry)) })
	table.Prices = append(table.Prices, entry)
	slices.SortFunc(table.Prices, func(x, y *configv1.PriceEntry) int { return at(x).Compare(at(y)) })
	resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetModelPriceResponse], error) {
		return s.Price.SetModelPrice(ctx, connect.NewRequest(&adminv1.SetModelPriceRequest{ModelPrice: table, ExpectedRevision: rev}))
	})
	if connect.CodeOf(err) == connect.CodeAborted {
		return nil, errors.New("the price table changed meanwhile; run the command again")
	}
	return resp, err
}

// currentPrice is the entry in force at now, nil when none is yet.
func currentPrice(p *configv1.ModelPrice, now time.Time) *configv1.PriceEntry {
	var cur *configv1.PriceEntry
	for _, e := range p.GetPrices() {
		if e.GetEffectiveTime() == nil || !e.GetEffectiveTime().AsTime().After(now) {
			cur = e
		}
	}
	return cur
}

func priceRow(e *configv1.PriceEntry) []string {
	if e == nil {
		return []string{"-", "-", "-", "-", "-"}
	}
	cached, write := e.GetInputMicros(), e.GetInputMicros()
	if e.CachedInputMicros != nil {
		cached = e.GetCachedInputMicros()
	}
	if e.CacheWriteMicros != nil {
		write = e.GetCacheWriteMicros()
	}
	from := "always"
	if e.GetEffectiveTime() != nil {
		from = e.GetEffectiveTime().AsTime().UTC().Format(time.RFC3339)
	}
	return []string{microsText(e.GetInputMicros()), microsText(cached), microsText(write), microsText(e.GetOutputMicros()), from}
}

func (a *app) priceGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get UPSTREAM/MODEL",
		Short: "Show a model's price table (per million tokens)",
		Args:  exactArgs("UPSTREAM/MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetModelPriceResponse], error) {
					return s.Price.GetModelPrice(ctx, connect.NewRequest(&adminv1.GetModelPriceRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetModelPrice().GetPrices()))
				for _, e := range resp.GetModelPrice().GetPrices() {
					rows = append(rows, priceRow(e))
				}
				return p.table([]string{"INPUT", "CACHED", "CACHE WRITE", "OUTPUT", "FROM"}, rows)
			})
		},
	}
}

func (a *app) priceList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List model prices in force now (per million tokens)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				prices, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.ModelPrice, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListModelPricesResponse], error) {
						return s.Price.ListModelPrices(ctx, connect.NewRequest(&adminv1.ListModelPricesRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetModelPrices(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListModelPricesResponse{ModelPrices: prices})
				}
				now := time.Now()
				rows := make([][]string, 0, len(prices))
				for _, pr := range prices {
					rows = append(rows, append([]string{pr.GetMeta().GetName()}, append(priceRow(currentPrice(pr, now)), fmt.Sprint(len(pr.GetPrices())))...))
				}
				return p.table([]string{"MODEL", "INPUT", "CACHED", "CACHE WRITE", "OUTPUT", "FROM", "ENTRIES"}, rows)
			})
		},
	}
}

func (a *app) priceDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete UPSTREAM/MODEL",
		Short: "Delete a model's price table (its calls then have no cost)",
		Args:  exactArgs("UPSTREAM/MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteModelPriceResponse], error) {
					return s.Price.DeleteModelPrice(ctx, connect.NewRequest(&adminv1.DeleteModelPriceRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("price of %s deleted", args[0])
			})
		},
	}
}
