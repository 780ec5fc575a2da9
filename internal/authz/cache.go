package authz

import (
	"slices"
	"strconv"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// decisionCache remembers Cedar decisions of one configuration version by
// the request attributes its applicable policies read (see decisionKey).
// It is safe for concurrent use; when full, an arbitrary entry makes room
// (Go's map iteration order is randomized, so this is random eviction).
type decisionCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]Decision
}

func newDecisionCache(size int) *decisionCache {
	if size <= 0 {
		return nil
	}
	return &decisionCache{max: size, entries: make(map[string]Decision, min(size, 1024))}
}

func (c *decisionCache) get(key []byte) (Decision, bool) {
	c.mu.RLock()
	d, ok := c.entries[string(key)]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(key []byte, d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[string(key)]; ok {
		return
	}
	if len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[string(key)] = d
}

// len reports the number of cached decisions (for tests).
func (c *decisionCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// decisionKey appends to buf the cache key of req, prepared as p with
// the arguments' attributes args,
// evaluated against the buckets in set: the agent, action and
// resource, then only the context values those policies read — the user
// (id, email, groups), sourceIp, degraded, protocol, findings, a remote agent's
// skill and sizes, and the arguments at the read paths, in a
// self-delimiting canonical encoding of their Cedar values. Two requests
// with equal keys make the policies read equal values, so they decide
// alike. False means the request must not be cached.
func decisionKey(buf []byte, req *Request, p *prepared, args []attr, set *applicable) ([]byte, bool) {
	r := set.reads()
	if r.uncacheable {
		return nil, false
	}
	buf = strconv.AppendQuote(buf, string(p.principal.ID))
	buf = strconv.AppendQuote(buf, string(p.action.ID))
	// A tool's resource is named by its action; a remote agent's is not.
	buf = strconv.AppendQuote(buf, string(p.resource.Type))
	buf = strconv.AppendQuote(buf, string(p.resource.ID))
	if r.flags&readUser != 0 {
		if u := req.User; u == nil {
			buf = append(buf, '-')
		} else {
			buf = append(buf, 'U')
			buf = strconv.AppendQuote(buf, u.Source)
			buf = strconv.AppendQuote(buf, u.Name)
			buf = strconv.AppendQuote(buf, u.Email)
			groups := slices.Clone(u.Groups)
			slices.Sort(groups)
			buf = strconv.AppendInt(buf, int64(len(groups)), 10)
			for _, g := range groups {
				buf = strconv.AppendQuote(buf, g)
			}
		}
	}
	if r.flags&readSourceIP != 0 {
		buf = append(buf, 'I')
		buf = append(buf, req.Context.SourceIP.Unmap().String()...)
		buf = append(buf, ';')
	}
	if r.flags&readDegraded != 0 {
		buf = strconv.AppendBool(buf, req.Context.Degraded)
	}
	if r.flags&readProtocol != 0 {
		buf = strconv.AppendQuote(buf, req.Context.Protocol)
	}
	if r.flags&readFindings != 0 {
		var ok bool
		if buf, ok = appendValue(append(buf, 'F'), p.findings); !ok {
			return nil, false
		}
	}
	if r.flags&readSkill != 0 {
		// context.skill is present when a remote agent's request names one.
		if !p.tool && req.Context.Skill != "" {
			buf = strconv.AppendQuote(append(buf, 'S'), req.Context.Skill)
		} else {
			buf = append(buf, '-')
		}
	}
	if r.flags&readMessageBytes != 0 {
		buf = append(strconv.AppendInt(append(buf, 'M'), req.Context.MessageBytes, 10), ';')
	}
	if r.flags&readMetadataBytes != 0 {
		buf = append(strconv.AppendInt(append(buf, 'm'), req.Context.MetadataBytes, 10), ';')
	}
	if r.flags&readWholeArguments != 0 {
		return appendAttrs(buf, args)
	}
	var ok bool
	for _, b := range set {
		if b == nil {
			continue
		}
		for _, path := range b.reads.args {
			if buf, ok = appendArgumentsPath(buf, args, path); !ok {
				return nil, false
			}
		}
	}
	return buf, true
}

// appendArgumentsPath is appendPath for the arguments record whose
// attributes, sorted by name, are args.
func appendArgumentsPath(buf []byte, args []attr, path []types.String) ([]byte, bool) {
	if len(path) == 0 {
		return appendAttrs(buf, args)
	}
	v, ok := attrValue(args, path[0])
	if !ok {
		return append(buf, '_'), true
	}
	return appendPath(buf, v, path[1:])
}

// appendPath appends the value at path below v, '_' when an attribute on
// the way is absent, or the whole value where the path leaves records.
func appendPath(buf []byte, v types.Value, path []types.String) ([]byte, bool) {
	for _, name := range path {
		rec, ok := v.(types.Record)
		if !ok {
			break
		}
		if v, ok = rec.Get(name); !ok {
			return append(buf, '_'), true
		}
	}
	return appendValue(buf, v)
}

// appendValue appends a canonical, self-delimiting encoding of v: equal
// Cedar values encode equally and different ones differently. False for a
// type arguments never convert to.
func appendValue(buf []byte, v types.Value) ([]byte, bool) {
	switch v := v.(type) {
	case types.String:
		return strconv.AppendQuote(buf, string(v)), true
	case types.Long:
		buf = append(buf, 'L')
		return append(strconv.AppendInt(buf, int64(v), 10), ';'), true
	case types.Boolean:
		if v {
			return append(buf, 'T'), true
		}
		return append(buf, 'F'), true
	case types.Decimal:
		buf = append(buf, 'D')
		return append(append(buf, v.String()...), ';'), true
	case types.Record:
		buf = append(buf, '{')
		keys := slices.Sorted(v.Keys())
		for _, k := range keys {
			buf = strconv.AppendQuote(buf, string(k))
			val, _ := v.Get(k)
			var ok bool
			if buf, ok = appendValue(buf, val); !ok {
				return nil, false
			}
		}
		return append(buf, '}'), true
	case types.Set:
		elems := make([]string, 0, v.Len())
		for e := range v.All() {
			enc, ok := appendValue(nil, e)
			if !ok {
				return nil, false
			}
			elems = append(elems, string(enc))
		}
		slices.Sort(elems)
		buf = append(buf, '[')
		for _, e := range elems {
			buf = append(buf, e...)
		}
		return append(buf, ']'), true
	}
	return nil, false
}

// appendAttrs is appendValue for the record whose attributes, sorted by
// name, are attrs.
func appendAttrs(buf []byte, attrs []attr) ([]byte, bool) {
	buf = append(buf, '{')
	for _, a := range attrs {
		buf = strconv.AppendQuote(buf, string(a.name))
		var ok bool
		if buf, ok = appendValue(buf, a.value); !ok {
			return nil, false
		}
	}
	return append(buf, '}'), true
}

// cloneDecision copies d's slices so a cached decision is never shared.
func cloneDecision(d Decision) Decision {
	return Decision{Allowed: d.Allowed, Policies: slices.Clone(d.Policies), Errors: slices.Clone(d.Errors)}
}
