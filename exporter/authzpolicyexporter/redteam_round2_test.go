package authzpolicyexporter

// Red-team round 2 of routes::openapi. The defects it found are fixed;
// their tests are TestRedteamFixed..., what held TestRedteamHolds...,
// and a limit kept as documented TestRedteamKnown...; BenchmarkRedteam...
// measure cost.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const rt2Pay = "spiffe://example.org/ns/shop/sa/pay"

// rt2Callers are ten callers of the test mesh.
func rt2Callers() []string {
	var out []string
	for i := range 10 {
		out = append(out, fmt.Sprintf("spiffe://example.org/ns/web/sa/caller-%d", i))
	}
	return out
}

// rt2Exporter is an exporter writing to out with the spec file for every
// callee of ns/shop.
func rt2Exporter(t *testing.T, out, spec string) *authzExporter {
	t.Helper()
	e, _ := newTestExporter(t, func(c *Config) {
		c.Output.URL = "file://" + out
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: "spiffe://example.org/ns/shop/**", Spec: spec}}
		c.Routes.CardinalityThreshold = 0
	})
	return e
}

func rt2Bundle(t *testing.T, out string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, publish.BundleName))
	require.NoError(t, err)
	return raw
}

// A collector restarted without its aggregate holds back the smaller
// bundle (the shrink guard works); then the API spec file is touched in a
// way that changes no operation (a comment, as a CI pipeline re-rendering
// a ConfigMap does). Every removal for every callee the spec entry
// matches now counts as explained, so the lost aggregate is published:
// ten callers of two callees lose access they had a minute ago. The
// removals were not the spec's doing: the new version takes nothing away.
func TestRedteamFixedSpecEditExplainsLostAggregate(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	spec := rtSpec(t, rtoUsersName)
	first := rt2Exporter(t, out, spec)
	for _, c := range rt2Callers() {
		require.NoError(t, first.consumeTraces(ctx, callSpans(shop, c, call{"GET", "/api/users/alice"})))
		require.NoError(t, first.consumeTraces(ctx, callSpans(rt2Pay, c, call{"GET", "/api/users/alice"})))
	}
	require.NoError(t, first.flush(ctx))
	published := rt2Bundle(t, out)
	require.NoError(t, first.shutdown(ctx))

	// Restarted without storage: it has seen one caller only.
	restarted := rt2Exporter(t, out, spec)
	require.NoError(t, restarted.consumeTraces(ctx, callSpans(shop, rt2Callers()[0], call{"GET", "/api/users/bob"})))
	require.NoError(t, restarted.flush(ctx))
	require.True(t, bytes.Equal(published, rt2Bundle(t, out)), "the guard holds the lost aggregate back")

	// A comment is added to the spec: the same operations.
	require.NoError(t, os.WriteFile(spec, []byte(rtoUsersName+"# reformatted by CI\n"), 0o600))
	require.NoError(t, restarted.flush(ctx))
	require.NoError(t, restarted.flush(ctx)) // in use: read twice in a row

	policy := opatest.Load(t, rt2Bundle(t, out))
	for _, callee := range []string{shop, rt2Pay} {
		for _, c := range rt2Callers()[1:] {
			assert.True(t, policy.Allowed(opatest.Request{Destination: callee, Source: c, Method: "GET", Path: "/api/users/alice"}),
				"%s lost access to %s after a spec edit that changed no operation", c, callee)
		}
	}
}

