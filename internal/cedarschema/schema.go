package cedarschema

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Tool is one pinned tool as the schema generator sees it.
type Tool struct {
	// Action is the full action name, "<prefix>__<tool>" (see ActionName).
	Action string
	// Upstream is the name of the upstream serving the tool.
	Upstream string
	// Name is the tool's name on its upstream.
	Name string
	// InputSchema is the input JSON Schema of the tool's default version;
	// empty means no arguments.
	InputSchema []byte
	// OtherInputSchemas are the input schemas of the other versions agents
	// are assigned. context.arguments is typed from the union of all the
	// versions: an attribute missing from any of them is optional, and
	// one whose types differ between them is left out (see
	// argumentsUnion).
	OtherInputSchemas [][]byte
}

// Schema is a generated, resolved gateway schema. It is safe for concurrent
// use after Generate returns.
type Schema struct {
	// ast is rendered as Cedar and JSON text on first use (render), then
	// dropped: the control plane's state machine generates a schema on
	// every pin write to validate policies and never reads the text, and
	// rendering cost more than resolving at 1,000 tools.
	ast       *schema.Schema
	render    sync.Once
	cedarText []byte
	jsonText  []byte
	jsonErr   error
	actions   []string
	resolved  *resolved.Schema
	validator *validate.Validator
	learned   []string
}

// Option changes what Generate declares.
type Option func(*genOptions)

type genOptions struct {
	// noModels leaves the model declarations out (WithoutModels).
	noModels bool
	// noRemoteAgents leaves the A2A declarations out (WithoutRemoteAgents).
	noRemoteAgents bool
	// learned names the learned lists (WithLearned).
	learned []string
}

// WithLearned declares context.learned, a record with one Set<String>
// attribute per learned list named (see [ContextLearned]), in the context
// of every tool, remote-agent and model action. Without learned lists the
// context has no learned attribute at all, so the schema is exactly what
// it was before learned lists existed.
func WithLearned(names []string) Option {
	return func(o *genOptions) { o.learned = names }
}

// WithoutRemoteAgents leaves the A2A declarations (RemoteAgent, the
// a2a_send and a2a_read groups and their actions) out: the schema of a
// control-plane cluster some of whose voters predate them, so that every
// replica validates policies alike (see clusterversion.A2ABrokering).
func WithoutRemoteAgents() Option { return func(o *genOptions) { o.noRemoteAgents = true } }

// Generate builds the gateway schema for the given pinned tools. The output
// does not depend on the order of tools. Each tool action carries @upstream
// and @tool annotations for readers of the Cedar text. It fails on an
// invalid or duplicate action name, on an input schema that is not JSON
// (including JSON nested beyond encoding/json's limit) and on one larger
// than MaxInputSchemaBytes, and on an empty or duplicate learned list name.
//
// The model and remote-agent declarations do not depend on the pins:
// Model with the llm_complete group and its action, and RemoteAgent with
// the a2a_send and a2a_read groups and their actions, are always declared
// (unless WithoutModels or WithoutRemoteAgents), so policies about models
// and A2A agents validate before any such upstream is registered.
func Generate(tools []Tool, opts ...Option) (*Schema, error) {
	var o genOptions
	for _, opt := range opts {
		opt(&o)
	}
	learned, err := learnedRecord(o.learned)
	if err != nil {
		return nil, fmt.Errorf("generate schema: %w", err)
	}
	sorted := slices.Clone(tools)
	slices.SortFunc(sorted, func(a, b Tool) int { return strings.Compare(a.Action, b.Action) })

	actions := ast.Actions{
		CallToolGroup:     {},
		PlaceholderAction: placeholderAction(learned),
	}
	names := make([]string, 0, len(sorted))
	for i, t := range sorted {
		if err := checkActionName(t.Action); err != nil {
			return nil, fmt.Errorf("generate schema: tool %q on upstream %q: %w", t.Name, t.Upstream, err)
		}
		if i > 0 && sorted[i-1].Action == t.Action {
			return nil, fmt.Errorf("generate schema: duplicate action %q", t.Action)
		}
		args, err := memoArguments(t.InputSchema, t.OtherInputSchemas)
		if err != nil {
			return nil, fmt.Errorf("generate schema: action %q: %w", t.Action, err)
		}
		actions[types.String(t.Action)] = toolAction(t, args, learned)
		names = append(names, t.Action)
	}

	ents := entities()
	if !o.noModels {
		addModels(ents, actions, learned)
	}
	if !o.noRemoteAgents {
		ents[ast.Ident(TypeRemoteAgent)] = remoteAgentEntity()
		actions[A2ASendGroup] = ast.Action{}
		actions[A2AReadGroup] = ast.Action{}
		for _, a := range A2AActions {
			actions[types.String(a.Name)] = a2aAction(a.Group, learned)
		}
	}
	in := &ast.Schema{Entities: ents, Actions: actions}
	s, err := newSchema(in, names)
	if err != nil {
		return nil, err
	}
	s.learned = slices.Sorted(slices.Values(o.learned))
	return s, nil
}

