package a2a

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

// The security schemes the gateway's cards declare: a bearer credential
// (an API key or a JWT) or a client certificate.
const (
	schemeBearer = "portcullis-bearer"
	schemeMTLS   = "portcullis-mtls"
)

// cardFacts are what the gateway reads from an approved card: the version
// its JSON-RPC interface at the upstream's URL speaks.
type cardFacts struct {
	version a2awire.Version
	ok      bool
}

// cardCache remembers cardFacts by pin hash (a card is parsed once per
// approval, not per call). Safe for concurrent use.
type cardCache struct {
	mu sync.Mutex
	m  map[string]cardFacts
}

// maxCachedCards bounds the cache; it starts over when full.
const maxCachedCards = 1024

// facts returns the facts of upstream's card, pinned with hash, for an
// agent whose endpoint is endpoint.
func (cc *cardCache) facts(upstream, hash, endpoint string, card []byte) cardFacts {
	key := upstream + "\x00" + hash + "\x00" + endpoint
	cc.mu.Lock()
	f, ok := cc.m[key]
	cc.mu.Unlock()
	if ok {
		return f
	}
	var m map[string]any
	if json.Unmarshal(card, &m) == nil {
		f.version, f.ok = a2awire.CardVersion(m, endpoint)
	}
	cc.mu.Lock()
	if cc.m == nil || len(cc.m) >= maxCachedCards {
		cc.m = map[string]cardFacts{}
	}
	cc.m[key] = f
	cc.mu.Unlock()
	return f
}

// cardView is what a caller's view of an agent card depends on.
type cardView struct {
	// card is the approved card, as the agent published it.
	card []byte
	// version is the version the gateway brokers with the agent.
	version a2awire.Version
	// endpoint is the gateway's JSON-RPC endpoint for the agent.
	endpoint string
	// upstream is the agent's own endpoint, never to be shown.
	upstream string
	// skills are the skill ids the caller may use, in card order.
	skills []string
}

// rewriteCard renders the card a caller sees: the approved card with the
// gateway's endpoint in every interface (1.0 supportedInterfaces, 0.3 url
// and additionalInterfaces) — one JSON-RPC interface of the version the
// gateway brokers with the agent, nothing the gateway does not serve —
// the gateway's authentication schemes instead of the agent's, only the
// skills policy lets the caller use, push notifications off (an agent
// would call those URLs itself, past the gateway), the extended card
// offered (it is this card), signatures removed (they signed the agent's
// card, not this one), and every member that names the agent's own
// address removed.
func rewriteCard(v cardView) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(v.card))
	dec.UseNumber()
	var card map[string]any
	if err := dec.Decode(&card); err != nil || card == nil {
		return nil, errors.New("the approved agent card is not a JSON object")
	}
	_, has10 := card[a2awire.CardSupportedInterfaces]
	_, has03 := card[a2awire.CardURL]
	delete(card, a2awire.CardSignatures)
	delete(card, a2awire.CardAdditionalInterfaces)

	if has10 {
		var kept []any
		if iface := brokeredInterface(card, v); iface != nil {
			out := map[string]any{
				a2awire.IfaceURL:             v.endpoint,
				a2awire.IfaceProtocolBinding: a2awire.BindingJSONRPC,
				a2awire.IfaceProtocolVersion: iface[a2awire.IfaceProtocolVersion],
			}
			if t, ok := iface[a2awire.IfaceTenant]; ok {
				out[a2awire.IfaceTenant] = t
			}
			kept = append(kept, out)
		}
		card[a2awire.CardSupportedInterfaces] = nonNil(kept)
	}
	switch {
	case v.version == a2awire.V03 || !has10:
		card[a2awire.CardURL] = v.endpoint
		card[a2awire.CardPreferredTransport] = a2awire.BindingJSONRPC
		card[a2awire.CardSupportsExtendedCard] = true
		card[a2awire.CardSecuritySchemes] = map[string]any{
			schemeBearer: map[string]any{"type": "http", "scheme": "bearer", "description": bearerDoc},
			schemeMTLS:   map[string]any{"type": "mutualTLS", "description": mtlsDoc},
		}
		card[a2awire.CardSecurity] = []any{map[string]any{schemeBearer: []any{}}, map[string]any{schemeMTLS: []any{}}}
		delete(card, a2awire.CardSecurityRequirements)
	default:
		// A 1.0 card: a 0.3 client must not be told to call in 0.3.
		if has03 {
			for _, k := range []string{a2awire.CardURL, a2awire.CardPreferredTransport, a2awire.CardProtocolVersion, a2awire.CardSupportsExtendedCard} {
				delete(card, k)
			}
		}
		card[a2awire.CardSecuritySchemes] = map[string]any{
			schemeBearer: map[string]any{"httpAuthSecurityScheme": map[string]any{"scheme": "Bearer", "description": bearerDoc}},
			schemeMTLS:   map[string]any{"mtlsSecurityScheme": map[string]any{"description": mtlsDoc}},
		}
		// The scopes are an empty list: ProtoJSON writes a StringList as
		// {"list": […]}, which the official Go SDK (2.3) cannot read, and
		// the official JS SDK reads a plain list as an empty one.
		card[a2awire.CardSecurityRequirements] = []any{
			map[string]any{"schemes": map[string]any{schemeBearer: []any{}}},
			map[string]any{"schemes": map[string]any{schemeMTLS: []any{}}},
		}
		delete(card, a2awire.CardSecurity)
	}
	caps, _ := card[a2awire.CardCapabilities].(map[string]any)
	if caps == nil {
		caps = map[string]any{}
	}
	caps[a2awire.CapPushNotifications] = false
	if v.version == a2awire.V10 {
		caps[a2awire.CapExtendedAgentCard] = true
	}
	card[a2awire.CardCapabilities] = caps

	if skills, ok := card[a2awire.CardSkills].([]any); ok {
		kept := skills[:0]
		for _, s := range skills {
			sk, _ := s.(map[string]any)
			if id, _ := sk["id"].(string); slices.Contains(v.skills, id) {
				kept = append(kept, s)
			}
		}
		card[a2awire.CardSkills] = nonNil(kept)
	}
	scrub(card, upstreamMarks(v.upstream, v.endpoint))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(card); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Descriptions of the gateway's schemes.
