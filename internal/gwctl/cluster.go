package gwctl

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) clusterCommand() *cobra.Command {
	cmd := group("cluster", "Show and change control-plane membership")
	cmd.AddCommand(a.clusterStatus(), a.clusterJoin(), a.clusterRemove())
	return cmd
}

func (a *app) clusterStatus() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's members, leader and configuration version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetClusterStatusResponse], error) {
					return s.Cluster.GetClusterStatus(ctx, connect.NewRequest(&adminv1.GetClusterStatusRequest{}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				answered := fmt.Sprintf("%s (applied index %d)", resp.GetNodeId(), resp.GetAppliedIndex())
				if resp.GetDev() {
					answered += ", dev mode (plaintext)"
				}
				leader := resp.GetLeaderId()
				if leader == "" {
					leader = "none (no quorum?)"
				}
				if err := p.fields([]field{
					{"Cluster", resp.GetClusterId()},
					{"Leader", leader},
					{"Version", clusterVersionText(resp.GetClusterVersion())},
					{"Config version", fmt.Sprint(resp.GetConfigVersion())},
					{"CA fingerprint", resp.GetCaFingerprint()},
					{"Answered by", answered},
				}); err != nil {
					return err
				}
				if err := p.text("\n"); err != nil {
					return err
				}
				return printMembers(p, resp.GetMembers())
			})
		},
	}
}

func printMembers(p *printer, members []*adminv1.ClusterMember) error {
	rows := make([][]string, 0, len(members))
	for _, m := range members {
		leader := ""
		if m.GetLeader() {
			leader = "*"
		}
		rows = append(rows, []string{m.GetNodeId(), leader, m.GetSuffrage(), versionText(m.GetMaxClusterVersion()), m.GetRaftAddr(), m.GetApiAddr(), timeText(m.GetLastContact())})
	}
	return p.table([]string{"NODE", "LEADER", "SUFFRAGE", "VERSION", "RAFT ADDRESS", "API ADDRESS", "LAST CONTACT"}, rows)
}

// clusterVersionText shows the cluster version every voter supports.
func clusterVersionText(v uint32) string {
	if v == 0 {
		return "- (the server predates cluster versions)"
	}
	return fmt.Sprintf("%d (the cluster version every voter supports)", v)
}

// versionText shows a cluster version; 0 comes from a server that predates
// cluster versions.
func versionText(v uint32) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

func (a *app) clusterJoin() *cobra.Command {
	var req adminv1.AddNodeRequest
	cmd := &cobra.Command{
		Use:   "join --node-id ID --raft-addr HOST:PORT --api-addr HOST:PORT",
		Short: "Add a running node (with a cluster certificate) as a voter",
		Long: `Adds a node to the Raft configuration as a voter. The node must already be
running with a cluster certificate (a new node normally joins itself with
"controlplane --join"); use this to re-add a node that was removed. Adding a
node that is already a member with the same address changes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.AddNodeResponse], error) {
					return s.Cluster.AddNode(ctx, connect.NewRequest(&req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if err := p.linef("node %q added", req.GetNodeId()); err != nil {
					return err
				}
				return printMembers(p, resp.GetMembers())
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.NodeId, "node-id", "", "id of the node")
	f.StringVar(&req.RaftAddr, "raft-addr", "", "the node's Raft address (host:port)")
	f.StringVar(&req.ApiAddr, "api-addr", "", "the node's API address (host:port)")
	for _, name := range []string{"node-id", "raft-addr", "api-addr"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (a *app) clusterRemove() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE_ID",
		Short: "Remove a node from the Raft configuration",
		Args:  exactArgs("NODE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.RemoveNodeResponse], error) {
					return s.Cluster.RemoveNode(ctx, connect.NewRequest(&adminv1.RemoveNodeRequest{NodeId: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				if err := p.linef("node %q removed", args[0]); err != nil {
					return err
				}
				return printMembers(p, resp.GetMembers())
			})
		},
	}
}
