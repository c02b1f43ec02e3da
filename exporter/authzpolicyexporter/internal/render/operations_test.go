package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The segments operation routes and probes are made of: literals of each
// wildcard type, and one of none.
var opVocab = []string{"a", "7", "42", "ab1", "cafe", "x-y", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f", "b.c"}

// opRoute reads a route of n segments from data: each segment a literal
// of opVocab or a wildcard type.
func opRoute(data []byte, n int) route.Route {
	rt := make(route.Route, n)
	for i := range rt {
		var b byte
		if i < len(data) {
			b = data[i]
		}
		if b&1 == 0 {
			rt[i].Wild = route.Type(1 + int(b>>1)%5)
		} else {
			rt[i].Lit = opVocab[int(b>>1)%len(opVocab)]
		}
	}
	return rt
}

// checkOperation renders one operation route of a callee's API spec with
// what the hook says the operations before it take (any routes: Render
// keeps those that can), and checks OPA's decision on the real bundle
// against Rule.Admits for every path of opVocab's segments, and the rules
// Read gives back against Render's.
func checkOperation(t *testing.T, data []byte) *Bundle {
	if len(data) < 2 {
		return nil
	}
	n := 1 + int(data[0])%3
	rt := opRoute(data[1:], n)
	if !rt.HasWildcard() {
		rt[0] = route.Segment{Wild: route.Token}
	}
	var taken []route.Route
	for rest := data[min(1+n, len(data)):]; len(rest) > 0 && len(taken) < 6; rest = rest[min(n, len(rest)):] {
		e := opRoute(rest, n)
		// Mostly the route's own segment, as Spec.Taken gives them.
		for i := range e {
			if i < len(rest) && rest[i]&0x80 != 0 {
				e[i] = rt[i]
			}
		}
		taken = append(taken, e)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := aggregate.Record{
		Key:   aggregate.Key{Destination: "spiffe://fuzz.test/api", Source: "spiffe://fuzz.test/caller", Method: "GET", Route: rt.String()},
		Stats: aggregate.Stats{Count: 1, FirstSeen: at, LastSeen: at, Origin: uint8(route.OpenAPI)},
	}
	b, err := Render(context.Background(), []aggregate.Record{rec}, Options{
		Specs: func(string) Spec { return takenSpec(taken) },
	})
	require.NoError(t, err)
	require.Len(t, b.Rules, 1)
	read, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	require.Equal(t, b.Rules, read, "rules read back")
	policy := opatest.Load(t, b.Tarball)
	probe := make([]string, n)
	var walk func(i int)
	walk = func(i int) {
		if i == n {
			path := "/" + strings.Join(probe, "/")
			got := policy.Allowed(opatest.Request{Destination: rec.Destination, Source: rec.Source, Method: "GET", Path: path})
			require.Equal(t, b.Rules[0].Admits(probe), got, "%s less %v (taken %v) on %s", rt, b.Rules[0].Except, taken, path)
			return
		}
		for _, v := range opVocab {
			probe[i] = v
			walk(i + 1)
		}
	}
	walk(0)
	return b
}

// takenSpec is a Spec whose operations take the same routes of any route.
type takenSpec []route.Route

func (s takenSpec) Taken(string, route.Route, bool) ([]route.Route, bool) {
	return slices.Clone(s), false
}

func (takenSpec) Alternatives(string, route.Route) []route.Route { return nil }

func (takenSpec) Strict() bool { return false }

func (takenSpec) Owns(string, route.Route) bool { return true }

func (s takenSpec) Digest() [32]byte {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(r.String() + "\n")
	}
	return sha256.Sum256([]byte(b.String()))
}

func TestOperationRoutesAgree(t *testing.T) {
	keyed, matching := 0, 0
	for _, data := range operationSeeds {
		b := checkOperation(t, data)
		data := string(b.Files[CalleeDir("spiffe://fuzz.test/api")+"/data.json"])
		if strings.Contains(data, `"except"`) {
			keyed++
		}
		if strings.Contains(data, `"except_matching"`) {
			matching++
		}
	}
	require.GreaterOrEqual(t, keyed, 3, "seeds leaving out literals")
	require.GreaterOrEqual(t, matching, 3, "seeds leaving out by segments")
}

func FuzzOperationRoutes(f *testing.F) {
	for _, data := range operationSeeds {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkOperation(t, data) })
}

// Seeds: one wildcard less a literal, two wildcards less a literal at
// one and a type at the other, types that meet without nesting, a taken
// route equal to the route, routes that take nothing.
var operationSeeds = [][]byte{
	{0, 8, 1},                        // /{token} less /a
	{1, 8, 8, 1, 0, 0, 3},            // /{token}/{token} less /a/{token}, /{token}/7
	{1, 6, 8, 4, 2, 2, 2},            // /{id}/{token} less types
	{2, 3, 8, 8, 3, 1, 9, 0, 0, 0},   // /7/{token}/{token} less ...
	{0, 6, 4},                        // /{id} less /{uuid}
	{0, 8, 0x80},                     // /{token} less itself
	{1, 3, 8, 5, 8},                  // a literal position that differs: nothing taken
	{2, 8, 8, 8, 1, 3, 5, 7, 9, 11},  // three wildcards
	{1, 0, 0, 4, 6, 13, 15},          // /{int}/{int} less uuid, literals of other types
	{2, 8, 2, 6, 6, 6, 6, 1, 13, 11}, // mixed
}

// Callees' bundles split from a published tarball whose grants leave
// routes out are Render's, byte for byte: what a route leaves out reads
// back through the grants' own types.
func TestSplitMatchesRenderWithOperations(t *testing.T) {
	spec, err := openapi.Parse([]byte(rtoOverlap), "overlap")
	require.NoError(t, err)
	var recs []aggregate.Record
	for _, p := range []string{"/api/u/zz", "/api/u/me", "/api/api/u/7", "/api/m/q/r/s"} {
		recs = append(recs, rtoLearn(spec, "spiffe://example.org/ns/c/sa/c0", p)...)
	}
	b, err := Render(context.Background(), rtoRecords(recs), rtoOptions(spec))
	require.NoError(t, err)
	data := string(b.Files[CalleeDir(rtoShop)+"/data.json"])
	require.Contains(t, data, `"except"`)
	require.Contains(t, data, `"except_matching"`)
	split, err := Split(b.Tarball, nil)
	require.NoError(t, err)
	require.Len(t, split.Callees, len(b.Callees))
	for i, c := range b.Callees {
		require.Equal(t, c.Revision, split.Callees[i].Revision, c.ID)
		require.True(t, bytes.Equal(c.Tarball, split.Callees[i].Tarball), c.ID)
	}
}