const (
	bearerDoc = "A Portcullis API key (pck_…) or a JWT from an identity source the gateway trusts for agents." //nolint:gosec // a description, not a credential
	mtlsDoc   = "A client certificate the gateway has registered to an agent."
)

// brokeredInterface is the card's JSON-RPC interface of the brokered
// version: the one at the agent's endpoint, else the first of that
// version.
func brokeredInterface(card map[string]any, v cardView) map[string]any {
	list, _ := card[a2awire.CardSupportedInterfaces].([]any)
	var first map[string]any
	for _, it := range list {
		iface, _ := it.(map[string]any)
		if b, _ := iface[a2awire.IfaceProtocolBinding].(string); !strings.EqualFold(b, a2awire.BindingJSONRPC) {
			continue
		}
		pv, _ := iface[a2awire.IfaceProtocolVersion].(string)
		if ver, ok := a2awire.ParseVersion(pv); !ok || ver != v.version || pv == "" {
			continue
		}
		if u, _ := iface[a2awire.IfaceURL].(string); u == v.upstream {
			return iface
		}
		if first == nil {
			first = iface
		}
	}
	return first
}

func nonNil(list []any) []any {
	if list == nil {
		return []any{}
	}
	return list
}

// upstreamMarks are the strings that give the agent's own address away:
// its origin and host[:port], unless the gateway's endpoint has them too.
func upstreamMarks(upstream, gateway string) []string {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil
	}
	g, _ := url.Parse(gateway)
	if g != nil && strings.EqualFold(g.Host, u.Host) {
		return nil
	}
	return []string{strings.ToLower(u.Host)}
}

// scrub removes, at any depth, every member and list element whose string
// value names one of marks (compared case-insensitively).
func scrub(v any, marks []string) {
	if len(marks) == 0 {
		return
	}
	names := func(s string) bool {
		ls := strings.ToLower(s)
		for _, m := range marks {
			if strings.Contains(ls, m) {
				return true
			}
		}
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && names(s) {
				delete(x, k)
				continue
			}
			scrub(e, marks)
		}
	case []any:
		for i, e := range x {
			if s, ok := e.(string); ok && names(s) {
				x[i] = ""
				continue
			}
			scrub(e, marks)
		}
	}
}
