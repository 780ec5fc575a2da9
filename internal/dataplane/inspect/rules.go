package inspect

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/detector"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Side is the side of a call a rule looks at.
type Side uint8

// Sides.
const (
	Request Side = iota + 1
	Response
)

func (s Side) String() string {
	if s == Request {
		return "request"
	}
	return "response"
}

// Action is what an enforced rule does with what it finds.
type Action uint8

// Actions.
const (
	Flag Action = iota
	Redact
	Mask
	Block
)

func (a Action) String() string {
	switch a {
	case Redact:
		return "redact"
	case Mask:
		return "mask"
	case Block:
		return "block"
	}
	return "flag"
}

// Defaults of a classifier.
const (
	DefaultClassifierTimeout = 500 * time.Millisecond
	MaxClassifierInput       = 64 << 10
)

// Classifier is where and how a rule asks a classifier service.
type Classifier struct {
	URL        string
	Timeout    time.Duration
	FailClosed bool
	MaxInput   int
}

// Rule is a compiled inspection rule. It is immutable.
type Rule struct {
	Name   string
	Side   Side
	Shadow bool
	Action Action
	// Scope; "" matches every call.
	Upstream, Tool, Team string

	scanner *detector.Scanner
	// rows is the row ceiling (nil: none).
	rows *rowLimit
	// MaxBytes is the response size ceiling (0: none).
	MaxBytes int64
	// HoldBack is how many bytes of streamed frames to hold back until the
	// whole answer is inspected (0: none).
	HoldBack int64
	// Classifier is the classifier to ask (nil: none).
	Classifier *Classifier
}

type rowLimit struct {
	path detector.Path
	max  int
}

// Enforced reports whether the rule acts on what it finds.
func (r *Rule) Enforced() bool { return !r.Shadow }

// Mode is "enforce" or "shadow".
func (r *Rule) Mode() string {
	if r.Shadow {
		return "shadow"
	}
	return "enforce"
}

// Target is what a call is about, as rule scopes see it.
type Target struct {
	// Upstream is the upstream's name, Tool the target as the upstream
	// names it, Team the calling agent's team.
	Upstream, Tool, Team string
}

func (r *Rule) applies(t Target) bool {
	return (r.Upstream == "" || r.Upstream == t.Upstream) &&
		(r.Tool == "" || r.Tool == t.Tool) &&
		(r.Team == "" || r.Team == t.Team)
}

// Ruleset is one configuration version's inspection rules (off rules left
// out) and the egress policy its classifiers are dialed under. It is
// immutable and safe for concurrent use; the nil Ruleset has no rules.
type Ruleset struct {
	rules  []*Rule
	egress egress.Policy
}

// Empty reports whether there is no rule to run.
func (rs *Ruleset) Empty() bool { return rs == nil || len(rs.rules) == 0 }

// Egress is the policy classifiers are dialed under.
func (rs *Ruleset) Egress() egress.Policy {
	if rs == nil {
		return egress.Policy{}
	}
	return rs.egress
}

// For returns the rules of side whose scope covers t, in configuration
// order.
func (rs *Ruleset) For(side Side, t Target) []*Rule {
	if rs == nil {
		return nil
	}
	var out []*Rule
	for _, r := range rs.rules {
		if r.Side == side && r.applies(t) {
			out = append(out, r)
		}
	}
	return out
}

// Compile compiles a snapshot's rules. Problems name every rule that
// cannot run (an unknown detector, a pattern that does not compile): a
// data plane refuses such a snapshot rather than run without the rule.
// Rules that are off are skipped unread.
func Compile(rules []*configv1.InspectionRule, pol egress.Policy) (*Ruleset, []string) {
	rs := &Ruleset{egress: pol}
	var problems []string
	seen := map[string]bool{}
	for _, in := range rules {
		name := in.GetMeta().GetName()
		if seen[name] {
			problems = append(problems, fmt.Sprintf("inspection rule %q appears twice", name))
			continue
		}
		seen[name] = true
		if in.GetMode() == configv1.InspectionMode_INSPECTION_MODE_OFF {
			continue
		}
		r, err := compileRule(in)
		if err != nil {
			problems = append(problems, fmt.Sprintf("inspection rule %q: %v", name, err))
			continue
		}
		rs.rules = append(rs.rules, r)
	}
	return rs, problems
}

