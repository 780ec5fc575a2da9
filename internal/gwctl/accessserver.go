package gwctl

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

// toolResource is the AccessService resource of a tool.
const toolResource = "Tool"

// serverAccess asks the control plane's AccessService, which decides with
// the gateway's policy engine over its current configuration.
type serverAccess struct {
	c *client.Client
}

var _ access.Decider = serverAccess{}

// Check implements access.Decider.
func (s serverAccess) Check(ctx context.Context, q access.Question) (access.Answer, error) {
	msg := &adminv1.CheckRequest{
		Agent:         q.Agent,
		User:          accessUser(q.User),
		Action:        q.Tool,
		Resource:      &adminv1.AccessResource{Type: toolResource, Id: q.Tool},
		ArgumentsJson: string(q.Arguments),
		Protocol:      q.Protocol,
		Degraded:      q.Degraded,
		Findings:      q.Findings,
	}
	if !q.Time.IsZero() {
		msg.Time = timestamppb.New(q.Time)
	}
	if q.SourceIP.IsValid() {
		msg.SourceIp = q.SourceIP.String()
	}
	res, err := client.Read(ctx, s.c, func(ctx context.Context, svc *client.Services) (*connect.Response[adminv1.CheckResponse], error) {
		return svc.Access.Check(ctx, connect.NewRequest(msg))
	})
	if err != nil {
		return access.Answer{}, err
	}
	out := access.Answer{
		Allowed:          res.GetAllowed(),
		Errors:           res.GetErrors(),
		InvalidArguments: res.GetInvalidArguments(),
		Version:          res.GetConfigVersion(),
		Policies:         make([]access.PolicyRef, 0, len(res.GetPolicies())),
	}
	for _, p := range res.GetPolicies() {
		out.Policies = append(out.Policies, access.PolicyRef{ID: p.GetId(), Effect: p.GetEffect(), File: p.GetFile(), Line: int(p.GetLine()), Column: int(p.GetColumn())})
	}
	return out, nil
}

// WhoCan implements access.Decider.
func (s serverAccess) WhoCan(ctx context.Context, q access.WhoCanQuestion) (access.WhoCanAnswer, error) {
	msg := &adminv1.WhoCanRequest{
		Action:   q.Tool,
		Resource: &adminv1.AccessResource{Type: toolResource, Id: q.Tool},
		User:     accessUser(q.User),
		Degraded: q.Degraded,
	}
	res, err := client.Read(ctx, s.c, func(ctx context.Context, svc *client.Services) (*connect.Response[adminv1.WhoCanResponse], error) {
		return svc.Access.WhoCan(ctx, connect.NewRequest(msg))
	})
	if err != nil {
		return access.WhoCanAnswer{}, err
	}
	agents := res.GetAgents()
	if agents == nil {
		agents = []string{}
	}
	return access.WhoCanAnswer{Tool: q.Tool, Agents: agents, Version: res.GetConfigVersion()}, nil
}

func accessUser(u *access.User) *adminv1.AccessUser {
	if u == nil {
		return nil
	}
	return &adminv1.AccessUser{Source: u.Source, Name: u.Name, Email: u.Email, Groups: u.Groups}
}
