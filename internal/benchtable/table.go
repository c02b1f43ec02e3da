package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// measure is a value in the benchmark output: the median over the runs of
// every benchmark Bench matches, in Unit.
type measure struct {
	bench *regexp.Regexp
	unit  string
}

func m(bench, unit string) *measure { return &measure{regexp.MustCompile(bench), unit} }

// row is one line of the table: a value, optionally a baseline it is
// compared with, and the goal: for their ratio (goal), or for the
// value itself, in its unit (limit); 0 for none.
type row struct {
	label string
	value *measure
	base  *measure
	goal  float64
	limit float64
}

// rows map benchmark names and units to the table: the one place to adjust
// when a benchmark is renamed. A name that matches several sub-benchmarks
// (inputs, routes, allow and deny) takes the median over all of them.
var rows = []row{
	{label: "evaluation (Go API), learned, 10 callees / trivial", value: m(`^BenchmarkDecision/policy=learned/callees=10(/|$)`, "ns/op"), base: m(`^BenchmarkDecision/policy=trivial(/|$)`, "ns/op"), goal: 3},
	{label: "evaluation (Go API), learned, 1000 callees / trivial", value: m(`^BenchmarkDecision/policy=learned/callees=1000(/|$)`, "ns/op"), base: m(`^BenchmarkDecision/policy=trivial(/|$)`, "ns/op"), goal: 3},
	{label: "evaluation (Go API), learned, 10000 callees / trivial", value: m(`^BenchmarkDecision/policy=learned/callees=10000(/|$)`, "ns/op"), base: m(`^BenchmarkDecision/policy=trivial(/|$)`, "ns/op"), goal: 3},
	{label: "evaluation (Go API), learned, 10000 callees / 10 callees", value: m(`^BenchmarkDecision/policy=learned/callees=10000(/|$)`, "ns/op"), base: m(`^BenchmarkDecision/policy=learned/callees=10(/|$)`, "ns/op"), goal: 1.5},
	{label: "Check p50 (opa-envoy-plugin), 1000-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "full-p50-ns"), base: m(`^BenchmarkCheck$`, "trivial-p50-ns"), goal: 1.5},
	{label: "Check p50 (opa-envoy-plugin), per-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "callee-p50-ns"), base: m(`^BenchmarkCheck$`, "trivial-p50-ns"), goal: 1.5},
	{label: "Check p99 (opa-envoy-plugin), 1000-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "full-p99-ns"), base: m(`^BenchmarkCheck$`, "trivial-p99-ns")},
	{label: "sidecar RSS, 1000-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "full-rss-bytes"), base: m(`^BenchmarkCheck$`, "trivial-rss-bytes")},
	{label: "sidecar RSS, per-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "callee-rss-bytes"), base: m(`^BenchmarkCheck$`, "trivial-rss-bytes"), goal: 1.2},
	{label: "sidecar Go heap, 1000-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "full-heap-bytes"), base: m(`^BenchmarkCheck$`, "trivial-heap-bytes")},
	{label: "sidecar Go heap, per-callee bundle / trivial", value: m(`^BenchmarkCheck$`, "callee-heap-bytes"), base: m(`^BenchmarkCheck$`, "trivial-heap-bytes")},
	{label: "ingest / OTLP decode, time per span", value: m(`^BenchmarkConsumeTraces/batch=mixed$`, "ns/span"), base: m(`^BenchmarkDecodeOTLP/batch=mixed$`, "ns/span"), goal: 0.3},
	{label: "ingest, allocations per span (OTLP decode beside)", value: m(`^BenchmarkConsumeTraces/batch=mixed$`, "allocs/span"), base: m(`^BenchmarkDecodeOTLP/batch=mixed$`, "allocs/span"), limit: 1},
	{label: "render, 1k rules, CPU time", value: m(`^BenchmarkRender/rules=1000/changed=all$`, "cpu-ns/op")},
	{label: "render, 10k rules, CPU time", value: m(`^BenchmarkRender/rules=10000/changed=all$`, "cpu-ns/op")},
	{label: "render, 100k rules, CPU time", value: m(`^BenchmarkRender/rules=100000/changed=all$`, "cpu-ns/op"), limit: 1e9},
	{label: "render, 100k rules, one callee changed, CPU time", value: m(`^BenchmarkRender/rules=100000/changed=one$`, "cpu-ns/op")},
	{label: "collector memory per route, learning 200k routes", value: m(`^BenchmarkRouteMemory/phase=learn$`, "B/route"), limit: 1024},
	{label: "collector memory per route, restart with them", value: m(`^BenchmarkRouteMemory/phase=restart$`, "B/route"), limit: 1024},
}

const na = "n/a"

// cells are a row's value, baseline, ratio and goal as printed; what is
// missing from the output is n/a.
func (r row) cells(res *results) []string {
	out := []string{r.label, na, "", "", ""}
	v, ok := res.median(r.value.bench, r.value.unit)
	if ok {
		out[1] = format(v, r.value.unit)
	}
	if r.limit > 0 {
		out[4] = "≤ " + format(r.limit, r.value.unit) + verdict(ok, v <= r.limit)
	}
	if r.base == nil {
		return out
	}
	out[2], out[3] = na, na
	b, bok := res.median(r.base.bench, r.base.unit)
	if bok {
		out[2] = format(b, r.base.unit)
	}
	if ok && bok && b != 0 {
		out[3] = fmt.Sprintf("%.2fx", v/b)
	}
	if r.goal > 0 {
		out[4] = fmt.Sprintf("≤ %gx", r.goal) + verdict(ok && bok && b != 0, v/b <= r.goal)
	}
	return out
}

// verdict says whether a goal was met, when there is a figure to tell.
func verdict(measured, met bool) string {
	switch {
	case !measured:
		return ""
	case met:
		return ": met"
	}
	return ": missed"
}

// format prints a value in its unit's natural scale: times from
// nanoseconds, sizes from bytes, counts as they are.
func format(v float64, unit string) string {
	base, per, _ := strings.Cut(unit, "/")
	if per != "" && per != "op" {
		per = "/" + per
	} else {
		per = ""
	}
	switch {
	case base == "ns" || strings.HasSuffix(base, "-ns"):
		for _, s := range []struct {
			scale float64
			name  string
		}{{1e9, "s"}, {1e6, "ms"}, {1e3, "µs"}} {
			if v >= s.scale {
				return fmt.Sprintf("%.3g %s%s", v/s.scale, s.name, per)
			}
		}
		return fmt.Sprintf("%.3g ns%s", v, per)
	case base == "B" || strings.HasSuffix(base, "-bytes"):
		for _, s := range []struct {
			scale float64
			name  string
		}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
			if v >= s.scale {
				return fmt.Sprintf("%.3g %s%s", v/s.scale, s.name, per)
			}
		}
		return fmt.Sprintf("%.3g B%s", v, per)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// write prints the table in Markdown, padded for reading in a terminal,
// below the machine the figures come from.
func write(w io.Writer, res *results, rows []row) {
	machine := res.cpu
	if machine == "" {
		machine = "unknown CPU"
	}
	if res.procs != "" {
		machine += ", GOMAXPROCS " + res.procs
	}
	fmt.Fprintf(w, "Medians over the runs; %s.\n\n", machine)
	table := [][]string{{"measure", "value", "baseline", "ratio", "goal"}}
	for _, r := range rows {
		table = append(table, r.cells(res))
	}
	widths := make([]int, len(table[0]))
	for _, cells := range table {
		for i, c := range cells {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		for i, c := range cells {
			fmt.Fprintf(w, "| %s%s ", c, strings.Repeat(" ", widths[i]-len([]rune(c))))
		}
		fmt.Fprintln(w, "|")
	}
	line(table[0])
	rule := make([]string, len(widths))
	for i, n := range widths {
		rule[i] = strings.Repeat("-", n)
	}
	line(rule)
	for _, cells := range table[1:] {
		line(cells)
	}
}
