package config

import (
	"maps"
	"net/netip"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// entities builds the one entity store every request of this version
// evaluates against: enabled agents (in their teams), teams, upstreams,
// tools (in their upstreams) and the action entities, so that
// `action in Action::"call_tool"` holds at evaluation time.
func (b *builder) entities() types.EntityMap {
	out := types.EntityMap{}
	for _, a := range b.snap.GetAgents() {
		if a.GetDisabled() {
			continue
		}
		e := agentEntity(a)
		out[e.UID] = e
		if team := a.GetTeam(); team != "" {
			uid := types.NewEntityUID(cedarschema.TypeTeam, types.String(team))
			out[uid] = types.Entity{UID: uid}
		}
	}
	for name, u := range b.c.upstreams {
		uid := upstreamUID(name)
		out[uid] = types.Entity{
			UID: uid,
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(name),
				"protocol": types.String(protocolName(u.GetProtocol())),
			}),
		}
	}
	for action, t := range b.c.tools {
		uid := toolUID(action)
		out[uid] = types.Entity{
			UID:     uid,
			Parents: types.NewEntityUIDSet(upstreamUID(t.Upstream)),
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(t.Name),
				"readOnly": types.Boolean(t.ReadOnly()),
				"version":  types.Long(t.Version),
			}),
		}
	}
	maps.Copy(out, b.c.schema.ActionEntities())
	return out
}

// agentEntity is Agent::"<name>" with its name, owner, labels as tags and
// its team as parent.
func agentEntity(a *configv1.Agent) types.Entity {
	tags := types.RecordMap{}
	for k, v := range a.GetMeta().GetLabels() {
		tags[types.String(k)] = types.String(v)
	}
	e := types.Entity{
		UID: agentUID(a.GetMeta().GetName()),
		Attributes: types.NewRecord(types.RecordMap{
			"name":  types.String(a.GetMeta().GetName()),
			"owner": types.String(a.GetMeta().GetOwner()),
		}),
		Tags: types.NewRecord(tags),
	}
	if team := a.GetTeam(); team != "" {
		e.Parents = types.NewEntityUIDSet(types.NewEntityUID(cedarschema.TypeTeam, types.String(team)))
	}
	return e
}

func agentUID(name string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeAgent, types.String(name))
}

func toolUID(action string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeTool, types.String(action))
}

func upstreamUID(name string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeUpstream, types.String(name))
}

// protocolName is the protocol attribute of an Upstream entity.
func protocolName(p configv1.Protocol) string {
	switch p {
	case configv1.Protocol_PROTOCOL_MCP:
		return "mcp"
	case configv1.Protocol_PROTOCOL_A2A:
		return "a2a"
	case configv1.Protocol_PROTOCOL_LLM:
		return "llm"
	}
	return "unspecified"
}

// netipPrefix is the single-address prefix of addr, Cedar's ipaddr value
// for one host.
func netipPrefix(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, addr.BitLen())
}
