package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const rtoShop = "spiffe://example.org/ns/shop/sa/api"

// rtoOverlap: operations that overlap at several positions, with types
// that meet (int within token, uuid within token), enums overlapping
// literals and wildcards, and two base paths making the same shape.
const rtoOverlap = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /u/me:
    get: {responses: {"200": {description: ok}}}
  /u/{e}:
    get:
      parameters: [{name: e, in: path, required: true, schema: {type: string, enum: [me, "5", x]}}]
      responses: {"200": {description: ok}}
  /api/u/{id}:
    servers: [{url: /}]
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
  /{uid}:
    servers: [{url: /api/u}]
    get:
      parameters: [{name: uid, in: path, required: true, schema: {type: string, format: uuid}}]
      responses: {"200": {description: ok}}
  /{p}/u/{name}:
    servers: [{url: /}]
    get:
      parameters:
        - {name: p, in: path, required: true, schema: {type: string, enum: [api]}}
        - {name: name, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /m/{a}/{b}/{c}:
    get:
      parameters:
        - {name: a, in: path, required: true, schema: {type: string}}
        - {name: b, in: path, required: true, schema: {type: string}}
        - {name: c, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /m/{a}/x/{c}:
    get:
      parameters:
        - {name: a, in: path, required: true, schema: {type: integer}}
        - {name: c, in: path, required: true, schema: {type: string, enum: [me, "1"]}}
      responses: {"200": {description: ok}}
  /m/me/{b}/{c}:
    get:
      parameters:
        - {name: b, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: c, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
  /m/{a}/{b}/me:
    get:
      parameters:
        - {name: a, in: path, required: true, schema: {type: string, enum: [x, me, "5"]}}
        - {name: b, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
`

var rtoVocab = []string{"me", "x", "5", "1", "zz", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f", "u", "m"}

func rtoProbes() []string {
	var out []string
	var grow func(p string, n int)
	grow = func(p string, n int) {
		if n >= 1 {
			out = append(out, p)
		}
		if n == 4 || n == 3 && !strings.HasPrefix(p, "/api/m/") {
			return
		}
		for _, v := range rtoVocab {
			grow(p+"/"+v, n+1)
		}
	}
	grow("/api", 0)
	return out
}

// rtoLearn is what the exporter learns of a caller's request: the
// operation's route, origin openapi (rendering adds an enum's
// alternatives).
func rtoLearn(spec *openapi.Spec, src, path string) []aggregate.Record {
	op, ok := spec.Match("GET", path)
	if !ok {
		return nil
	}
	segs := route.AppendSegments(nil, path)
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mk := func(k []byte) aggregate.Record {
		return aggregate.Record{
			Key:   aggregate.Key{Destination: rtoShop, Source: src, Method: "GET", Route: string(k)},
			Stats: aggregate.Stats{Count: 1, FirstSeen: t, LastSeen: t, Origin: uint8(route.OpenAPI)},
		}
	}
	k, _ := op.AppendKey(nil, segs)
	return []aggregate.Record{mk(k)}
}

// rtoRecords merges records as the aggregate does (one per key, sorted).
func rtoRecords(recs []aggregate.Record) []aggregate.Record {
	seen := map[aggregate.Key]bool{}
	var out []aggregate.Record
	for _, r := range recs {
		if !seen[r.Key] {
			seen[r.Key] = true
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b aggregate.Record) int {
		return strings.Compare(a.Source+" "+a.Method+" "+a.Route, b.Source+" "+b.Method+" "+b.Route)
	})
	return out
}

func rtoOptions(spec *openapi.Spec) Options {
	return Options{
		Callees:   map[string]lifecycle.Mode{rtoShop: lifecycle.Enforce},
		PerCallee: true,
		Specs:     func(string) Spec { return lenient{spec} },
	}
}

func rtoRuleKeys(rules []Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Key()+" except ["+r.ExceptText()+"]")
	}
	slices.Sort(out)
	return out
}

func rtoUntar(t *testing.T, tarball []byte, dir string) {
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
		name := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(h.Name, "/")))
		require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(name, data, 0o600))
	}
}

// Callers each using one request of the overlapping spec (every request
// of the vocabulary that matches, one caller each): the full and the
// callee's own bundle allow a caller exactly the requests Spec.Match gives
// to its operation; Rule.Admits agrees; the rules read back from the
// bundle are render's, exceptions included; shuffled records give the same
// bytes; opa check --strict accepts the bundle.
func TestRedteamHoldsRenderOverlapAgreesEverywhere(t *testing.T) {
	spec, err := openapi.Parse([]byte(rtoOverlap), "overlap")
	require.NoError(t, err)
	require.Empty(t, spec.Refused)
	for _, op := range spec.Operations {
		t.Logf("op %s", op.String())
	}
	probes := rtoProbes()
	type caller struct {
		id string
		op *openapi.Operation
	}
	var callers []caller
	var recs []aggregate.Record
	usedOps := map[*openapi.Operation]bool{}
	for _, p := range probes {
		op, ok := spec.Match("GET", p)
		if !ok || usedOps[op] {
			continue
		}
		usedOps[op] = true
		id := fmt.Sprintf("spiffe://example.org/ns/c/sa/c%d", len(callers))
		callers = append(callers, caller{id, op})
		recs = append(recs, rtoLearn(spec, id, p)...)
	}
	require.Len(t, callers, len(spec.Operations), "every operation is reachable")
	recs = rtoRecords(recs)
	ctx := context.Background()
	b, err := Render(ctx, recs, rtoOptions(spec))
	require.NoError(t, err)
	withExcept := 0
	for _, r := range b.Rules {
		if len(r.Except) > 0 {
			withExcept++
		}
	}
	t.Logf("%d rules, %d with exceptions", len(b.Rules), withExcept)
	require.Positive(t, withExcept)

	// Read back.
	p, err := Read(b.Tarball)
	require.NoError(t, err)
	require.Equal(t, rtoRuleKeys(b.Rules), rtoRuleKeys(p.Rules))

	// Deterministic.
	for i := range 5 {
		sh := slices.Clone(recs)
		rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(sh), func(a, c int) { sh[a], sh[c] = sh[c], sh[a] })
		again, err := Render(ctx, rtoRecords(sh), rtoOptions(spec))
		require.NoError(t, err)
		require.Equal(t, b.Revision, again.Revision)
		require.True(t, bytes.Equal(b.Tarball, again.Tarball))
	}

	full := opatest.Load(t, b.Tarball)
	var own *opatest.Policy
	for _, c := range b.Callees {
		if c.ID == rtoShop {
			own = opatest.Load(t, c.Tarball)
		}
	}
	require.NotNil(t, own)
	for _, c := range callers {
		var rules []Rule
		for _, r := range b.Rules {
			if r.Source == c.id {
				rules = append(rules, r)
			}
		}
		for _, path := range probes {
			op, ok := spec.Match("GET", path)
			want := ok && op == c.op
			segs := route.AppendSegments(nil, path)
			admits := slices.ContainsFunc(rules, func(r Rule) bool { return r.Admits(segs) })
			require.Equal(t, want, admits, "Rule.Admits: %s (operation %v) GET %s", c.op, op, path)
			req := opatest.Request{Destination: rtoShop, Source: c.id, Method: "GET", Path: path}
			require.Equal(t, want, full.Allowed(req), "full bundle: %s (operation %v) GET %s", c.op, op, path)
			require.Equal(t, want, own.Allowed(req), "callee bundle: %s (operation %v) GET %s", c.op, op, path)
		}
	}

	opa := filepath.Join(os.Getenv("HOME"), ".cache/otelcol-authz/bin/opa-v1.22.2")
	if _, err := os.Stat(opa); err != nil {
		t.Skip("no opa CLI")
	}
	dir := t.TempDir()
	rtoUntar(t, b.Tarball, dir)
	out, err := exec.Command(opa, "check", "--strict", "--bundle", dir).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

// rtoManySpec has n operations GET /x/{int}/a<k> and, after them in
// matching order, GET /x/{a}/{b} (strings): the wildcard operation's route
// leaves out n routes, each with a wildcard at one of its own wildcards.
func rtoManySpec(n int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nservers: [{url: /api}]\npaths:\n")
	b.WriteString("  /x/{a}/{b}:\n    get:\n      parameters: [{name: a, in: path, required: true, schema: {type: string}}, {name: b, in: path, required: true, schema: {type: string}}]\n      responses: {\"200\": {description: ok}}\n")
	for k := range n {
		fmt.Fprintf(&b, "  /x/{id}/a%d:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {\"200\": {description: ok}}\n", k)
	}
	return b.String()
}

// Found by the red team: except_matching was scanned row by row on every
// request, so a fallback /x/{a}/{b} after n typed /x/{id}/a<k> (a REST
// API with a fallback) cost a decision linear in n (18 ms at 3000). Rows
// are keyed by their literals now: the fallback's 3000 rows sit in one
// group under their own keys, read with one lookup, and OPA's objects are
// read only as far as a request looks into them
// (BenchmarkDecisionManyOperations measures it).
func TestRedteamFixedManyPrecedingOperationsAreKeyed(t *testing.T) {
	const n = 3000
	spec, err := openapi.Parse([]byte(rtoManySpec(n)), "many")
	require.NoError(t, err)
	b, err := Render(context.Background(), rtoRecords(rtoLearn(spec, "spiffe://example.org/ns/c/sa/c0", "/api/x/foo/bar")), rtoOptions(spec))
	require.NoError(t, err)
	policy := opatest.Load(t, b.Tarball)
	src := "spiffe://example.org/ns/c/sa/c0"
	require.True(t, policy.Allowed(opatest.Request{Destination: rtoShop, Source: src, Method: "GET", Path: "/api/x/foo/bar"}))
	require.False(t, policy.Allowed(opatest.Request{Destination: rtoShop, Source: src, Method: "GET", Path: fmt.Sprintf("/api/x/7/a%d", n-1)}))
	require.True(t, policy.Allowed(opatest.Request{Destination: rtoShop, Source: src, Method: "GET", Path: fmt.Sprintf("/api/x/seven/a%d", n-1)}))

	var callers map[string]map[string]struct {
		Operations map[string]map[string]struct {
			Operations map[string]map[string]struct {
				ExceptMatching map[string]struct {
					At   []int              `json:"at"`
					Rows map[string][][]any `json:"rows"`
				} `json:"except_matching"`
			} `json:"operations"`
		} `json:"operations"`
	}
	require.NoError(t, json.Unmarshal(b.Files[CalleeDir(rtoShop)+"/data.json"], &callers))
	groups := callers[src]["GET"].Operations["4"]["2,3"].Operations["api/x"]["token,token"].ExceptMatching
	require.Len(t, groups, 1)
	assert.Equal(t, []int{1}, groups["1"].At)
	assert.Len(t, groups["1"].Rows, n)
	assert.Equal(t, [][]any{{map[string]any{"type": "int"}, "a7"}}, groups["1"].Rows["a7"])
}

// Audit mode: a request an earlier operation takes is allowed but marked
// would-deny; the route's own requests are not marked.
func TestRedteamHoldsAuditMarksTakenRequests(t *testing.T) {
	spec, err := openapi.Parse([]byte(rtoOverlap), "overlap")
	require.NoError(t, err)
	src := "spiffe://example.org/ns/c/sa/c0"
	recs := rtoRecords(rtoLearn(spec, src, "/api/u/zz"))
	opts := rtoOptions(spec)
	opts.Callees[rtoShop] = lifecycle.Audit
	b, err := Render(context.Background(), recs, opts)
	require.NoError(t, err)
	policy := opatest.Load(t, b.Tarball)
	for path, wouldDeny := range map[string]bool{"/api/u/zz": false, "/api/u/me": true, "/api/u/5": true, "/api/u/x": true,
		"/api/u/0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f": true} {
		d := policy.Decision(opatest.Request{Destination: rtoShop, Source: src, Method: "GET", Path: path})
		assert.Equal(t, true, d["allowed"], path)
		assert.Equal(t, wouldDeny, d["response_headers_to_add"] != nil, path)
	}
}

// A route of wildcards only (no base path): its group's key is "", and
// its exceptions read back as render wrote them.
func TestRedteamHoldsAllWildcardRouteReadsBack(t *testing.T) {
	const body = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /me:
    get: {responses: {"200": {description: ok}}}
  /{n}:
    get:
      parameters: [{name: n, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
  /{a}/{b}:
    get:
      parameters: [{name: a, in: path, required: true, schema: {type: string}}, {name: b, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /{a}/me:
    get:
      parameters: [{name: a, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
`
	spec, err := openapi.Parse([]byte(body), "w")
	require.NoError(t, err)
	src := "spiffe://example.org/ns/c/sa/c0"
	recs := rtoRecords(append(rtoLearn(spec, src, "/zz/zz"), rtoLearn(spec, "spiffe://example.org/ns/c/sa/c1", "/5")...))
	b, err := Render(context.Background(), recs, rtoOptions(spec))
	require.NoError(t, err)
	p, err := Read(b.Tarball)
	require.NoError(t, err)
	require.Equal(t, rtoRuleKeys(b.Rules), rtoRuleKeys(p.Rules))
	t.Logf("%v", rtoRuleKeys(b.Rules))
	policy := opatest.Load(t, b.Tarball)
	for path, want := range map[string]bool{"/zz/zz": true, "/zz/me": true, "/5/me": false, "/me/5": true, "/5": false} {
		assert.Equal(t, want, policy.Allowed(opatest.Request{Destination: rtoShop, Source: src, Method: "GET", Path: path}), path)
	}
	assert.True(t, policy.Allowed(opatest.Request{Destination: rtoShop, Source: "spiffe://example.org/ns/c/sa/c1", Method: "GET", Path: "/7"}))
	assert.False(t, policy.Allowed(opatest.Request{Destination: rtoShop, Source: "spiffe://example.org/ns/c/sa/c1", Method: "GET", Path: "/me"}))
}

// lenient is a spec without strict.
type lenient struct{ *openapi.Spec }

func (lenient) Strict() bool { return false }
