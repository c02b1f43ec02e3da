package authzctl

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// rtoBundles are balances' bundle for frontend's GET /users/{token} (an
// operation's route, origin openapi), without and with the exception of
// /users/me (a spec that, after a reload, matches GET /users/me first).
func rtoBundles(t *testing.T) (before, after *render.Bundle) {
	r := rec(balances, frontend, "GET", "/users/{token}")
	r.Stats.Origin = uint8(route.OpenAPI)
	recs := []aggregate.Record{r}
	opts := func(except bool) render.Options {
		o := render.Options{Callees: map[string]lifecycle.Mode{balances: lifecycle.Enforce}}
		if except {
			o.Specs = func(string) render.Spec { return takenSpec{"/users/me"} }
		}
		return o
	}
	return renderBundle(t, recs, opts(false)), renderBundle(t, recs, opts(true))
}

// Found by the red team (fixed before its report): explain on a request
// the policy denies because the spec's earlier operation takes it said
// only that OPA denies it; it names what the route leaves out.
func TestRedteamFixedExplainIgnoresExcept(t *testing.T) {
	_, after := rtoBundles(t)
	file := writeBundle(t, after)
	request := mtls(balances, frontend, "GET", "/users/me")
	require.Equal(t, decisionDeny, opaDecision(t, opatest.Load(t, after.Tarball), request))
	r := run(t, "", "explain", "--bundle", file, "--input", writeInput(t, request.Input()), "--json")
	var x explanation
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &x), "%s", r.stdout)
	t.Logf("%s", r.stdout)
	require.NotEmpty(t, x.Reasons)
	assert.NotEqual(t, kindPolicyNoDetails, x.Reasons[0].Kind, "explain should name the exception that leaves the request out")
}

// Found by the red team (fixed before its report): diff of two bundles
// that grant different requests (the second leaves /users/me out)
// reported them equal, comparing access rules by route alone.
func TestRedteamFixedDiffIgnoresExcept(t *testing.T) {
	before, after := rtoBundles(t)
	pb, pa := opatest.Load(t, before.Tarball), opatest.Load(t, after.Tarball)
	request := mtls(balances, frontend, "GET", "/users/me")
	require.NotEqual(t, opaDecision(t, pb, request), opaDecision(t, pa, request))
	r := run(t, "", "diff", writeBundle(t, before), writeBundle(t, after))
	t.Logf("%s", r.stdout)
	assert.Equal(t, 1, r.code, "the bundles grant differently")
}
