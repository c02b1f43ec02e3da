package overrides

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

func TestLoadExample(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "overrides.yaml"))
	require.NoError(t, err)
	require.Len(t, s.Allow, 1)
	require.Len(t, s.Deny, 2)

	a := s.Allow[0]
	assert.Equal(t, 2, a.Line)
	assert.Equal(t, "spiffe://example.org/ns/bank/sa/balances", a.Callee.String())
	assert.Equal(t, "spiffe://example.org/ns/bank/sa/frontend", a.Caller.String())
	assert.Equal(t, []string{"GET"}, a.Methods)
	assert.Equal(t, []Route{
		{Segments: []Segment{{Lit: "healthz"}}, Text: "/healthz"},
		{Segments: []Segment{{Lit: "balances"}, {Wild: route.Int}, {Lit: "statement"}}, Text: "/balances/{id:int}/statement"},
	}, a.Routes)

	d := s.Deny[0]
	assert.Equal(t, 7, d.Line)
	assert.Equal(t, "spiffe://example.org/ns/bank/sa/*", d.Callee.String())
	assert.Equal(t, "*", d.Caller.String())
	assert.Equal(t, []string{"DELETE"}, d.Methods)
	assert.Equal(t, []Route{{Rest: true, Text: "/**"}}, d.Routes)

	d = s.Deny[1]
	assert.Equal(t, 11, d.Line)
	assert.Nil(t, d.Methods)
	assert.Equal(t, []Route{{Segments: []Segment{{Lit: "balances"}, {Lit: "0"}}, Text: "/balances/0"}}, d.Routes)

	const (
		balances = "spiffe://example.org/ns/bank/sa/balances"
		frontend = "spiffe://example.org/ns/bank/sa/frontend"
	)
	assert.True(t, a.Match(balances, frontend, "GET", []string{"balances", "42", "statement"}))
	assert.False(t, a.Match(balances, frontend, "POST", []string{"healthz"}))
	assert.True(t, s.Deny[0].Match(frontend, "spiffe://other.org/x", "DELETE", []string{"anything", "at", "all"}))
	assert.True(t, s.Deny[1].Match(balances, frontend, "PATCH", []string{"balances", "0"}))
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	require.ErrorContains(t, err, "missing.yaml")

	path := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(path, make([]byte, maxSize+2), 0o600))
	_, err = Load(path)
	require.EqualError(t, err, path+": larger than the limit of 1048576 bytes")
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing yet\n", "---\n", "~", "{}", "allow:\n", "allow: []\ndeny: []\n", "allow: ~\ndeny:\n"} {
		s, err := Parse("f.yaml", []byte(in))
		require.NoError(t, err, "%q", in)
		assert.Empty(t, s.Allow, "%q", in)
		assert.Empty(t, s.Deny, "%q", in)
	}
}

