package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Markers of the generated sections of docs/BENCHMARKS.md. Everything between a begin and its
// end is rewritten by each run; everything around them is the hand-written prose.
const (
	benchBegin = "<!-- bench:begin -->"
	benchEnd   = "<!-- bench:end -->"
	soakBegin  = "<!-- soak:begin -->"
	soakEnd    = "<!-- soak:end -->"
)

// errMarkers is returned when a document's markers are missing, repeated or out of order.
var errMarkers = errors.New("benchsuite: generated-section markers")

// replaceSection returns doc with the text between the lines begin and end replaced by body
// (the markers stay). Each marker must appear exactly once, begin first.
func replaceSection(doc, begin, end, body string) (string, error) {
	if n := strings.Count(doc, begin); n != 1 {
		return "", fmt.Errorf("%w: %q appears %d times, want once", errMarkers, begin, n)
	}
	if n := strings.Count(doc, end); n != 1 {
		return "", fmt.Errorf("%w: %q appears %d times, want once", errMarkers, end, n)
	}
	i := strings.Index(doc, begin) + len(begin)
	j := strings.Index(doc, end)
	if j < i {
		return "", fmt.Errorf("%w: %q comes before %q", errMarkers, end, begin)
	}
	body = strings.Trim(body, "\n")
	if body != "" {
		body = "\n" + body
	}
	return doc[:i] + body + "\n" + doc[j:], nil
}

// writeSection replaces a generated section of the file at path.
func writeSection(path, begin, end, body string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := replaceSection(string(b), begin, end, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// thousands prints n with commas: 19000 → 19,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// num prints v with about three significant digits (integers of four or more digits with
// commas, whole numbers without decimals): 0.412, 12.3, 845, 2,000, 28.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case a >= 999.5:
		return thousands(int64(math.Round(v)))
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64) // a count: 28 allocs, not 28.0
	case a >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.9995:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// ratio prints a/b as "2.3×", "–" when b is 0.
func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	r := a / b
	if r >= 10 {
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

// mb prints bytes as decimal megabytes.
func mb(b uint64) string { return num(float64(b) / 1e6) }

// table is a markdown table under construction.
type table struct{ b strings.Builder }

func newTable(header ...string) *table {
	t := &table{}
	t.row(header...)
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
	return t
}

func (t *table) row(cells ...string) {
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (t *table) String() string { return t.b.String() }

// code wraps s in backticks for markdown.
func code(s string) string { return "`" + s + "`" }

// notMeasured is the line a table gives way to when its scenario failed.
func notMeasured(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(msg) > 600 {
		msg = msg[:600] + "…"
	}
	return "_Not measured: " + msg + "_\n"
}
