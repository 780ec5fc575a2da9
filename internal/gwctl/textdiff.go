package gwctl

import (
	"fmt"
	"strings"
)

// maxDiffEdits bounds the edit distance lineDiff searches: sources differ
// in a few places, and beyond this the diff says so instead of growing
// its memory with the square of the distance.
const maxDiffEdits = 4000

// lineDiff writes a unified diff of a and b (three lines of context) with
// Myers' algorithm: "--- nameA", "+++ nameB", "@@ -l,n +l,n @@" hunks.
// Equal texts give "".
func lineDiff(nameA, nameB, a, b string) string {
	x, y := splitLines(a), splitLines(b)
	ops, ok := myers(x, y)
	if !ok {
		return fmt.Sprintf("--- %s\n+++ %s\n(the versions differ in more than %d lines; compare them with gwctl policy show --version)\n", nameA, nameB, maxDiffEdits)
	}
	changed := false
	for _, o := range ops {
		changed = changed || o.kind != ' '
	}
	if !changed {
		return ""
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	const context = 3
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: from context lines before the change to context lines
		// after the last change that is at most 2*context apart.
		start := max(0, i-context)
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j
			} else if j-end > 2*context {
				break
			}
		}
		end = min(len(ops), end+context+1)
		la, lb, na, nb := ops[start].a+1, ops[start].b+1, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", la, na, lb, nb)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// edit is one line of a diff: ' ' kept, '-' only in a, '+' only in b;
// a and b are its 0-based line numbers (the next line's, for the side it
// is not on).
type edit struct {
	kind byte
	text string
	a, b int
}

// myers returns the shortest edit script from x to y, or false when it
// needs more than maxDiffEdits edits.
func myers(x, y []string) ([]edit, bool) {
	n, m := len(x), len(y)
	maxD := min(n+m, maxDiffEdits)
	offset := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var i int
			if k == -d || k != d && v[offset+k-1] < v[offset+k+1] {
				i = v[offset+k+1]
			} else {
				i = v[offset+k-1] + 1
			}
			j := i - k
			for i < n && j < m && x[i] == y[j] {
				i, j = i+1, j+1
			}
			v[offset+k] = i
			if i >= n && j >= m {
				return backtrack(x, y, trace, offset, d), true
			}
		}
	}
	return nil, false
}

func backtrack(x, y []string, trace [][]int, offset, d int) []edit {
	var rev []edit
	i, j := len(x), len(y)
	for ; d > 0; d-- {
		v := trace[d]
		k := i - j
		var prevK int
		if k == -d || k != d && v[offset+k-1] < v[offset+k+1] {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevI := v[offset+prevK]
		prevJ := prevI - prevK
		for i > prevI && j > prevJ {
			i, j = i-1, j-1
			rev = append(rev, edit{kind: ' ', text: x[i], a: i, b: j})
		}
		if i == prevI {
			j--
			rev = append(rev, edit{kind: '+', text: y[j], a: i, b: j})
		} else {
			i--
			rev = append(rev, edit{kind: '-', text: x[i], a: i, b: j})
		}
	}
	for i > 0 && j > 0 {
		i, j = i-1, j-1
		rev = append(rev, edit{kind: ' ', text: x[i], a: i, b: j})
	}
	out := make([]edit, len(rev))
	for k, e := range rev {
		out[len(rev)-1-k] = e
	}
	return out
}
