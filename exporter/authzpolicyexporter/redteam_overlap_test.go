package authzpolicyexporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

var rtoParam = regexp.MustCompile(`\{[^}]*\}`)

// rtoVocab are the segments random specs and probes are made of.
var rtoVocab = []string{"a", "b", "me", "1", "5", "x", "12", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f", "zz"}

// rtoSpec writes a random spec of up to n operations of 1 to 3 segments
// under the base path /api (or, for some path items, the root).
func rtoSpec(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nservers: [{url: /api}]\npaths:\n")
	seen := map[string]bool{}
	for range n {
		segs := 1 + rng.IntN(3)
		var path strings.Builder
		var params []string
		root := rng.IntN(3) == 0
		if root {
			path.WriteString("/api")
		}
		for i := range segs {
			path.WriteByte('/')
			switch rng.IntN(6) {
			case 0, 1:
				path.WriteString([]string{"a", "b", "me", "1", "x"}[rng.IntN(5)])
			case 2:
				name := fmt.Sprintf("i%d", i)
				fmt.Fprintf(&path, "{%s}", name)
				params = append(params, fmt.Sprintf("{name: %s, in: path, required: true, schema: {type: integer}}", name))
			case 3:
				name := fmt.Sprintf("u%d", i)
				fmt.Fprintf(&path, "{%s}", name)
				params = append(params, fmt.Sprintf("{name: %s, in: path, required: true, schema: {type: string, format: uuid}}", name))
			case 4:
				name := fmt.Sprintf("t%d", i)
				fmt.Fprintf(&path, "{%s}", name)
				params = append(params, fmt.Sprintf("{name: %s, in: path, required: true, schema: {type: string}}", name))
			case 5:
				name := fmt.Sprintf("e%d", i)
				var vals []string
				for _, v := range []string{"a", "me", "1", "5", "x"} {
					if rng.IntN(2) == 0 {
						vals = append(vals, fmt.Sprintf("%q", v))
					}
				}
				if len(vals) == 0 {
					vals = []string{`"me"`}
				}
				fmt.Fprintf(&path, "{%s%d}", name, len(vals))
				params = append(params, fmt.Sprintf("{name: %s%d, in: path, required: true, schema: {type: string, enum: [%s]}}", name, len(vals), strings.Join(vals, ", ")))
			}
		}
		p := path.String()
		// kin-openapi refuses paths of one shape whatever their names.
		norm := rtoParam.ReplaceAllString(p, "{}")
		if seen[norm] {
			continue
		}
		seen[norm] = true
		fmt.Fprintf(&b, "  %s:\n", p)
		if root {
			b.WriteString("    servers: [{url: /}]\n")
		}
		fmt.Fprintf(&b, "    get:\n      parameters: [%s]\n      responses: {\"200\": {description: ok}}\n", strings.Join(params, ", "))
	}
	return b.String()
}

// rtoProbes are every GET path of 1 to 3 vocabulary segments under /api.
func rtoProbes() []string {
	var out []string
	var grow func(p string, n int)
	grow = func(p string, n int) {
		if n > 0 {
			out = append(out, p)
		}
		if n == 3 {
			return
		}
		for _, v := range rtoVocab {
			grow(p+"/"+v, n+1)
		}
	}
	grow("/api", 0)
	return out
}

// For random specs of overlapping operations (literals, enums, int, uuid
// and string wildcards, two base paths), with strict learning and two
// callers each using a few random requests, a backstop of 2: OPA allows a probe exactly
// when Spec.Match gives it to an operation the caller used.
func TestRedteamHoldsRandomOverlapAgreesWithMatch(t *testing.T) {
	probes := rtoProbes()
	callers := []string{frontend, backend}
	iterations := 12
	if s := os.Getenv("RTO_ITER"); s != "" {
		fmt.Sscan(s, &iterations)
	}
	seed := uint64(1)
	if s := os.Getenv("RTO_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()
	withExcept := 0
	defer func() { t.Logf("bundles with except: %d", withExcept) }()
	for it := 0; it < iterations; it++ {
		body := rtoSpec(rng, 4+rng.IntN(6))
		file := filepath.Join(t.TempDir(), "spec.yaml")
		require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
		spec, err := openapi.Load(file)
		if err != nil {
			t.Logf("iteration %d: spec refused: %v", it, err)
			continue
		}
		var matching []string
		for _, p := range probes {
			if _, ok := spec.Match("GET", p); ok {
				matching = append(matching, p)
			}
		}
		if len(matching) == 0 {
			continue
		}
		e, dir := newTestExporter(t, func(c *Config) {
			c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: file, Strict: true}}
			c.Routes.CardinalityThreshold = 2 // routes of a spec stay out of the backstop
		})
		used := map[string]map[*openapi.Operation]bool{}
		for _, caller := range callers {
			used[caller] = map[*openapi.Operation]bool{}
			var calls []call
			for range 1 + rng.IntN(5) {
				p := matching[rng.IntN(len(matching))]
				op, _ := spec.Match("GET", p)
				used[caller][op] = true
				calls = append(calls, call{"GET", p})
			}
			require.NoError(t, e.consumeTraces(ctx, callSpans(shop, caller, calls...)))
		}
		require.NoError(t, e.flush(ctx))
		policy := readBundle(t, dir)
		if raw, err := os.ReadFile(filepath.Join(dir, "bundle.tar.gz")); err == nil {
			withExcept += rtoCountExcept(t, raw)
		}
		for _, caller := range callers {
			for _, p := range probes {
				op, ok := spec.Match("GET", p)
				want := ok && used[caller][op]
				got := policy.Allowed(opatest.Request{Destination: shop, Source: caller, Method: "GET", Path: p})
				if want != got {
					var ops []string
					for _, o := range spec.Operations {
						ops = append(ops, o.String())
					}
					var usedOps []string
					for o := range used[caller] {
						usedOps = append(usedOps, o.String())
					}
					slices.Sort(usedOps)
					t.Fatalf("iteration %d: caller %s GET %s: allowed %v, want %v (operation %v)\nused %v\noperations (in order):\n  %s\nspec:\n%s",
						it, caller, p, got, want, op, usedOps, strings.Join(ops, "\n  "), body)
				}
			}
		}
	}
}

