package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/portcullis-gw/portcullis/internal/argjson"
)

// noArguments is the input schema of a pin that has none: per cedarschema,
// an empty schema means the tool takes no arguments.
const noArguments = `{"type": "object", "additionalProperties": false}`

// Every input schema is compiled as the document at schemaURL. Relative
// references resolve against schemaBase and are refused by the loader like
// any other remote reference.
const (
	schemaBase = "https://input-schema.portcullis.invalid/"
	schemaURL  = schemaBase + "tool.json"
)

// maxReported bounds the validation failures one message reports.
const maxReported = 5

// errRemoteRef is returned for any reference outside the schema document.
var errRemoteRef = errors.New("remote references are not allowed: an input schema must be self-contained")

// offline refuses to load anything: input schemas may only refer inside
// themselves (and to the embedded meta-schemas).
type offline struct{}

func (offline) Load(string) (any, error) { return nil, errRemoteRef }

// compileInputSchema compiles a pinned input schema as JSON Schema
// (2020-12 unless it declares another draft) without touching the network
// or the file system.
func compileInputSchema(raw []byte) (*jsonschema.Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte(noArguments)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(offline{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, compileProblem(err)
	}
	return s, nil
}

// compileProblem words a compile error for operators: meta-schema
// violations as their leaf failures, and without the internal base URL.
func compileProblem(err error) error {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		var msgs []string
		forEachLeaf(ve, func(leaf *jsonschema.ValidationError) {
			if out := leaf.BasicOutput(); out.Error != nil {
				msgs = append(msgs, fmt.Sprintf("at %q: %s", out.InstanceLocation, out.Error))
			}
		})
		return fmt.Errorf("not valid against its meta-schema: %s", strings.Join(msgs, "; "))
	}
	return errors.New(strings.ReplaceAll(err.Error(), schemaBase, ""))
}

// forEachLeaf calls fn for each failure in the tree that has no causes.
func forEachLeaf(e *jsonschema.ValidationError, fn func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		fn(e)
		return
	}
	for _, c := range e.Causes {
		forEachLeaf(c, fn)
	}
}

// argumentValidator returns a pipeline.Tool.ValidateArguments for s. The
// returned errors name the failing field paths and schema keywords, never
// the caller's values.
func argumentValidator(s *jsonschema.Schema) func(args any) error {
	return func(args any) error {
		if err := checkNumbers("arguments", args); err != nil {
			return err
		}
		err := s.Validate(args)
		if err == nil {
			return nil
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return errors.New("arguments could not be validated")
		}
		return errors.New(describe(ve))
	}
}

// checkNumbers refuses numbers beyond ±10^argjson.MaxExponent before the validator
// does big-number arithmetic on them.
func checkNumbers(path string, v any) error {
	if below, err := badNumber(v); err != nil {
		return fmt.Errorf("%s%s: %w", path, below, err)
	}
	return nil
}

// badNumber finds a number in v that argjson cannot read and returns why,
// with its path below v ("/items/0"), built only then.
func badNumber(v any) (string, error) {
	switch v := v.(type) {
	case json.Number:
		if _, err := argjson.ParseNumber(string(v)); err != nil {
			return "", err
		}
	case []any:
		for i, e := range v {
			if below, err := badNumber(e); err != nil {
				return "/" + strconv.Itoa(i) + below, err
			}
		}
	case map[string]any:
		for k, e := range v {
			if below, err := badNumber(e); err != nil {
				return "/" + argjson.Segment(k) + below, err
			}
		}
	}
	return "", nil
}

// describe renders the leaves of a validation error tree: the failures that
// are not mere summaries of their causes.
func describe(ve *jsonschema.ValidationError) string {
	var msgs []string
	seen := map[string]bool{}
	total := 0
	forEachLeaf(ve, func(e *jsonschema.ValidationError) {
		for _, m := range leafMessages(e) {
			if seen[m] {
				continue
			}
			seen[m] = true
			total++
			if len(msgs) < maxReported {
				msgs = append(msgs, m)
			}
		}
	})
	if len(msgs) == 0 {
		return "arguments do not match the tool's input schema"
	}
	out := strings.Join(msgs, "; ")
	if total > len(msgs) {
		out += fmt.Sprintf("; and %d more", total-len(msgs))
	}
	return out
}

// leafMessages words one failure. Only schema-side facts (types, limits,
// property names the schema declares) and the field path are shown.
func leafMessages(e *jsonschema.ValidationError) []string {
	path := instancePath(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		return []string{fmt.Sprintf("%s: want %s, got %s", path, strings.Join(k.Want, " or "), k.Got)}
	case *kind.Required:
		out := make([]string, len(k.Missing))
		for i, m := range k.Missing {
			out[i] = fmt.Sprintf("%s/%s: required", path, argjson.Segment(m))
		}
		return out
	case *kind.AdditionalProperties:
		out := make([]string, len(k.Properties))
		for i, p := range k.Properties {
			out[i] = fmt.Sprintf("%s/%s: not allowed by the tool's input schema", path, argjson.Segment(p))
		}
		return out
	case *kind.Minimum:
		return []string{fmt.Sprintf("%s: must be >= %s", path, k.Want.RatString())}
	case *kind.Maximum:
		return []string{fmt.Sprintf("%s: must be <= %s", path, k.Want.RatString())}
	case *kind.ExclusiveMinimum:
		return []string{fmt.Sprintf("%s: must be > %s", path, k.Want.RatString())}
	case *kind.ExclusiveMaximum:
		return []string{fmt.Sprintf("%s: must be < %s", path, k.Want.RatString())}
	case *kind.MultipleOf:
		return []string{fmt.Sprintf("%s: must be a multiple of %s", path, k.Want.RatString())}
	case *kind.MinLength:
		return []string{fmt.Sprintf("%s: must be at least %d characters", path, k.Want)}
	case *kind.MaxLength:
		return []string{fmt.Sprintf("%s: must be at most %d characters", path, k.Want)}
	case *kind.MinItems:
		return []string{fmt.Sprintf("%s: must have at least %d items", path, k.Want)}
	case *kind.MaxItems:
		return []string{fmt.Sprintf("%s: must have at most %d items", path, k.Want)}
	case *kind.MinProperties:
		return []string{fmt.Sprintf("%s: must have at least %d properties", path, k.Want)}
	case *kind.MaxProperties:
		return []string{fmt.Sprintf("%s: must have at most %d properties", path, k.Want)}
	case *kind.Enum, *kind.Const:
		return []string{path + ": not one of the allowed values"}
	case *kind.Pattern:
		return []string{path + ": does not match the required pattern"}
	case *kind.Format:
		return []string{fmt.Sprintf("%s: not a valid %s", path, k.Want)}
	case *kind.FalseSchema:
		return []string{path + ": not allowed by the tool's input schema"}
	case *kind.UniqueItems:
		return []string{path + ": items must be unique"}
	}
	return []string{fmt.Sprintf("%s: fails %q", path, strings.Join(e.ErrorKind.KeywordPath(), "/"))}
}

// instancePath renders a location inside the arguments as
// "arguments/a/0/b".
func instancePath(loc []string) string {
	var b strings.Builder
	b.WriteString("arguments")
	for _, seg := range loc {
		b.WriteByte('/')
		b.WriteString(argjson.Segment(seg))
	}
	return b.String()
}
