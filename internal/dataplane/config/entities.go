package config

import (
	"maps"
	"net/netip"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// entities builds the one entity store every request of this version
// evaluates against: enabled agents (in their teams), teams, upstreams,
// tools (in their upstreams), value lists and the action entities, so that
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
	for name, l := range b.c.lists {
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
	maps.Copy(out, b.c.schema.ActionEntities())
	return out
}

// indexLists indexes the value lists by name. The control plane has
// checked each list's values; a list that appears twice or has no name
// means the snapshot is not one it built.
func (b *builder) indexLists() {
	for _, l := range b.snap.GetValueLists() {
		name := l.GetMeta().GetName()
		if name == "" {
			b.problems.add("a value list has no name")
			continue
		}
		if _, dup := b.c.lists[name]; dup {
			b.problems.add("value list %q appears twice", name)
			continue
		}
		b.c.lists[name] = l
	}
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

// userUID is the entity of an on-behalf-of user: User::"<source>/<name>",
// the name of the identity source that trusted the user token, a slash, and
// the value of its user claim. Qualifying by source keeps two issuers'
// "alice" apart; the id is stable for as long as the source keeps its name
// and the issuer its user claim, so policies may name users by it.
func userUID(u *pipeline.User) types.EntityUID {
	return types.NewEntityUID(cedarschema.TypeUser, types.String(u.Source+"/"+u.Name))
}

// userEntity is the call's user with the name and (optional) email
// attributes, its groups as parents (Group::"<group>"), and those groups.
func userEntity(u *pipeline.User) types.EntityMap {
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
