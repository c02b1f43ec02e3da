package authzctl

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// users is a callee whose API spec has GET /users/me before GET
// /users/{name}: the frontend used only the wildcard operation.
const users = "spiffe://example.org/ns/bank/sa/users"

func operationRecords() []aggregate.Record {
	r := rec(users, frontend, "GET", "/users/{token}")
	r.Origin = uint8(route.OpenAPI)
	return []aggregate.Record{r}
}

// takenSpec is a spec whose operations take the same routes of any route.
type takenSpec []string

func (s takenSpec) Taken(string, route.Route, bool) ([]route.Route, bool) {
	var out []route.Route
	for _, k := range s {
		rt, _ := route.ParseKey(k)
		out = append(out, rt)
	}
	return out, false
}

func (takenSpec) Alternatives(string, route.Route) []route.Route { return nil }

func (takenSpec) Strict() bool { return false }

func (takenSpec) Owns(string, route.Route) bool { return true }

func (s takenSpec) Digest() [32]byte { return sha256.Sum256([]byte(strings.Join(s, "\n"))) }

func taking(taken ...string) render.Options {
	return render.Options{Specs: func(string) render.Spec { return takenSpec(taken) }}
}

// A path the route matches but leaves out is explained as the spec's
// other operation, with OPA's decision.
func TestExplainOperationTaken(t *testing.T) {
	file := writeBundle(t, renderBundle(t, operationRecords(), taking("/users/me")))
	r := run(t, "", "explain", "--bundle", file, "--callee", users, "--caller", frontend, "--path", "/users/alice")
	assert.Equal(t, decisionAllow, r.firstLine())
	r = run(t, "", "explain", "--bundle", file, "--callee", users, "--caller", frontend, "--path", "/users/me")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, decisionDeny, r.firstLine())
	var x explanation
	require.NoError(t, json.Unmarshal([]byte(run(t, "", "explain", "--json", "--bundle", file, "--callee", users, "--caller", frontend, "--path", "/users/me").stdout), &x))
	assert.Equal(t, []string{kindOperationTaken, kindMode}, kinds(x))
	assert.Contains(t, r.stdout, "operation_taken: GET /users/{token} from "+frontend+" leaves out /users/me")
}

// What a route leaves out is part of what it grants: a bundle that
// leaves out more differs.
func TestDiffOperationTaken(t *testing.T) {
	old := writeBundle(t, renderBundle(t, operationRecords(), taking()))
	next := writeBundle(t, renderBundle(t, operationRecords(), taking("/users/me")))
	r := run(t, "", "diff", old, next)
	assert.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "  - GET /users/{token}  from "+frontend+"\n  + GET /users/{token} except /users/me  from "+frontend+"\n")
}
