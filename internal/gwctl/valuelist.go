package gwctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// maxValueFileBytes bounds --from-file: the API's 10,000 values of at most
// 256 bytes, one per line, with room to spare.
const maxValueFileBytes = 4 << 20

func (a *app) valueListCommand() *cobra.Command {
	cmd := group("valuelist", "Manage value lists: named sets of strings policies read as List::\"NAME\"")
	cmd.AddCommand(a.valueListCreate(), a.valueListGet(), a.valueListList(), a.valueListAdd(), a.valueListRemove(), a.valueListDelete(),
		a.valueListLearn(), a.valueListUnlearn(), a.valueListApprove(), a.valueListForget())
	return cmd
}

func (a *app) valueListCreate() *cobra.Command {
	var (
		meta     metaFlags
		values   []string
		fromFile string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--value V]... [--from-file FILE]",
		Short: "Create a value list",
		Long: `Creates a value list that policies read as List::"NAME", for example
  List::"approved-payees".values.contains(context.arguments.to)
--from-file reads one value per line (blank lines are skipped; spaces are
kept). A list holds at most 10,000 values of 1-256 bytes, without duplicates;
it is stored sorted.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			all := append([]string(nil), values...)
			if fromFile != "" {
				fv, err := readValueFile(fromFile)
				if err != nil {
					return err
				}
				all = append(all, fv...)
			}
			list := &configv1.ValueList{Meta: m, Values: all}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.CreateValueListResponse], error) {
					return s.ValueList.CreateValueList(ctx, connect.NewRequest(&adminv1.CreateValueListRequest{ValueList: list}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q created with %d values", args[0], len(resp.GetValueList().GetValues()))
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&values, "value", nil, "a value (repeatable)")
	f.StringVar(&fromFile, "from-file", "", "read values from a file, one per line")
	return cmd
}

// readValueFile reads one value per line, skipping blank lines.
func readValueFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read --from-file: %w", err)
	}
	defer f.Close()
	return readValues(f, name)
}

func readValues(r io.Reader, what string) ([]string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxValueFileBytes+1))
	sc.Buffer(make([]byte, 0, 4096), maxValueFileBytes+1)
	var out []string
	read := 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		if v := strings.TrimSuffix(sc.Text(), "\r"); v != "" {
			out = append(out, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if read > maxValueFileBytes {
		return nil, fmt.Errorf("%s is over %d MiB", what, maxValueFileBytes>>20)
	}
	return out, nil
}

func (a *app) valueListGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a value list, its values, and what it learned",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetValueListResponse], error) {
					return s.ValueList.GetValueList(ctx, connect.NewRequest(&adminv1.GetValueListRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				l := resp.GetValueList()
				fs := append(metaFields(l.GetMeta(), "Name"), field{"Values", fmt.Sprint(len(l.GetValues()))})
				if err := p.fields(append(fs, metaTrailer(l.GetMeta())...)); err != nil {
					return err
				}
				for _, v := range l.GetValues() {
					if err := p.linef("  %s", cell(v)); err != nil {
						return err
					}
				}
				return learningLines(p, resp.GetLearning())
			})
		},
	}
}

func (a *app) valueListList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List value lists",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				lists, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.ValueList, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListValueListsResponse], error) {
						return s.ValueList.ListValueLists(ctx, connect.NewRequest(&adminv1.ListValueListsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetValueLists(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListValueListsResponse{ValueLists: lists})
				}
				rows := make([][]string, 0, len(lists))
				for _, l := range lists {
					rows = append(rows, []string{l.GetMeta().GetName(), fmt.Sprint(len(l.GetValues())),
						l.GetMeta().GetOwner(), timeText(l.GetMeta().GetUpdateTime()), fmt.Sprint(l.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "VALUES", "OWNER", "UPDATED", "REVISION"}, rows)
			})
		},
	}
}

// minValueArgs wants a list name and at least one value.
func minValueArgs(cmd *cobra.Command, args []string) error {
	if len(args) >= 2 {
		return nil
	}
	return &usageError{cmd: cmd, err: fmt.Errorf("%q needs NAME VALUE... (got %d arguments)", cmd.CommandPath(), len(args))}
}

func (a *app) valueListAdd() *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME VALUE...",
		Short: "Add values to a value list (values already there are kept once)",
		Args:  minValueArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.AddValuesResponse], error) {
					return s.ValueList.AddValues(ctx, connect.NewRequest(&adminv1.AddValuesRequest{Name: args[0], Values: args[1:]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q now has %d values", args[0], len(resp.GetValueList().GetValues()))
			})
		},
	}
}

func (a *app) valueListRemove() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME VALUE...",
		Short: "Remove values from a value list (values not there are ignored)",
		Args:  minValueArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RemoveValuesResponse], error) {
					return s.ValueList.RemoveValues(ctx, connect.NewRequest(&adminv1.RemoveValuesRequest{Name: args[0], Values: args[1:]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q now has %d values", args[0], len(resp.GetValueList().GetValues()))
			})
		},
	}
}

func (a *app) valueListDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a value list (refused while a policy set refers to it)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteValueListResponse], error) {
					return s.ValueList.DeleteValueList(ctx, connect.NewRequest(&adminv1.DeleteValueListRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("value list %q deleted", args[0])
			})
		},
	}
}