// changedFor compares the spec in use with the one this process last
// published, not with the one the bundle in place was rendered with: a
// spec change that leaves the bundle as it is (no caller uses what
// changed) publishes nothing, so the callee's removals stay "explained" at
// every later flush, and a loss long after the edit (here: the aggregate,
// as a corrupt restore leaves it) is published without the guard.
func TestRedteamFixedUnpublishedSpecChangeExplainsLaterLoss(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	spec := rtSpec(t, rtoUsersName)
	e := rt2Exporter(t, out, spec)
	for _, c := range rt2Callers() {
		require.NoError(t, e.consumeTraces(ctx, callSpans(shop, c, call{"GET", "/api/users/alice"})))
	}
	require.NoError(t, e.flush(ctx))
	published := rt2Bundle(t, out)

	// A new operation no caller uses: the bundle stays byte for byte.
	require.NoError(t, os.WriteFile(spec, []byte(rtoUsersName+`  /health:
    get: {responses: {"200": {description: ok}}}
`), 0o600))
	for range 3 {
		require.NoError(t, e.flush(ctx))
	}
	require.Len(t, e.extract.specs.entries[0].spec().Operations, 2, "the new version is in use")
	require.True(t, bytes.Equal(published, rt2Bundle(t, out)), "nothing to publish")
	assert.False(t, e.extract.specs.changed(),
		"the bundle in place was rendered with an equivalent spec; nothing is explained by it any more")

	// Much later the aggregate is lost.
	e.agg = aggregate.New(aggregate.Limits{Entries: e.cfg.MaxEntries, PerCaller: e.cfg.MaxEntriesPerCaller, PerSource: e.cfg.MaxEntriesPerSource})
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, rt2Callers()[0], call{"GET", "/api/users/bob"})))
	require.NoError(t, e.flush(ctx))
	assert.True(t, bytes.Equal(published, rt2Bundle(t, out)), "the guard should hold back a loss the spec did not cause")
}

func rt2Enum(values string) string {
	return `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /orders/{status}:
    get:
      parameters: [{name: status, in: path, required: true, schema: {type: string, enum: [` + values + `]}}]
      responses: {"200": {description: ok}}
`
}

// Known (found by the red team, kept as documented): the spec's narrowing
// is explained only when this process read the old version. A replica
// restarted (resuming its aggregate from its shard) after the spec was
// narrowed while it was down takes the new version for the one published,
// so what it takes away counts against max_shrink and the bundle is held
// back for up to a window, keeping the enum values the operator removed
// granted until then.
func TestRedteamKnownRestartWithNarrowedSpecHoldsBackNarrowing(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	out := t.TempDir()
	spec := rtSpec(t, rt2Enum("open, closed, shipped, lost, held, paid, void, new, late, done"))
	mutate := func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: spec, Strict: true}}
	}
	a := replicaAt(t, out, "replica-a", &now, mutate)
	for _, c := range rt2Callers() {
		td := callSpans(shop, c, call{"GET", "/api/orders/open"})
		stampAt(td, now)
		consume(t, a, td)
	}
	flushAll(t, a)
	require.True(t, readBundle(t, out).Allowed(opatest.Request{Destination: shop, Source: rt2Callers()[1], Method: "GET", Path: "/api/orders/closed"}))
	require.NoError(t, a.shutdown(rtCtx))

	// While it is down, the API drops every status but open.
	require.NoError(t, os.WriteFile(spec, []byte(rt2Enum("open")), 0o600))
	now = now.Add(time.Minute)
	a2 := replicaAt(t, out, "replica-a", &now, mutate)
	flushAll(t, a2)
	policy := readBundle(t, out)
	assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: rt2Callers()[1], Method: "GET", Path: "/api/orders/open"}))
	assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: rt2Callers()[1], Method: "GET", Path: "/api/orders/closed"}),
		"the narrowing a new spec version made while the collector was down is held back as a lost aggregate would be")
}

