package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sample is benchmark output as `make bench` writes it: two packages,
// several runs, a line cut short by a failure, and everything else
// go test prints.
const sample = `goos: linux
goarch: amd64
pkg: github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/quality
cpu: Test CPU @ 2.00GHz
BenchmarkDecision/policy=learned/callees=10/input=xfcc/route=literal/allow-2     	    5000	    200000 ns/op	  1000 allocs/op
BenchmarkDecision/policy=learned/callees=10/input=xfcc/route=literal/allow-2     	    5000	    220000 ns/op	  1000 allocs/op
BenchmarkDecision/policy=learned/callees=10/input=xfcc/route=literal/deny-2      	    5000	    300000 ns/op	  1000 allocs/op
BenchmarkDecision/policy=learned/callees=1000/input=xfcc/route=literal/allow-2   	    5000	    250000 ns/op	  1000 allocs/op
BenchmarkDecision/policy=trivial/input=xfcc-2                                    	   50000	     20000 ns/op	   100 allocs/op
BenchmarkDecision/policy=trivial/input=xfcc-2                                    	   50000	     30000 ns/op	   100 allocs/op
--- FAIL: BenchmarkBroken-2
BenchmarkBroken-2   	--- FAIL
PASS
ok  	github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/quality	12.3s
pkg: github.com/otelcol-authz/otelcol-authz/test/e2e
BenchmarkCheck-2   	    3000	   1500000 ns/op	    600000 full-p50-ns	    400000 trivial-p50-ns	  45088768 callee-rss-bytes	  41943040 trivial-rss-bytes
BenchmarkCheck-2   	    3000	   1500000 ns/op	    500000 full-p50-ns	    400000 trivial-p50-ns	  46137344 callee-rss-bytes	  41943040 trivial-rss-bytes
BenchmarkCheck-2   	    3000	   1500000 ns/op	    550000 full-p50-ns	    400000 trivial-p50-ns	  60000000 callee-rss-bytes	  41943040 trivial-rss-bytes
BenchmarkRender/rules=1000/changed=all-2   	      20	  60000000 ns/op	  90000000 cpu-ns/op
`

func TestCells(t *testing.T) {
	var res results
	require.NoError(t, res.read(strings.NewReader(sample)))
	for _, tt := range []struct {
		name string
		row  row
		want []string
	}{
		{"median over runs and sub-benchmarks, against a baseline",
			row{label: "eval 10", value: m(`^BenchmarkDecision/policy=learned/callees=10(/|$)`, "ns/op"), base: m(`^BenchmarkDecision/policy=trivial(/|$)`, "ns/op")},
			[]string{"eval 10", "220 µs", "25 µs", "8.80x", ""}},
		{"a prefix of another size does not match",
			row{label: "eval 1000", value: m(`^BenchmarkDecision/policy=learned/callees=1000(/|$)`, "ns/op")},
			[]string{"eval 1000", "250 µs", "", "", ""}},
		{"goal met",
			row{label: "check", value: m(`^BenchmarkCheck$`, "full-p50-ns"), base: m(`^BenchmarkCheck$`, "trivial-p50-ns"), goal: 1.5},
			[]string{"check", "550 µs", "400 µs", "1.38x", "≤ 1.5x: met"}},
		{"goal missed",
			row{label: "rss", value: m(`^BenchmarkCheck$`, "callee-rss-bytes"), base: m(`^BenchmarkCheck$`, "trivial-rss-bytes"), goal: 1.05},
			[]string{"rss", "44 MiB", "40 MiB", "1.10x", "≤ 1.05x: missed"}},
		{"baseline missing",
			row{label: "render", value: m(`^BenchmarkRender/rules=1000/changed=all$`, "cpu-ns/op"), base: m(`^BenchmarkDecodeOTLP/batch=mixed$`, "ns/span"), goal: 2},
			[]string{"render", "90 ms", na, na, "≤ 2x"}},
		{"value missing",
			row{label: "ingest", value: m(`^BenchmarkConsumeTraces/batch=mixed$`, "ns/span"), base: m(`^BenchmarkCheck$`, "trivial-p50-ns")},
			[]string{"ingest", na, "400 µs", na, ""}},
		{"unit missing",
			row{label: "route", value: m(`.`, "B/route")},
			[]string{"route", na, "", "", ""}},
		{"limit met, beside a baseline",
			row{label: "allocs", value: m(`^BenchmarkCheck$`, "full-p50-ns"), base: m(`^BenchmarkCheck$`, "trivial-p50-ns"), limit: 6e5},
			[]string{"allocs", "550 µs", "400 µs", "1.38x", "≤ 600 µs: met"}},
		{"limit missed",
			row{label: "render", value: m(`^BenchmarkRender/rules=1000/changed=all$`, "cpu-ns/op"), limit: 5e7},
			[]string{"render", "90 ms", "", "", "≤ 50 ms: missed"}},
		{"limit, value missing",
			row{label: "memory", value: m(`^BenchmarkRouteMemory/phase=learn$`, "B/route"), limit: 1024},
			[]string{"memory", na, "", "", "≤ 1 KiB/route"}},
		{"a failed run reports nothing",
			row{label: "broken", value: m(`^BenchmarkBroken$`, "ns/op")},
			[]string{"broken", na, "", "", ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.row.cells(&res))
		})
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{
		{512, "ns/op", "512 ns"},
		{1160, "ns/span", "1.16 µs/span"},
		{1.2e6, "full-p50-ns", "1.2 ms"},
		{2.5e9, "ns/op", "2.5 s"},
		{9e7, "cpu-ns/op", "90 ms"},
		{92274688, "full-rss-bytes", "88 MiB"},
		{310, "B/route", "310 B/route"},
		{2048, "B/route", "2 KiB/route"},
		{3, "allocs/span", "3 allocs/span"},
	} {
		assert.Equal(t, tt.want, format(tt.v, tt.unit), "%v %s", tt.v, tt.unit)
	}
}

// The whole table prints before any benchmark exists, every row n/a, and
// names the machine once there is output.
func TestWrite(t *testing.T) {
	for _, tt := range []struct {
		name, input, machine string
	}{
		{"no output", "", "unknown CPU"},
		{"sample", sample, "Test CPU @ 2.00GHz, GOMAXPROCS 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var res results
			require.NoError(t, res.read(strings.NewReader(tt.input)))
			var out strings.Builder
			write(&out, &res, rows)
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			assert.Contains(t, lines[0], tt.machine)
			require.Len(t, lines, 2+2+len(rows), "header, blank, table head and rule, one line per row")
			for i, r := range rows {
				assert.True(t, strings.HasPrefix(lines[4+i], "| "+r.label+" "), "%q", lines[4+i])
			}
		})
	}
}