// rule is a valid rule with one field replaced.
func rule(field, value string) string {
	fields := map[string]string{
		"callee":  `"spiffe://td/a"`,
		"caller":  `"*"`,
		"methods": "[GET]",
		"routes":  `["/x"]`,
	}
	fields[field] = value
	var b strings.Builder
	b.WriteString("allow:\n")
	first := true
	for _, k := range []string{"callee", "caller", "methods", "routes"} {
		if fields[k] == "-" {
			continue
		}
		if first {
			b.WriteString("  - ")
			first = false
		} else {
			b.WriteString("    ")
		}
		b.WriteString(k + ": " + fields[k] + "\n")
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the whole error, or with a trailing "..." its start
	}{
		{"top level list", "- allow\n", "f.yaml:1: must be a mapping"},
		{"top level string", "allow\n", "f.yaml:1: must be a mapping"},
		{"unknown top key", "allow: []\nrules: []\n", `f.yaml:2: unknown key "rules" (want allow, deny)`},
		{"duplicate top key", "deny: []\ndeny: []\n", `f.yaml:2: key "deny" given twice`},
		{"rules not a list", "allow: {callee: x}\n", "f.yaml:1: allow: must be a list of rules"},
		{"rule not a mapping", "deny:\n  - x\n", "f.yaml:2: deny[0]: must be a mapping"},
		{"unknown rule key", "allow:\n  - callee: '*'\n    method: [GET]\n", `f.yaml:3: allow[0]: unknown key "method" (want callee, caller, methods, routes)`},
		{"duplicate rule key", rule("callee", `"*"`) + "    callee: '*'\n", `f.yaml:6: allow[0]: key "callee" given twice`},
		{"missing callee", rule("callee", "-"), "f.yaml:2: allow[0]: callee is required"},
		{"missing caller", rule("caller", "-"), "f.yaml:2: allow[0]: caller is required"},
		{"null caller", rule("caller", ""), "f.yaml:2: allow[0]: caller is required"},
		{"missing methods", rule("methods", "-"), "f.yaml:2: allow[0]: methods is required"},
		{"missing routes", rule("routes", "-"), "f.yaml:2: allow[0]: routes is required"},
		{"callee not a string", rule("callee", "[a]"), "f.yaml:2: allow[0].callee: must be a string"},
		{"caller a number", rule("caller", "12"), `f.yaml:3: allow[0].caller: "12" must be a string`},
		{"bad callee", rule("callee", "spiffe://td/sa-*"), `f.yaml:2: allow[0].callee: spiffeid: invalid SPIFFE ID pattern "spiffe://td/sa-*": "*" must be a whole segment`},
		{"bad caller", rule("caller", "spiffe://TD/x"), `f.yaml:3: allow[0].caller: spiffeid: invalid SPIFFE ID pattern "spiffe://TD/x": invalid character "T" in trust domain at offset 9`},
		{"methods not a list", rule("methods", "GET"), "f.yaml:4: allow[0].methods: must be a list"},
		{"methods empty", rule("methods", "[]"), "f.yaml:4: allow[0].methods: must not be empty"},
		{"lower-case method", rule("methods", "[GET, delete]"), `f.yaml:4: allow[0].methods: "delete" is not an upper-case HTTP method`},
		{"method with space", rule("methods", `["GET X"]`), `f.yaml:4: allow[0].methods: "GET X" is not an upper-case HTTP method`},
		{"method not a string", rule("methods", "[1]"), `f.yaml:4: allow[0].methods: "1" must be a string`},
		{"any method and more", rule("methods", `[GET, "*"]`), `f.yaml:4: allow[0].methods: "*" (any method) must stand alone`},
		{"routes empty", rule("routes", "[]"), "f.yaml:5: allow[0].routes: must not be empty"},
		{"route not a string", rule("routes", "[[x]]"), "f.yaml:5: allow[0].routes: must be a string"},
		{"relative route", rule("routes", "[x]"), `f.yaml:5: allow[0].routes: template "x" must start with /`},
		{"rest in the middle", rule("routes", `["/a/**/b"]`), `f.yaml:5: allow[0].routes: route "/a/**/b": "**" is allowed only as the last segment`},
		{"double rest", rule("routes", `["/**/**"]`), `f.yaml:5: allow[0].routes: route "/**/**": "**" is allowed only as the last segment`},
		{"star segment", rule("routes", `["/a/*"]`), `f.yaml:5: allow[0].routes: template "/a/*": wildcards are written {name}; "*" is not allowed`},
		{"star in a segment", rule("routes", `["/a/b*/**"]`), `f.yaml:5: allow[0].routes: template "/a/b*": wildcards are written {name}; "b*" is not allowed`},
		{"unknown type", rule("routes", `["/a/{x:name}"]`), `f.yaml:5: allow[0].routes: template "/a/{x:name}": unknown type "name" ...`},
		{"dot segment", rule("routes", `["/a/../b"]`), `f.yaml:5: allow[0].routes: template "/a/../b": path has a dot segment`},
		{"bad literal", rule("routes", `["/a b"]`), `f.yaml:5: allow[0].routes: template "/a b": invalid path: character ' ' not allowed in a path`},
		{"second route bad", "deny:\n  - callee: '*'\n    caller: '*'\n    methods: ['*']\n    routes:\n      - /ok\n      - /a/**/b\n", `f.yaml:7: deny[0].routes: route "/a/**/b": ...`},
		{"second rule bad", rule("routes", `["/x"]`) + "  - callee: '*'\n", "f.yaml:6: allow[1]: caller is required"},
		{"alias", "allow:\n  - callee: &a '*'\n    caller: *a\n    methods: [GET]\n    routes: [/x]\n", "f.yaml:3: allow[0].caller: aliases are not allowed"},
		{"merge key", "allow:\n  - <<: {callee: '*'}\n", `f.yaml:2: allow[0]: unknown key "<<" ...`},
		{"complex key", "? [a]\n: b\n", `f.yaml:1: unknown key "" ...`},
		{"syntax", "allow:\n  - callee: '*\n", "f.yaml:2: found unexpected end of stream"},
		{"tab indent", "allow:\n\t- x\n", "f.yaml:2: found character that cannot start any token"},
		{"two documents", "allow: []\n---\ndeny: []\n", "f.yaml:2: more than one YAML document"},
		{"too big", strings.Repeat("#", maxSize+1), "f.yaml: larger than the limit of 1048576 bytes"},
		{"too many rules", "allow:\n" + strings.Repeat("  - {callee: '*', caller: '*', methods: [GET], routes: [/x]}\n", maxRules) + "deny:\n  - {}\n", "f.yaml:10003: deny: more than 10000 rules in the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("f.yaml", []byte(tt.in))
			require.Error(t, err, "%q", tt.in)
			assert.Nil(t, s)
			if prefix, ok := strings.CutSuffix(tt.want, "..."); ok {
				assert.True(t, strings.HasPrefix(err.Error(), prefix), "%q\nwant prefix %q", err.Error(), prefix)
			} else {
				assert.EqualError(t, err, tt.want)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	s, err := Parse("f.yaml", []byte(`
deny:
  - callee: spiffe://td/ns/*/**
    caller: spiffe://*/a
    methods: [POST, GET, POST, DELETE]
    routes:
      - /
      - /admin/**
      - /users/{id}/keys/:key/{k:uuid}
      - /users/{id:token}
`))
	require.NoError(t, err)
	require.Len(t, s.Deny, 1)
	r := s.Deny[0]
	assert.Equal(t, 3, r.Line)
	assert.Equal(t, []string{"td", "ns", "*"}, r.Callee.Segments())
	assert.True(t, r.Callee.Rest())
	assert.Equal(t, []string{"DELETE", "GET", "POST"}, r.Methods)
	assert.Equal(t, []Route{
		{Segments: []Segment{{Lit: ""}}, Text: "/"},
		{Segments: []Segment{{Lit: "admin"}}, Rest: true, Text: "/admin/**"},
		{Segments: []Segment{{Lit: "users"}, {Any: true}, {Lit: "keys"}, {Any: true}, {Wild: route.UUID}}, Text: "/users/{id}/keys/:key/{k:uuid}"},
		{Segments: []Segment{{Lit: "users"}, {Wild: route.Token}}, Text: "/users/{id:token}"},
	}, r.Routes)
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		text    string
		match   [][]string
		noMatch [][]string
	}{
		{"/**", [][]string{{""}, {"a"}, {"a", "b", ""}, {".."}}, nil},
		{"/admin/**", [][]string{{"admin"}, {"admin", ""}, {"admin", "x", "y"}}, [][]string{{""}, {"admins"}, {"x", "admin"}}},
		{"/", [][]string{{""}}, [][]string{{"a"}, {"", ""}}},
		{"/users/{id}", [][]string{{"users", "x"}, {"users", "a b"}, {"users", ".."}}, [][]string{{"users", ""}, {"users"}, {"users", "x", "y"}}},
		{"/users/{id:int}/**", [][]string{{"users", "7"}, {"users", "7", ""}}, [][]string{{"users", "x"}, {"users", ""}}},
		{"/users/{id:token}", [][]string{{"users", "x"}}, [][]string{{"users", ".."}, {"users", "a b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			r, err := parseRoute(tt.text)
			require.NoError(t, err)
			for _, segs := range tt.match {
				assert.True(t, r.Match(segs), "%q", segs)
			}
			for _, segs := range tt.noMatch {
				assert.False(t, r.Match(segs), "%q", segs)
			}
		})
	}
}

// mustPattern is for the tables of the match tests.
func mustPattern(t *testing.T, s string) spiffeid.Pattern {
	t.Helper()
	p, err := spiffeid.ParsePattern(s)
	require.NoError(t, err)
	return p
}

// A bad version is reported once while it stays, and again when it comes
// back after the file was good in between: the operator sees every bad
// edit, and the rules read before stay in use throughout.
func TestReloadReportsABadVersionAgainAfterAGoodOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overrides.yaml")
	const good = "deny:\n  - {callee: \"*\", caller: \"*\", methods: [DELETE], routes: [\"/**\"]}\n"
	const bad = "deny:\n  - {callee: \"*\", caller: \"*\", method: [DELETE], routes: [\"/**\"]}\n"
	write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	write(good)
	f, err := Open(path)
	require.NoError(t, err)
	for _, step := range []struct {
		content string // "" removes the file
		changed bool
		fails   bool
	}{
		{bad, false, true},
		{bad, false, false}, // the same bad version: not again
		{good, false, false},
		{bad, false, true}, // back again: reported again
		{"", false, true},
		{good, false, false},
		{"", false, true},
	} {
		if step.content == "" {
			require.NoError(t, os.Remove(path))
		} else {
			write(step.content)
		}
		changed, err := f.Reload()
		if step.content != good {
			// A new content is taken up at the second read that finds it.
			assert.False(t, changed)
			require.NoError(t, err, "%q", step.content)
			changed, err = f.Reload()
		}
		assert.Equal(t, step.changed, changed, "%q", step.content)
		assert.Equal(t, step.fails, err != nil, "%q: %v", step.content, err)
		require.Len(t, f.Rules().Deny, 1, "%q", step.content)
	}
}

// A file read while it is being written in place is not taken up until a
// second read finds the same content.
func TestReloadWaitsForTheFileToSettle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overrides.yaml")
	const full = "deny:\n  - {callee: \"*\", caller: \"*\", methods: [DELETE], routes: [\"/**\"]}\n  - {callee: \"*\", caller: \"*\", methods: [PUT], routes: [\"/**\"]}\n"
	const half = "deny:\n  - {callee: \"*\", caller: \"*\", methods: [DELETE], routes: [\"/**\"]}\n"
	write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	write(full)
	f, err := Open(path)
	require.NoError(t, err)
	write(half) // caught half-way through a rewrite
	changed, err := f.Reload()
	require.NoError(t, err)
	assert.False(t, changed)
	write(full + "  - {callee: \"*\", caller: \"*\", methods: [POST], routes: [\"/admin/**\"]}\n")
	changed, err = f.Reload()
	require.NoError(t, err)
	assert.False(t, changed, "the content moved on: not settled")
	assert.Len(t, f.Rules().Deny, 2, "the half-written file was never used")
	changed, err = f.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Len(t, f.Rules().Deny, 3)
}

// "Two reads in a row" holds when a known bad content comes in between: a
// content read once, then a bad one already refused, then the first again
// has not settled.
func TestReloadSettlesOnlyOnReadsInARow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overrides.yaml")
	const full = "deny:\n  - {callee: \"*\", caller: \"*\", methods: [DELETE], routes: [\"/**\"]}\n  - {callee: \"*\", caller: \"*\", methods: [PUT], routes: [\"/**\"]}\n"
	const half = "deny:\n  - {callee: \"*\", caller: \"*\", methods: [DELETE], routes: [\"/**\"]}\n"
	const bad = "deny:\n  - {callee: \"*\", caller: \"*\", method: [DELETE], routes: [\"/**\"]}\n"
	write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	write(full)
	f, err := Open(path)
	require.NoError(t, err)
	write(bad)
	_, _ = f.Reload()
	_, err = f.Reload()
	require.Error(t, err, "the bad content is refused")
	for _, s := range []string{half, bad, half} {
		write(s)
		changed, err := f.Reload()
		require.NoError(t, err)
		assert.False(t, changed, "%q", s)
	}
	assert.Len(t, f.Rules().Deny, 2, "the half-written file was never used")
}
