package openapi

// Red-team round 2 of routes::openapi (spec). The defects it found are fixed;
// their tests are TestRedteamFixed..., what held TestRedteamHolds...,
// and a limit kept as documented TestRedteamKnown...; BenchmarkRedteam...
// measure cost.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// rt2EnumSpec: n literal operations GET /r/k<i>/{id} (integer) before
// GET /r/{s}/{id}, s an enum of 64 values.
func rt2EnumSpec(n int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nservers: [{url: /api}]\npaths:\n")
	var vals []string
	for i := range 64 {
		vals = append(vals, fmt.Sprintf("v%d", i))
	}
	fmt.Fprintf(&b, "  /r/{s}/{id}:\n    get:\n      parameters: [{name: s, in: path, required: true, schema: {type: string, enum: [%s]}}, {name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {\"200\": {description: ok}}\n", strings.Join(vals, ", "))
	for k := range n {
		fmt.Fprintf(&b, "  /r/k%d/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {\"200\": {description: ok}}\n", k)
	}
	return b.String()
}

// What rendering does for each caller's one record of the enum operation:
// Alternatives, then Taken for each alternative (a wildcard route). Its
// allocations (a clone per operation visited) grow with the operations of
// the same shape before the enum operation, times the enum's size, and
// rendering repeats it for every caller of the callee at every flush where
// any of the callee's records changed
// (BenchmarkRedteamRenderEnumAfterManyOperations in render: 5000
// operations, 50 callers, 2.8 s for one callee).
func TestRedteamFixedAlternativesCostGrowsWithSpec(t *testing.T) {
	r, err := route.ParseKey("/api/r/v0/{int}")
	require.NoError(t, err)
	cost := func(n int) float64 {
		spec, err := Parse([]byte(rt2EnumSpec(n)), "enum")
		require.NoError(t, err)
		require.Len(t, spec.Alternatives("GET", r), 63)
		return testing.AllocsPerRun(3, func() {
			for _, alt := range spec.Alternatives("GET", r) {
				spec.Taken("GET", alt, true)
			}
		})
	}
	small, large := cost(10), cost(2000)
	t.Logf("allocations per record: %v with 10 operations before, %v with 2000", small, large)
	assert.Less(t, large, 4*small, "a record's render cost grows with the spec")
}

// Odd documents give an error or a spec, never a panic; what they make of
// a request is logged.
func TestRedteamHoldsOddDocumentsNoPanic(t *testing.T) {
	head := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\n"
	op := func(path, params string) string {
		return fmt.Sprintf("  %s:\n    get:\n      parameters: [%s]\n      responses: {\"200\": {description: ok}}\n", path, params)
	}
	cases := map[string]string{
		"empty-name":   head + "paths:\n" + op("/a/{}", ""),
		"dup-param":    head + "paths:\n" + op("/a/{x}/{x}", "{name: x, in: path, required: true, schema: {type: string}}"),
		"big-int-enum": head + "paths:\n" + op("/a/{x}", "{name: x, in: path, required: true, schema: {type: integer, enum: [1e20, 18446744073709551615, -1]}}"),
		"slash-enum":   head + "paths:\n" + op("/a/{x}", "{name: x, in: path, required: true, schema: {type: string, enum: [\"a/b\", \"..\", \".\", \"%2F\"]}}"),
		"bool-const":   "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths:\n" + op("/a/{x}", "{name: x, in: path, required: true, schema: {const: true}}"),
		"relative-url": head + "servers: [{url: v1}]\npaths:\n" + op("/a", ""),
		"query-url":    head + "servers: [{url: \"/v1?x=1#f\"}]\npaths:\n" + op("/a", ""),
		"authority":    head + "servers: [{url: \"//host/base/\"}]\npaths:\n" + op("/a", ""),
		"dot-base":     head + "servers: [{url: \"/v1/../admin\"}]\npaths:\n" + op("/a", ""),
		"escaped-base": head + "servers: [{url: \"/v%2F1\"}]\npaths:\n" + op("/a", ""),
		"trailing":     head + "paths:\n" + op("/a/", "") + op("/a", ""),
		"double-slash": head + "paths:\n" + op("/a//b", ""),
		"neg-int":      head + "paths:\n" + op("/a/{x}", "{name: x, in: path, required: true, schema: {type: integer, minimum: -5}}"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Parse([]byte(body), name)
			if err != nil {
				t.Logf("error: %v", err)
				return
			}
			for _, o := range s.Operations {
				t.Logf("operation %s", o.String())
			}
			for _, r := range s.Refused {
				t.Logf("refused %s %s: %s", r.Method, r.Path, r.Reason)
			}
			for _, p := range []string{"/a", "/a/", "/a//b", "/v1/a", "/admin/a", "/base/a", "/a/a/b", "/a/..", "/a/1", "/a/-1", "/a/true", "/a/100000000000000000000"} {
				if o, ok := s.Match("GET", p); ok {
					t.Logf("%s -> %s", p, o.String())
				}
			}
		})
	}
}

// A server URL may be a network-path reference (OpenAPI allows relative
// server URLs, resolved against the document): //api.example.com/v1 is
// host api.example.com, base path /v1. The spec takes the host for a path
// segment, so GET /v1/orders is no operation (learned by the heuristics,
// or refused with strict) and GET /api.example.com/v1/orders is one.
func TestRedteamFixedNetworkPathServerURLHostIsASegment(t *testing.T) {
	s, err := Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: "//api.example.com/v1"}]
paths:
  /orders:
    get: {responses: {"200": {description: ok}}}
`), "netpath")
	require.NoError(t, err)
	_, ok := s.Match("GET", "/v1/orders")
	assert.True(t, ok, "operations: %v", s.Operations[0].String())
	_, ok = s.Match("GET", "/api.example.com/v1/orders")
	assert.False(t, ok)
}