// rtoCountExcept is 1 when a bundle has an except or except_matching.
func rtoCountExcept(t *testing.T, tarball []byte) int {
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	require.NoError(t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	if bytes.Contains(raw, []byte(`"except`)) {
		return 1
	}
	return 0
}

// rtoReload learns calls with spec before, then puts spec after in place
// and flushes until it is in use (two reads in a row), learning nothing
// new; it returns the final policy's decision for frontend.
func rtoReload(t *testing.T, before, after string, strict bool, threshold int, calls ...call) func(method, path string) bool {
	t.Helper()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(file, []byte(before), 0o600))
	e, dir := newTestExporter(t, func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: file, Strict: strict}}
		c.Routes.CardinalityThreshold = threshold
	})
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, calls...)))
	require.NoError(t, e.flush(ctx))
	require.NoError(t, os.WriteFile(file, []byte(after), 0o600))
	for range 3 {
		require.NoError(t, e.flush(ctx))
	}
	spec, err := openapi.Load(file)
	require.NoError(t, err)
	require.Equal(t, len(spec.Operations), len(e.extract.specs.entries[0].spec().Operations), "the new spec is in use")
	policy := readBundle(t, dir)
	return func(m, p string) bool {
		return policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: m, Path: p})
	}
}

const rtoUsersName = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /users/{name}:
    get:
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
`

// A reload adding /users/me before an already learned /users/{name}: the
// learned grant leaves it out from then on.
func TestRedteamHoldsReloadAddsShadowingOperation(t *testing.T) {
	allowed := rtoReload(t, rtoUsersName, rtOverlap, true, 0, call{"GET", "/api/users/alice"})
	require.True(t, allowed("GET", "/api/users/bob"))
	require.False(t, allowed("GET", "/api/users/me"))
}

const rtoStatusEnum = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /orders/{status}:
    get:
      parameters: [{name: status, in: path, required: true, schema: {type: string, enum: [open, closed]}}]
      responses: {"200": {description: ok}}
`

const rtoStatusEnumAndClosed = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /orders/closed:
    get: {responses: {"200": {description: ok}}}
  /orders/{status}:
    get:
      parameters: [{name: status, in: path, required: true, schema: {type: string, enum: [open, closed]}}]
      responses: {"200": {description: ok}}
`

// Found by the red team: a caller that used only /orders/{status} with
// "open" is granted the enum's "closed" as well; a reload adding GET
// /orders/closed, which the spec now matches first, did not take that
// grant away, since the alternative was a record of its own. Alternatives
// are rendered from the spec in force now, and the guard takes what a new
// spec version removes for explained.
func TestRedteamFixedReloadShadowingLiteralKeepsEnumAlternative(t *testing.T) {
	fresh := rtLearn(t, rtSpec(t, rtoStatusEnumAndClosed), true, 0, call{"GET", "/api/orders/open"})
	require.False(t, fresh("GET", "/api/orders/closed"), "learned with the new spec: not granted")

	allowed := rtoReload(t, rtoStatusEnum, rtoStatusEnumAndClosed, true, 0, call{"GET", "/api/orders/open"})
	require.True(t, allowed("GET", "/api/orders/open"))
	require.False(t, allowed("GET", "/api/orders/closed"),
		"Match gives GET /api/orders/closed to the new literal operation, which the caller never used")
}

const rtoUsersInt = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /users/me:
    get: {responses: {"200": {description: ok}}}
  /users/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
`