// Without strict, odd spellings of an operation's path that are no
// operation (Match reads raw segments) go to the heuristics: whatever they
// learn must not grant an operation the caller never used.
func TestRedteamHoldsNonStrictOddSpellingsGrantNoOperation(t *testing.T) {
	spec, err := openapi.Load(shopSpec)
	require.NoError(t, err)
	odd := []string{
		"/api/v1/orders/7/", "/api/v1/orders//7", "/api/v1/orders/%37", "/api/v1//orders/7",
		"/api/v1/orders/7;x=1", "/api/v1/./orders/7", "/api/v1/orders/1/../7", "/api/v1/orders/07",
		"/api/v1/orders/+7", "/api/v1/orders/7%2F", "/api/v1/orders/by-status/%6Fpen", "/api/v1/orders/by-status/OPEN",
		"/api/v1/orders/by-status/open/", "/API/v1/orders/7", "/api/v1/orders/7?x=1#f", "/api/v1/orders/7#",
		"/api/v1/items/550E8400-E29B-41D4-A716-446655440000", "/api/v1/customers/al%20ice/orders",
	}
	probes := []string{"/api/v1/orders/7", "/api/v1/orders/8", "/api/v1/orders/by-status/open", "/api/v1/orders/by-status/closed",
		"/api/v1/items/550e8400-e29b-41d4-a716-446655440000", "/api/v1/customers/bob/orders"}
	for _, p := range odd {
		t.Run(p, func(t *testing.T) {
			usedOp, _ := spec.Match("GET", route.TrimQuery(p))
			allowed := rtLearn(t, shopSpec, false, 2, call{"GET", p})
			for _, q := range probes {
				op, _ := spec.Match("GET", q)
				assert.Equal(t, op != nil && op == usedOp, allowed("GET", q), "learned %s, probe %s", p, q)
			}
		})
	}
}

// As TestRedteamHoldsRandomOverlapAgreesWithMatch, without strict: callers
// also send requests of no operation, which the heuristics learn and the
// backstop (2) folds; on every probe an operation admits, OPA allows
// exactly when Match gives it to an operation the caller used.
func TestRedteamHoldsRandomNonStrictAgreesWithMatch(t *testing.T) {
	probes := rtoProbes()
	callers := []string{frontend, backend}
	iterations, seed := 10, uint64(2)
	if v := os.Getenv("RT2_ITER"); v != "" {
		fmt.Sscan(v, &iterations)
	}
	if v := os.Getenv("RT2_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	ctx := context.Background()
	for it := 0; it < iterations; it++ {
		body := rtoSpec(rng, 4+rng.IntN(6))
		file := filepath.Join(t.TempDir(), "spec.yaml")
		require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
		spec, err := openapi.Load(file)
		if err != nil {
			continue
		}
		e, dir := newTestExporter(t, func(c *Config) {
			c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: file}}
			c.Routes.CardinalityThreshold = 2
		})
		used := map[string]map[*openapi.Operation]bool{}
		for _, caller := range callers {
			used[caller] = map[*openapi.Operation]bool{}
			var calls []call
			for range 3 + rng.IntN(12) {
				p := probes[rng.IntN(len(probes))]
				if op, ok := spec.Match("GET", p); ok {
					used[caller][op] = true
				}
				calls = append(calls, call{"GET", p})
			}
			require.NoError(t, e.consumeTraces(ctx, callSpans(shop, caller, calls...)))
		}
		require.NoError(t, e.flush(ctx))
		policy := readBundle(t, dir)
		for _, caller := range callers {
			for _, p := range probes {
				op, ok := spec.Match("GET", p)
				if !ok {
					continue
				}
				got := policy.Allowed(opatest.Request{Destination: shop, Source: caller, Method: "GET", Path: p})
				if got != used[caller][op] {
					t.Fatalf("iteration %d: %s GET %s: allowed %v, operation %s used %v\nspec:\n%s", it, caller, p, got, op, used[caller][op], body)
				}
			}
		}
	}
}

const rt2WithAdmin = rtoUsersName + `  /admin/{task}:
    post:
      parameters: [{name: task, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
`

