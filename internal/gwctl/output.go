package gwctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"
)

// printer writes command results in the format of -o: json and yaml print
// the API's response message, table prints text for people.
type printer struct {
	format string // "table", "json" or "yaml"
	w      io.Writer
}

// structured reports whether the output is json or yaml.
func (p *printer) structured() bool { return p.format != "table" }

// message prints m as protojson (indented, lowerCamelCase field names) or
// as the YAML form of that JSON.
func (p *printer) message(m proto.Message) error {
	if p.format == "csv" {
		return errors.New("-o csv is available for 'gwctl audit query' only")
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	return p.rawJSON(b)
}

// rawJSON prints a JSON document in the json or yaml format. protojson's
// spacing is deliberately unstable, so it is re-indented here.
func (p *printer) rawJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	buf.WriteByte('\n')
	out := buf.Bytes()
	if p.format == "yaml" {
		y, err := yaml.JSONToYAML(out)
		if err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		out = y
	}
	_, err := p.w.Write(out)
	return err
}

// value prints v (JSON-encodable) in the json or yaml format.
func (p *printer) value(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	return p.rawJSON(b)
}

// table prints rows under a header, in aligned columns.
func (p *printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// field is one line of a detail view.
type field struct {
	key, value string
}

// fields prints "Key:  value" lines, aligned.
func (p *printer) fields(fs []field) error {
	tw := tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
	for _, f := range fs {
		fmt.Fprintf(tw, "%s:\t%s\n", f.key, cell(f.value))
	}
	return tw.Flush()
}

// linef prints one line of text.
func (p *printer) linef(format string, args ...any) error {
	_, err := fmt.Fprintf(p.w, format+"\n", args...)
	return err
}

// text prints s as is, ending it with a newline.
func (p *printer) text(s string) error {
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, err := io.WriteString(p.w, s)
	return err
}

// cell makes a server-supplied string safe for one table cell: control
// characters (which could also drive the terminal) become spaces, and an
// empty value shows as "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func timeText(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func labelsText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