// Found by the red team: a reload that narrows /users/{name} (string) to
// /users/{id} (integer) and adds /users/me left the learned
// /api/users/{token} (origin openapi), a route of no operation now,
// without exceptions, so the caller kept /users/me and every /users/<int>.
// A route of no operation leaves out what every operation takes.
func TestRedteamFixedReloadRetypedOperationKeepsStaleWildcard(t *testing.T) {
	allowed := rtoReload(t, rtoUsersName, rtoUsersInt, true, 0, call{"GET", "/api/users/alice"})
	assert.False(t, allowed("GET", "/api/users/me"), "GET /users/me, never used")
	assert.False(t, allowed("GET", "/api/users/5"), "GET /users/{id}, never used")
}

// Found by the red team: without strict, requests matching no operation
// are learned by the heuristics, and the wildcard the cardinality backstop
// folded them into granted requests that Match gives to operations the
// caller never used. A heuristic route leaves out what the operations take.
func TestRedteamFixedBackstopWildcardCoversUnusedOperations(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtoUsersInt), false, 3,
		call{"GET", "/api/users/alice"}, call{"GET", "/api/users/bob"}, call{"GET", "/api/users/carol"}, call{"GET", "/api/users/dave"})
	require.True(t, allowed("GET", "/api/users/erin"), "the backstop folded the names")
	assert.False(t, allowed("GET", "/api/users/me"), "GET /users/me, never used")
	assert.False(t, allowed("GET", "/api/users/5"), "GET /users/{id}, never used")
}

// The same without the backstop: a segment with a digit that is no
// integer stays a literal, so it grants no integer operation.
func TestRedteamHoldsHeuristicIDDoesNotCoverIntOperation(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtoUsersInt), false, 0, call{"GET", "/api/users/abc1"})
	require.False(t, allowed("GET", "/api/users/5"), "GET /users/{id}, never used")
}

// rtoRule is a rule of shop for frontend's GETs.
func rtoRule(t *testing.T, rt string, except ...string) render.Rule {
	r, err := route.ParseKey(rt)
	require.NoError(t, err)
	rule := render.Rule{Destination: shop, Source: frontend, Method: "GET", Route: r}
	for _, e := range except {
		x, err := route.ParseKey(e)
		require.NoError(t, err)
		rule.Except = append(rule.Except, x)
	}
	return rule
}

// Found by the red team: the shrink guard counted a published rule the
// next bundle drops as covered by a wildcard of the next bundle, ignoring
// what the wildcard leaves out: a caller that loses the /users/me record
// (a lost or partly restored state) loses /users/me, which the next
// bundle's /users/{token} leaves out. A wildcard covers a route only if
// nothing it leaves out overlaps it.
func TestRedteamFixedShrinkGuardIgnoresExcept(t *testing.T) {
	published := []render.Rule{
		rtoRule(t, "/api/users/me"),
		rtoRule(t, "/api/users/{token}", "/api/users/me"),
	}
	next := []render.Rule{rtoRule(t, "/api/users/{token}", "/api/users/me")}
	require.False(t, next[0].Admits([]string{"api", "users", "me"}), "the next bundle denies /api/users/me")
	g := newShrinkGuard(0, time.Hour)
	g.setPublished(published)
	unexplained, hold := g.check(next, time.Now(), func(render.Rule) bool { return false })
	assert.Equal(t, 1, unexplained, "the removed /api/users/me is no longer allowed by anything")
	assert.True(t, hold)
}

const rtoYears = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /reports/{year}:
    get:
      parameters: [{name: year, in: path, required: true, schema: {type: integer, enum: [2024, 2025]}}]
      responses: {"200": {description: ok}}
`

// Found by the red team: without strict and without any backstop, a
// request outside an integer enum (no operation) is learned by the
// heuristics as {int}, which granted the enum's values, an operation the
// caller never used.
func TestRedteamFixedHeuristicIntCoversUnusedEnumOperation(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtoYears), false, 0, call{"GET", "/api/reports/2023"})
	require.True(t, allowed("GET", "/api/reports/2023"))
	assert.False(t, allowed("GET", "/api/reports/2024"), "GET /reports/{year}, never used")
}