// With strict, a request that is no operation of the spec is never
// learned; an operation a new version removes (the API no longer has
// POST /admin/{task}) keeps its learned wildcard granted until the window
// expires it (a week by default): a request no operation of the spec in
// force admits, which strict learning would refuse, is allowed, for any
// task value, not only the one the caller sent.
func TestRedteamFixedStrictRemovedOperationStaysGranted(t *testing.T) {
	allowed := rtoReload(t, rt2WithAdmin, rtoUsersName, true, 0,
		call{"GET", "/api/users/alice"}, call{"POST", "/api/admin/reindex"})
	require.True(t, allowed("GET", "/api/users/bob"))
	spec, err := openapi.Parse([]byte(rtoUsersName), "v2")
	require.NoError(t, err)
	_, isOp := spec.Match("POST", "/api/admin/drop-all")
	require.False(t, isOp, "no operation of the spec in force")
	assert.False(t, allowed("POST", "/api/admin/drop-all"), "a removed operation's wildcard, under strict")
}

// max_shrink is a share of the published rules, and every use of an enum
// operation publishes a rule per value (64 at most): one request counts as
// 64 rules. Ten callers of one enum operation of shop make 640 rules, so a
// collector restarted without its aggregate that sees shop's traffic again
// but not yet balances' (a nightly job) removes every caller's access to
// balances as 10 rules of 650, below 20%, and publishes it. With the same
// accesses to a plain operation (10 rules of 20) the guard holds it back.
func TestRedteamFixedEnumAlternativesDiluteShrinkGuard(t *testing.T) {
	ctx := context.Background()
	var vals []string
	for i := range 64 {
		vals = append(vals, fmt.Sprintf("s%d", i))
	}
	spec := rtSpec(t, rt2Enum(strings.Join(vals, ", ")))
	for _, enum := range []bool{false, true} {
		t.Run(fmt.Sprintf("enum=%v", enum), func(t *testing.T) {
			out := t.TempDir()
			mk := func() *authzExporter {
				e, _ := newTestExporter(t, func(c *Config) {
					c.Output.URL = "file://" + out
					if enum {
						c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: spec, Strict: true}}
					}
				})
				return e
			}
			shopTraffic := func(e *authzExporter) {
				for _, c := range rt2Callers() {
					require.NoError(t, e.consumeTraces(ctx, callSpans(shop, c, call{"GET", "/api/orders/s0"})))
				}
			}
			first := mk()
			shopTraffic(first)
			for _, c := range rt2Callers() {
				require.NoError(t, first.consumeTraces(ctx, callSpans(balances, c, call{"GET", "/balances"})))
			}
			require.NoError(t, first.flush(ctx))
			t.Logf("published rules: %d", len(first.guard.published))
			require.NoError(t, first.shutdown(ctx))

			restarted := mk()
			shopTraffic(restarted)
			require.NoError(t, restarted.flush(ctx))
			assert.True(t, readBundle(t, out).Allowed(opatest.Request{Destination: balances, Source: rt2Callers()[3], Method: "GET", Path: "/balances"}),
				"a lost aggregate removed every caller of balances")
		})
	}
}

// The same through replicas: the publisher renders the records of every
// shard with its own spec, and strict is only checked where a span is
// learned. A replica whose spec (still, or wrongly) has POST /admin/{task}
// learns it; the publisher, whose strict spec has no such operation,
// grants the wildcard, for any task.
func TestRedteamFixedStrictBypassedThroughOtherReplicasSpec(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	out := t.TempDir()
	v1, v2 := rtSpec(t, rtoUsersName), rtSpec(t, rt2WithAdmin)
	a := replicaAt(t, out, "replica-a", &now, func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: v1, Strict: true}}
	})
	b := replicaAt(t, out, "replica-b", &now, func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: v2, Strict: true}}
	})
	td := callSpans(shop, frontend, call{"GET", "/api/users/alice"})
	stampAt(td, now)
	consume(t, a, td)
	td = callSpans(shop, frontend, call{"POST", "/api/admin/reindex"})
	stampAt(td, now)
	consume(t, b, td)
	flushAll(t, b, a)
	policy := readBundle(t, out)
	require.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "GET", Path: "/api/users/bob"}))
	assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "POST", Path: "/api/admin/drop-all"}),
		"the publisher's strict spec has no POST /admin/{task}")
}
