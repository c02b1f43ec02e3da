package render

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

func ruleKeys(rules []Rule) []string {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.Key()
	}
	slices.Sort(keys)
	return keys
}

// Reading a bundle back gives the rules it was rendered from.
func TestReadRules(t *testing.T) {
	b := mustRender(t, bank())
	rules, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	var want []string
	for _, r := range bank() {
		want = append(want, r.Destination+" "+r.Source+" "+r.Method+" "+r.Route)
	}
	slices.Sort(want)
	assert.Equal(t, want, ruleKeys(rules))
	assert.ElementsMatch(t, b.Rules, rules, "the rendered rules are the ones the tarball holds")

	_, err = ReadRules([]byte("not a bundle"))
	assert.Error(t, err)
}

// Read reads the data of bundles of every layout it may find in place,
// a callee at a time, and refuses what is not a bundle's.
func TestReadLayouts(t *testing.T) {
	const callee = "spiffe://example.org/ns/bank/sa/balances"
	grants := `{"example.org":{"ns":{"bank":{"sa":{"balances":{"@callers":{"spiffe://example.org/ns/web/sa/front":{"GET":{"paths":{"/a":true},"templates":{"2":[["b",{"type":"int"}]]}}}}}}}}}}`
	empty := `{"example.org":{"ns":{"shop":{"sa":{"cart":{"@callers":{}}}}}}}`
	for _, tc := range []struct {
		name, authz string
		rules       []string
		modes       map[string]lifecycle.Mode
		err         string
	}{
		{
			name:  "per-callee modes",
			authz: `{"callees":{"` + callee + `":{"mode":"audit","allow":[]}},"grants":` + grants + `,"overrides":{"allow":[]}}`,
			rules: []string{callee + " spiffe://example.org/ns/web/sa/front GET /a", callee + " spiffe://example.org/ns/web/sa/front GET /b/{int}"},
			modes: map[string]lifecycle.Mode{callee: lifecycle.Audit},
		},
		{
			name:  "one mode for all, before per-callee modes",
			authz: `{"grants":` + grants + `,"mode":"enforce"}`,
			rules: []string{callee + " spiffe://example.org/ns/web/sa/front GET /a", callee + " spiffe://example.org/ns/web/sa/front GET /b/{int}"},
			modes: map[string]lifecycle.Mode{callee: lifecycle.Enforce},
		},
		{
			name:  "one mode for a callee without rules",
			authz: `{"mode":"audit","grants":` + empty + `}`,
			modes: map[string]lifecycle.Mode{"spiffe://example.org/ns/shop/sa/cart": lifecycle.Audit},
		},
		{name: "no grants", authz: `{"callees":{}}`, err: "no envoy.authz.grants"},
		{name: "grants not an object", authz: `{"grants":[]}`, err: "not an object"},
		{name: "callers not an object", authz: `{"grants":{"example.org":{"x":{"@callers":[]}}}}`, err: "not an object"},
		{name: "a caller not an object", authz: `{"grants":{"example.org":{"x":{"@callers":{"spiffe://example.org/y":1}}}}}`, err: "not an object"},
		{name: "unknown wildcard", authz: `{"grants":{"example.org":{"x":{"@callers":{"spiffe://example.org/y":{"GET":{"templates":{"1":[[{"type":"nope"}]]}}}}}}}}`, err: "unknown wildcard"},
		{name: "unknown mode", authz: `{"grants":{},"callees":{"` + callee + `":{"mode":"maybe"}}}`, err: "callee " + callee},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data map[string]any
			require.NoError(t, json.Unmarshal([]byte(`{"envoy":{"authz":`+tc.authz+`},"other":{"x":[1,2]}}`), &data))
			p, err := Read(tarballOf(t, data))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "r1", p.Revision)
			var got []string
			for _, r := range p.Rules {
				got = append(got, r.Key())
			}
			slices.Sort(got)
			assert.Equal(t, tc.rules, got)
			assert.Equal(t, tc.modes, p.Modes)
		})
	}
	_, err := Read(tarballOf(t, map[string]any{"other": map[string]any{}}))
	assert.ErrorContains(t, err, "no envoy.authz")
}

// tarballOf writes a bundle of data with OPA's writer, as bundles are.
func tarballOf(t *testing.T, data map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, bundle.NewWriter(&buf).Write(bundle.Bundle{Manifest: bundle.Manifest{Revision: "r1"}, Data: data}))
	return buf.Bytes()
}

// A bundle the version before template groups published, as it is in
// place at an upgrade, reads back as the same rules: the shrink guard's
// reference and the enforced callees survive the upgrade.
func TestReadPreviousLayout(t *testing.T) {
	previous := opatest.PackDir(t, filepath.Join("..", "..", "..", "..", "testdata", "previous", "bank"))
	p, err := Read(previous)
	require.NoError(t, err)
	assert.Equal(t, ruleKeys(mustRender(t, bank()).Rules), ruleKeys(p.Rules))
	assert.Equal(t, "952bb187c5ea51998a4b6598c916b26a", p.Revision)
	assert.Equal(t, map[string]lifecycle.Mode{
		balances: lifecycle.Enforce, payments: lifecycle.Enforce, ledger: lifecycle.Enforce, ledger + "/replica": lifecycle.Enforce,
	}, p.Modes)
}

// A grant's templates that do not describe routes are refused, not read as
// fewer rules.
func TestReadTemplatesRefusesMalformed(t *testing.T) {
	group := func(literals, wildcards []any, routes map[string]any) map[string]any {
		return map[string]any{"literals": literals, "wildcards": wildcards, "routes": routes}
	}
	int3 := map[string]any{"a/b/c": []any{[]any{"int"}}}
	tests := []struct {
		name      string
		templates any
	}{
		{"not an object", []any{}},
		{"count not a number", map[string]any{"x": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{3.0}, int3)}}},
		{"count zero", map[string]any{"0": map[string]any{"": group(nil, nil, nil)}}},
		{"group not an object", map[string]any{"4": map[string]any{"3": "x"}}},
		{"positions overlap", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0, 3.0}, []any{3.0}, int3)}}},
		{"position missing", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0}, []any{3.0}, int3)}}},
		{"position out of range", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{4.0}, int3)}}},
		{"positions out of order", map[string]any{"4": map[string]any{"3": group([]any{1.0, 0.0, 2.0}, []any{3.0}, int3)}}},
		{"position not an integer", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{2.5}, int3)}}},
		{"no wildcard", map[string]any{"3": map[string]any{"": group([]any{0.0, 1.0, 2.0}, []any{}, int3)}}},
		{"key with too few segments", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{3.0}, map[string]any{"a/b": []any{[]any{"int"}}})}}},
		{"key without a literal position", map[string]any{"1": map[string]any{"0": group([]any{}, []any{0.0}, map[string]any{"a": []any{[]any{"int"}}})}}},
		{"no routes", map[string]any{"4": map[string]any{"3": map[string]any{"literals": []any{0.0, 1.0, 2.0}, "wildcards": []any{3.0}}}}},
		{"candidate without a type per wildcard", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{3.0}, map[string]any{"a/b/c": []any{[]any{}}})}}},
		{"unknown type", map[string]any{"4": map[string]any{"3": group([]any{0.0, 1.0, 2.0}, []any{3.0}, map[string]any{"a/b/c": []any{[]any{"any"}}})}}},
		{"previous layout, unknown type", map[string]any{"2": []any{[]any{"a", map[string]any{"type": "words"}}}}},
		{"previous layout, segment of another kind", map[string]any{"1": []any{[]any{1.0}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readTemplates(tt.templates)
			assert.Error(t, err)
		})
	}
}
