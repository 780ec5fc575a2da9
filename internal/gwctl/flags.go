package gwctl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// parseDuration accepts Go durations ("90s", "1h30m") and a leading day
// count ("30d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", orig)
		}
		days = time.Duration(n * float64(24*time.Hour))
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", orig)
	}
	return days + d, nil
}

// durationFlag is a pflag value that uses parseDuration.
type durationFlag struct{ d *time.Duration }

func newDurationFlag(p *time.Duration, def time.Duration) *durationFlag {
	*p = def
	return &durationFlag{d: p}
}

func (f *durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func (f *durationFlag) Type() string { return "duration" }

// enumFlag is a pflag value holding a proto enum, spelled as the value's
// name without its prefix, lower case, with dashes: TOOL_CLASS_READ_ONLY is
// "read-only".
type enumFlag struct {
	desc   protoreflect.EnumDescriptor
	prefix string
	num    protoreflect.EnumNumber
}

func newEnumFlag(e protoreflect.Enum, prefix string) *enumFlag {
	return &enumFlag{desc: e.Descriptor(), prefix: prefix, num: e.Number()}
}

func (f *enumFlag) choices() []string {
	var out []string
	vals := f.desc.Values()
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			out = append(out, enumLabel(string(v.Name()), f.prefix))
		}
	}
	return out
}

func (f *enumFlag) String() string {
	if f.num == 0 {
		return ""
	}
	if v := f.desc.Values().ByNumber(f.num); v != nil {
		return enumLabel(string(v.Name()), f.prefix)
	}
	return ""
}

func (f *enumFlag) Set(s string) error {
	name := f.prefix + strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	v := f.desc.Values().ByName(protoreflect.Name(name))
	if v == nil || v.Number() == 0 {
		return fmt.Errorf("want one of %s", strings.Join(f.choices(), ", "))
	}
	f.num = v.Number()
	return nil
}

func (f *enumFlag) Type() string { return strings.Join(f.choices(), "|") }

// addEnumFlag defines an enum flag with shell completion of its values.
func addEnumFlag(cmd *cobra.Command, f *enumFlag, name, usage string) {
	cmd.Flags().Var(f, name, usage)
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(f.choices(), cobra.ShellCompDirectiveNoFileComp))
}

// enumLabel is the CLI spelling of an enum value name; "-" for UNSPECIFIED.
func enumLabel(name, prefix string) string {
	s := strings.TrimPrefix(name, prefix)
	if s == "UNSPECIFIED" {
		return "-"
	}
	return strings.ToLower(strings.ReplaceAll(s, "_", "-"))
}

// parseLabels turns repeated KEY=VALUE flags into a map.
func parseLabels(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --%s %q: want KEY=VALUE", flag, kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--%s %s given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// metaFlags are the ResourceMeta fields a create command accepts.
type metaFlags struct {
	owner       string
	description string
	labels      []string
}

func (m *metaFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&m.owner, "owner", "", "team or person accountable for it")
	f.StringVar(&m.description, "description", "", "human description")
	f.StringArrayVar(&m.labels, "label", nil, "label KEY=VALUE (repeatable)")
}

func (m *metaFlags) build(name string) (*configv1.ResourceMeta, error) {
	labels, err := parseLabels("label", m.labels)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("the name must not be empty")
	}
	return &configv1.ResourceMeta{Name: name, Owner: m.owner, Description: m.description, Labels: labels}, nil
}
