package authz

import (
	"maps"
	"net/netip"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// entities builds the one entity store every request of this version
// evaluates against: enabled agents (in their teams), teams, upstreams,
// tools (in their upstreams), value lists and the action entities, so that
// `action in Action::"call_tool"` holds at evaluation time.
func (b *builder) entities() types.EntityMap {
	out := types.EntityMap{}
	// Cedar values are immutable: the agents of a team share its parent
	// set, and agents without labels one empty tag record.
	teams := map[string]types.EntityUIDSet{}
	for _, a := range b.snap.GetAgents() {
		if a.GetDisabled() {
			continue
		}
		e, ok := b.reusedAgentEntity(a)
		if !ok {
			e = agentEntity(a, teams)
		}
		out[e.UID] = e
		if team := a.GetTeam(); team != "" {
			uid := types.NewEntityUID(cedarschema.TypeTeam, types.String(team))
			out[uid] = types.Entity{UID: uid}
		}
	}
	for name, u := range b.upstreams {
		uid := upstreamUID(name)
		out[uid] = types.Entity{
			UID: uid,
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(name),
				"protocol": types.String(protocolName(u.GetProtocol())),
			}),
		}
	}
	for action, t := range b.e.tools {
		uid := toolUID(action)
		out[uid] = types.Entity{
			UID:     uid,
			Parents: types.NewEntityUIDSet(upstreamUID(t.upstream)),
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(t.name),
				"readOnly": types.Boolean(t.readOnly),
				"version":  types.Long(t.version),
			}),
		}
	}
	for name, a := range b.e.remoteAgents {
		uid := remoteAgentUID(name)
		skills := make([]types.Value, len(a.skills))
		for i, s := range a.skills {
			skills[i] = types.String(s)
		}
		out[uid] = types.Entity{
			UID:     uid,
			Parents: types.NewEntityUIDSet(upstreamUID(name)),
			Attributes: types.NewRecord(types.RecordMap{
				"name":     types.String(a.name),
				"readOnly": types.Boolean(a.readOnly),
				"version":  types.Long(a.version),
				"skills":   types.NewSet(skills...),
			}),
		}
	}
	for name, l := range b.lists {
		uid := cedarschema.ListUID(name)
		values := make([]types.Value, len(l.GetValues()))
		for i, v := range l.GetValues() {
			values[i] = types.String(v)
		}
		out[uid] = types.Entity{
			UID: uid,
			Attributes: types.NewRecord(types.RecordMap{
				"name":   types.String(name),
				"values": types.NewSet(values...),
			}),
		}
	}
	b.addModelEntities(out)
	maps.Copy(out, b.e.schema.ActionEntities())
	return out
}

// agentTeams maps each enabled agent to its team ("" for none), its only
// ancestor in the entity store.
func (b *builder) agentTeams() map[types.String]types.String {
	out := map[types.String]types.String{}
	for _, a := range b.snap.GetAgents() {
		if !a.GetDisabled() {
			out[types.String(a.GetMeta().GetName())] = types.String(a.GetTeam())
		}
	}
	return out
}

// agentEntity is Agent::"<name>" with its name, owner, labels as tags and
// its team as parent. teams holds the parent set of each team, shared by
// its agents.
func agentEntity(a *configv1.Agent, teams map[string]types.EntityUIDSet) types.Entity {
	tags := noTags
	if labels := a.GetMeta().GetLabels(); len(labels) > 0 {
		m := make(types.RecordMap, len(labels))
		for k, v := range labels {
			m[types.String(k)] = types.String(v)
		}
		tags = types.NewRecord(m)
	}
	e := types.Entity{
		UID: agentUID(a.GetMeta().GetName()),
		Attributes: types.NewRecord(types.RecordMap{
			"name":  types.String(a.GetMeta().GetName()),
			"owner": types.String(a.GetMeta().GetOwner()),
		}),
		Tags: tags,
	}
	if team := a.GetTeam(); team != "" {
		parents, ok := teams[team]
		if !ok {
			parents = types.NewEntityUIDSet(types.NewEntityUID(cedarschema.TypeTeam, types.String(team)))
			teams[team] = parents
		}
		e.Parents = parents
	}
	return e
}

// noTags is the tags of an agent without labels.
var noTags = types.NewRecord(types.RecordMap{})

// userEntity is the call's user with the name and (optional) email
// attributes, its groups as parents (Group::"<group>"), and those groups.
func userEntity(u *User) types.EntityMap {
	attrs := types.RecordMap{"name": types.String(u.Name)}
	if u.Email != "" {
		attrs["email"] = types.String(u.Email)
	}
	out := types.EntityMap{}
	parents := make([]types.EntityUID, 0, len(u.Groups))
	for _, g := range u.Groups {
		uid := types.NewEntityUID(cedarschema.TypeGroup, types.String(g))
		parents = append(parents, uid)
		out[uid] = types.Entity{UID: uid}
	}
	uid := userUID(u)
	out[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...), Attributes: types.NewRecord(attrs)}
	return out
}

// overlay is the version's entities with a call's own (its user and the
// user's groups) laid over them; the shared map is never written.
type overlay struct {
	base, extra types.EntityMap
}

// Get implements types.EntityGetter.
func (o overlay) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := o.extra[uid]; ok {
		return e, true
	}
	return o.base.Get(uid)
}

func agentUID(name string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeAgent, types.String(name))
}

func toolUID(action string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeTool, types.String(action))
}

func remoteAgentUID(upstream string) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeRemoteAgent, types.String(upstream))
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
