package render

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

// Reading a bundle back gives the rules it was rendered from.
func TestReadRules(t *testing.T) {
	b := mustRender(t, bank())
	rules, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	var got []string
	for _, r := range rules {
		got = append(got, r.Key())
	}
	slices.Sort(got)
	var want []string
	for _, r := range bank() {
		want = append(want, r.Destination+" "+r.Source+" "+r.Method+" "+r.Route)
	}
	slices.Sort(want)
	assert.Equal(t, want, got)
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
