package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Limits on a cases file.
const (
	MaxCasesBytes = 4 << 20
	MaxCases      = 10_000
)

// Case is one expected decision in a cases file:
//
//	cases:
//	  - name: small payment to a listed payee
//	    agent: payments-bot
//	    user: corp/alice        # optional: SOURCE/NAME of a verified user
//	    groups: [finance]       # optional, with user
//	    tool: payments__send_payment
//	    args: {to: acme, amount: 100}
//	    time: 2026-11-26T10:00:00Z   # optional (default: now)
//	    sourceIp: 10.1.2.3           # optional (default: 127.0.0.1)
//	    degraded: false              # optional
//	    findings: [exfiltration, exfiltration.url_payload]  # optional: context.findings
//	    expect: allow                # allow or deny
//	    policies: [payments/small]   # optional: the determining policies, exactly
type Case struct {
	Name     string          `json:"name"`
	Agent    string          `json:"agent"`
	User     string          `json:"user,omitempty"`
	Email    string          `json:"email,omitempty"`
	Groups   []string        `json:"groups,omitempty"`
	Tool     string          `json:"tool"`
	Args     json.RawMessage `json:"args,omitempty"`
	Time     string          `json:"time,omitempty"`
	SourceIP string          `json:"sourceIp,omitempty"`
	Protocol string          `json:"protocol,omitempty"`
	Degraded bool            `json:"degraded,omitempty"`
	Findings []string        `json:"findings,omitempty"`
	Expect   string          `json:"expect"`
	Policies []string        `json:"policies,omitempty"`
}

type casesFile struct {
	Cases []Case `json:"cases"`
}

// ParseCases reads a YAML (or JSON) cases file strictly: unknown fields,
// a missing agent, tool or expectation, and duplicate names are errors.
func ParseCases(data []byte) ([]Case, error) {
	if len(data) > MaxCasesBytes {
		return nil, fmt.Errorf("the cases file is %d bytes; the limit is %d", len(data), MaxCasesBytes)
	}
	var f casesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse cases: %w", err)
	}
	if len(f.Cases) == 0 {
		return nil, errors.New("the cases file has no cases (a top-level \"cases:\" list)")
	}
	if len(f.Cases) > MaxCases {
		return nil, fmt.Errorf("the cases file has %d cases; the limit is %d", len(f.Cases), MaxCases)
	}
	seen := map[string]int{}
	var problems []string
	for i, c := range f.Cases {
		label := c.label(i)
		if c.Name != "" {
			if j, dup := seen[c.Name]; dup {
				problems = append(problems, fmt.Sprintf("%s: the name is also case %d's", label, j+1))
			}
			seen[c.Name] = i
		}
		if c.Agent == "" {
			problems = append(problems, label+": no agent")
		}
		if c.Tool == "" {
			problems = append(problems, label+": no tool")
		}
		if c.Expect != "allow" && c.Expect != "deny" {
			problems = append(problems, fmt.Sprintf("%s: expect must be allow or deny, not %q", label, c.Expect))
		}
		if _, err := c.question(); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", label, err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid cases:\n- %s", strings.Join(problems, "\n- "))
	}
	return f.Cases, nil
}

func (c Case) label(i int) string {
	if c.Name != "" {
		return fmt.Sprintf("case %d (%s)", i+1, c.Name)
	}
	return fmt.Sprintf("case %d", i+1)
}

// question turns the case into a Question.
func (c Case) question() (Question, error) {
	q := Question{Agent: c.Agent, Tool: c.Tool, Protocol: c.Protocol, Degraded: c.Degraded, Findings: c.Findings}
	if args := bytes.TrimSpace(c.Args); len(args) > 0 && !bytes.Equal(args, []byte("null")) {
		if args[0] != '{' {
			return Question{}, errors.New("args must be a map of argument names to values")
		}
		q.Arguments = args
	}
	if c.User != "" {
		u, err := ParseUser(c.User, c.Email, c.Groups)
		if err != nil {
			return Question{}, err
		}
		q.User = u
	} else if c.Email != "" || len(c.Groups) > 0 {
		return Question{}, errors.New("email and groups need a user")
	}
	if c.Time != "" {
		t, err := time.Parse(time.RFC3339, c.Time)
		if err != nil {
			return Question{}, fmt.Errorf("time must be RFC 3339 (2026-11-26T10:00:00Z): %w", err)
		}
		q.Time = t
	}
	if c.SourceIP != "" {
		ip, err := netip.ParseAddr(c.SourceIP)
		if err != nil {
			return Question{}, fmt.Errorf("sourceIp: %w", err)
		}
		q.SourceIP = ip
	}
	return q, nil
}

// ParseUser parses "SOURCE/NAME" into a User.
func ParseUser(s, email string, groups []string) (*User, error) {
	source, name, ok := strings.Cut(s, "/")
	if !ok || source == "" || name == "" {
		return nil, fmt.Errorf("user %q must be SOURCE/NAME: the identity source that verifies the user's token, a slash, and the user claim's value", s)
	}
	return &User{Source: source, Name: name, Email: email, Groups: groups}, nil
}

// Result is the outcome of one case.
type Result struct {
	Case   Case
	Answer Answer
	// Passed is set when the decision (and the policies, when the case
	// lists them) are as expected.
	Passed bool
	// Why explains a failure.
	Why string
}

// Run decides every case with d. A case whose agent or tool does not
// exist fails with the reason; it never stops the run.
func Run(ctx context.Context, d Decider, cases []Case) []Result {
	out := make([]Result, 0, len(cases))
	for _, c := range cases {
		r := Result{Case: c}
		q, err := c.question()
		if err == nil {
			r.Answer, err = d.Check(ctx, q)
		}
		switch {
		case err != nil:
			r.Why = err.Error()
		case r.Answer.Decision() != c.Expect:
			r.Why = fmt.Sprintf("expected %s, got %s", c.Expect, r.Answer.Decision())
			if len(r.Answer.Errors) > 0 {
				r.Why += " (" + strings.Join(r.Answer.Errors, "; ") + ")"
			}
		case c.Policies != nil && !samePolicies(c.Policies, r.Answer.Policies):
			r.Why = fmt.Sprintf("expected policies %v, got %v", c.Policies, ids(r.Answer.Policies))
		default:
			r.Passed = true
		}
		out = append(out, r)
	}
	return out
}

func ids(refs []PolicyRef) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.ID)
	}
	return out
}

func samePolicies(want []string, got []PolicyRef) bool {
	w := slices.Clone(want)
	slices.Sort(w)
	g := ids(got)
	slices.Sort(g)
	return slices.Equal(w, g)
}