func compileRule(in *configv1.InspectionRule) (*Rule, error) {
	r := &Rule{
		Name:     in.GetMeta().GetName(),
		Upstream: in.GetScope().GetUpstream(),
		Tool:     in.GetScope().GetTool(),
		Team:     in.GetScope().GetTeam(),
		MaxBytes: in.GetMaxResponseBytes(),
		HoldBack: in.GetHoldBackBytes(),
	}
	switch in.GetMode() {
	case configv1.InspectionMode_INSPECTION_MODE_ENFORCE:
	case configv1.InspectionMode_INSPECTION_MODE_SHADOW:
		r.Shadow = true
	default:
		return nil, fmt.Errorf("mode %v is not one this data plane knows", in.GetMode())
	}
	switch in.GetSide() {
	case configv1.InspectionSide_INSPECTION_SIDE_REQUEST:
		r.Side = Request
	case configv1.InspectionSide_INSPECTION_SIDE_RESPONSE:
		r.Side = Response
	default:
		return nil, fmt.Errorf("side %v is not one this data plane knows", in.GetSide())
	}
	switch in.GetAction() {
	case configv1.InspectionAction_INSPECTION_ACTION_UNSPECIFIED, configv1.InspectionAction_INSPECTION_ACTION_FLAG:
	case configv1.InspectionAction_INSPECTION_ACTION_REDACT:
		r.Action = Redact
	case configv1.InspectionAction_INSPECTION_ACTION_MASK:
		r.Action = Mask
	case configv1.InspectionAction_INSPECTION_ACTION_BLOCK:
		r.Action = Block
	default:
		return nil, fmt.Errorf("action %v is not one this data plane knows", in.GetAction())
	}
	if r.Side == Request && (r.Action == Redact || r.Action == Mask) {
		return nil, fmt.Errorf("a request rule cannot %s", r.Action)
	}
	if r.MaxBytes < 0 || r.HoldBack < 0 {
		return nil, fmt.Errorf("negative ceiling")
	}
	var pats []*detector.Pat
	for i, p := range in.GetPatterns() {
		pat, err := detector.CompilePattern(r.Name, p)
		if err != nil {
			return nil, fmt.Errorf("patterns[%d]: %w", i, err)
		}
		pats = append(pats, pat)
	}
	sc, err := detector.NewScanner(in.GetDetectors(), pats)
	if err != nil {
		return nil, err
	}
	if !sc.Empty() {
		r.scanner = sc
	}
	if rows := in.GetRows(); rows != nil {
		p, err := detector.ParsePath(rows.GetPath())
		if err != nil {
			return nil, fmt.Errorf("rows.path: %w", err)
		}
		if rows.GetMaxRows() < 0 {
			return nil, fmt.Errorf("rows.max_rows is negative")
		}
		r.rows = &rowLimit{path: p, max: int(min(rows.GetMaxRows(), 1<<40))}
	}
	if c := in.GetClassifier(); c != nil {
		cl := &Classifier{URL: c.GetUrl(), Timeout: DefaultClassifierTimeout, FailClosed: c.GetFailClosed(), MaxInput: MaxClassifierInput}
		if c.GetTimeout() != nil {
			cl.Timeout = c.GetTimeout().AsDuration()
		}
		if n := c.GetMaxInputBytes(); n > 0 && n < MaxClassifierInput {
			cl.MaxInput = int(n)
		}
		if cl.Timeout <= 0 || cl.Timeout > 5*time.Second {
			return nil, fmt.Errorf("classifier timeout %s out of range", cl.Timeout)
		}
		r.Classifier = cl
	}
	if r.scanner == nil && r.rows == nil && r.MaxBytes == 0 && r.Classifier == nil {
		return nil, fmt.Errorf("it looks for nothing")
	}
	return r, nil
}
