package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// Wildcard routes that share a segment count, wildcard positions or
// literal segments: the policy reaches each through its group and key and
// admits exactly what the routes' Go matcher admits.
func TestTemplateDecisions(t *testing.T) {
	routes := []string{
		"/items/{int}", "/items/{uuid}", "/orders/{int}", // one group, two keys, two types under one
		"/items/{int}/detail", "/items/detail/{int}", // same count and literals, other positions
		"/a/{int}/b/{hex}", "/{int}", "/{id}/", "/x/{token}/{id}",
	}
	var records []aggregate.Record
	var parsed []route.Route
	for _, r := range routes {
		records = append(records, rec(balances, frontend, "GET", r))
		rt, err := route.ParseKey(r)
		require.NoError(t, err)
		parsed = append(parsed, rt)
	}
	b := mustRender(t, records)
	var rendered []string
	for _, r := range b.Rules {
		rendered = append(rendered, r.Route.String())
	}
	require.ElementsMatch(t, routes, rendered)
	policy := opatest.Load(t, b.Tarball)

	const uuid = "0b5e2c3a-1d4f-4e6a-9b8c-7d6e5f4a3b2c"
	tests := []struct {
		path  string
		allow bool
	}{
		{"/items/42", true},
		{"/items/" + uuid, true},
		{"/items/abc", false},
		{"/orders/42", true},
		{"/orders/" + uuid, false},
		{"/items/42/detail", true},
		{"/items/detail/42", true},
		{"/items/detail/detail", false},
		{"/items/42/details", false},
		{"/items/42/detail/x", false},
		{"/a/1/b/9f", true},
		{"/a/1/b/zz", false},
		{"/a/x/b/9f", false},
		{"/b/1/a/9f", false},
		{"/7", true},
		{"/x", false},
		{"/ord-7/", true},
		{"/ord-7", false},
		{"/x/tok/ord-7", true},
		{"/x/../ord-7", false},
		{"/x/tok/..", false},
		{"/y/tok/ord-7", false},
		{"//42", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			assert.Equal(t, tt.allow, matchesAny(parsed, tt.path), "Go matcher")
			assert.Equal(t, tt.allow, policy.Allowed(request{Destination: balances, Source: frontend, Method: "GET", Path: tt.path}), "policy")
		})
	}
}
