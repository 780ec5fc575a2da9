package gwctl

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) adminLogCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "admin-log",
		Short: "Show the newest admin writes: who, what, when, and how they ended",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return errors.New("--limit must not be negative")
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				events, err := listAdminEvents(ctx, c, limit)
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListAdminEventsResponse{Events: events})
				}
				rows := make([][]string, 0, len(events))
				for _, e := range events {
					result := "ok"
					if e.GetErrorCode() != "" {
						result = e.GetErrorCode()
					}
					if d := e.GetDetail(); d != "" {
						result += ": " + d
					}
					actor := e.GetActor().GetTokenId()
					if r := e.GetActor().GetRole(); r != configv1.Role_ROLE_UNSPECIFIED {
						actor += " (" + enumLabel(r.String(), "ROLE_") + ")"
					}
					rows = append(rows, []string{timeText(e.GetTime()), actor, e.GetMethod(), e.GetKind(), e.GetName(), result})
				}
				return p.table([]string{"TIME", "ACTOR", "METHOD", "KIND", "NAME", "RESULT"}, rows)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many events, newest first (0: all)")
	return cmd
}

// listAdminEvents pages through the log until limit events (0: all).
func listAdminEvents(ctx context.Context, c *client.Client, limit int) ([]*configv1.AdminEvent, error) {
	var events []*configv1.AdminEvent
	seen := map[string]bool{}
	token := ""
	for {
		size := pageSize
		if limit > 0 {
			size = min(size, limit-len(events))
		}
		resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListAdminEventsResponse], error) {
			return s.AdminLog.ListAdminEvents(ctx, connect.NewRequest(&adminv1.ListAdminEventsRequest{PageSize: int32(size), PageToken: token}))
		})
		if err != nil {
			return nil, err
		}
		events = append(events, resp.GetEvents()...)
		if limit > 0 && len(events) >= limit {
			return events[:limit], nil
		}
		token = resp.GetNextPageToken()
		if token == "" {
			return events, nil
		}
		if seen[token] {
			return nil, fmt.Errorf("the server repeated a page token; the listing is incomplete")
		}
		seen[token] = true
	}
}