// learnedRecord is the type of context.learned: one Set<String> per
// learned list; nil when there are none.
func learnedRecord(names []string) (ast.RecordType, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rt := make(ast.RecordType, len(names))
	for _, n := range names {
		if n == "" {
			return nil, fmt.Errorf("a learned list has no name")
		}
		if _, dup := rt[types.String(n)]; dup {
			return nil, fmt.Errorf("learned list %q appears twice", n)
		}
		rt[types.String(n)] = ast.Attribute{Type: ast.Set(ast.String())}
	}
	return rt, nil
}

// Learned returns the names of the learned lists context.learned declares,
// sorted.
func (s *Schema) Learned() []string { return slices.Clone(s.learned) }

// newSchema resolves an AST schema once, so later calls only read.
func newSchema(in *ast.Schema, actions []string) (*Schema, error) {
	s := schema.NewSchemaFromAST(in)
	res, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("resolve schema: %w", err)
	}
	return &Schema{
		ast:       s,
		actions:   actions,
		resolved:  res,
		validator: validate.New(res, validate.WithStrict()),
	}, nil
}

// rendered renders the schema's texts once. Rendering a resolved schema
// of the types Generate declares does not fail (cedar-go's Cedar
// rendering never does; its JSON rendering fails only on a type it does
// not know); JSON reports it if it ever does.
func (s *Schema) rendered() {
	s.render.Do(func() {
		s.cedarText, _ = s.ast.MarshalCedar()
		s.jsonText, s.jsonErr = s.ast.MarshalJSON()
		if s.jsonErr != nil {
			s.jsonErr = fmt.Errorf("render schema as JSON: %w", s.jsonErr)
		}
		// The texts are all that is read of the AST: a data plane keeps
		// its schema as long as it serves a version.
		s.ast = nil
	})
}

// Cedar returns the schema in Cedar's human-readable format.
func (s *Schema) Cedar() []byte {
	s.rendered()
	return slices.Clone(s.cedarText)
}

// JSON returns the schema in Cedar's JSON schema format.
func (s *Schema) JSON() ([]byte, error) {
	s.rendered()
	if s.jsonErr != nil {
		return nil, s.jsonErr
	}
	return slices.Clone(s.jsonText), nil
}

// Actions returns the tool action names in the schema, sorted. The groups,
// the placeholder, the model action and the remote-agent actions are not
// included.
func (s *Schema) Actions() []string {
	return slices.Clone(s.actions)
}

// ActionEntities returns the action entities a request's entity set must
// contain for `action in Action::"call_tool"` (or a2a_send, a2a_read) to
// hold at evaluation time: the groups, the placeholder and every tool and
// remote-agent action, members of their groups.
func (s *Schema) ActionEntities() types.EntityMap {
	out := make(types.EntityMap, len(s.resolved.Actions))
	for uid, a := range s.resolved.Actions {
		out[uid] = types.Entity{UID: uid, Parents: a.Entity.Parents}
	}
	return out
}

// ValidateRequest checks a request against the schema: the action exists,
// principal and resource have the right types and the context conforms. A
// gateway that builds contexts by hand can use it to fail closed.
func (s *Schema) ValidateRequest(req types.Request) error {
	if err := s.validator.Request(req); err != nil {
		return fmt.Errorf("request does not conform to the schema: %w", err)
	}
	return nil
}
