package authzpolicyexporter

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadatatest"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const (
	shop     = "spiffe://example.org/ns/shop/sa/api"
	shopSpec = "testdata/openapi/shop.yaml"
)

// call is one request: method and path.
type call struct{ method, path string }

// callSpans are server spans of caller's calls to callee, all answered 200.
func callSpans(callee, caller string, calls ...call) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, c := range calls {
		s := spans.AppendEmpty()
		s.SetKind(ptrace.SpanKindServer)
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By="+callee+";URI="+caller)
		s.Attributes().PutStr("http.request.method", c.method)
		s.Attributes().PutStr("url.path", c.path)
		s.Attributes().PutInt("http.response.status_code", 200)
	}
	return td
}

func withSpec(spec string, strict bool) func(*Config) {
	return func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: "spiffe://example.org/ns/shop/**", Spec: spec, Strict: strict}}
	}
}

// used are the calls the tests' caller makes, one per operation but
// deleteOrder.
var used = []call{
	{"GET", "/api/v1/customers/alice/orders"},
	{"POST", "/api/v1/customers/42/orders"},
	{"GET", "/api/v1/orders/7"},
	{"GET", "/api/v1/orders/by-status/open"},
	{"GET", "/api/v1/items/550e8400-e29b-41d4-a716-446655440000"},
	{"PUT", "/api/v1/flags/true"},
}

// A request that is an operation of the callee's spec grants that
// operation to that caller: each schema type as its slot, parameters of
// the path item and of the operation, the base path; nothing else.
func TestSpecOperationsAreLearned(t *testing.T) {
	ctx := context.Background()
	unpacked := t.TempDir()
	e, dir := newTestExporter(t, func(c *Config) {
		withSpec(shopSpec, false)(c)
		c.Output.UnpackedDir = unpacked
		c.Routes.CardinalityThreshold = 2
	})
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, used...)))
	// Two enum values: the backstop must not widen an operation's slot.
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, call{"GET", "/api/v1/orders/by-status/closed"})))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	req := func(c call) opatest.Request {
		return opatest.Request{Destination: shop, Source: frontend, Method: c.method, Path: c.path}
	}
	allowed := append([]call{
		{"GET", "/api/v1/customers/bob_1/orders"},                     // string: {token}, from the path item
		{"GET", "/api/v1/customers/42/orders"},                        // a token may be digits
		{"POST", "/api/v1/customers/4711/orders"},                     // integer, the operation's own parameter
		{"GET", "/api/v1/orders/123?expand=items"},                    // integer, with a query
		{"GET", "/api/v1/orders/by-status/closed"},                    // an enum value sent
		{"GET", "/api/v1/orders/by-status/shipped"},                   // an enum is granted whole
		{"PUT", "/api/v1/flags/false"},                                // a boolean is an enum of two
		{"GET", "/api/v1/items/123e4567-e89b-12d3-a456-426614174000"}, // uuid
	}, used...)
	for _, c := range allowed {
		assert.True(t, policy.Allowed(req(c)), "must allow %s %s", c.method, c.path)
	}
	denied := []call{
		{"DELETE", "/api/v1/orders/7"},              // an operation never used
		{"POST", "/api/v1/customers/alice/orders"},  // the operation's parameter is an integer
		{"GET", "/api/v1/orders/abc"},               // wrong type
		{"GET", "/api/v1/orders/-1"},                // integers are digits
		{"GET", "/api/v1/orders/by-status/pending"}, // not in the enum
		{"GET", "/api/v1/orders/by-status/{token}"},
		{"GET", "/api/v1/items/4711"},                     // not a uuid
		{"PUT", "/api/v1/flags/yes"},                      // not a boolean
		{"GET", "/customers/alice/orders"},                // outside the base path
		{"GET", "/api/v2/orders/7"},                       // another base path
		{"GET", "/api/v1/orders/7/items"},                 // longer
		{"GET", "/api/v1/customers/alice/orders/7"},       // longer
		{"GET", "/api/v1/customers/../orders"},            // dot segment
		{"GET", "/api/v1/customers/alice%2Fbob/orders"},   // an escaped slash is no token
		{"GET", "/api/v1/customers/alice/orders/../../x"}, // traversal
	}
	for _, c := range denied {
		assert.False(t, policy.Allowed(req(c)), "must deny %s %s", c.method, c.path)
	}
	// Another caller was granted nothing.
	assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: backend, Method: "GET", Path: "/api/v1/orders/7"}))

	// The review output says the rules came from the spec.
	var evidence []string
	require.NoError(t, filepath.WalkDir(unpacked, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "evidence.json" {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			evidence = append(evidence, string(b))
		}
		return err
	}))
	all := strings.Join(evidence, "\n")
	assert.Contains(t, all, `"origin": "openapi"`)
	assert.Contains(t, all, `/api/v1/orders/{int}`)
	assert.NotContains(t, all, `"origin": "learned"`)
	assert.NotContains(t, all, `"origin": "backstop"`)
}

// A callee without a spec, or a request that is no operation of its spec
// without strict, is learned as before.
func TestSpecLeavesOtherRequestsToTheLearner(t *testing.T) {
	ctx := context.Background()
	e, dir := newTestExporter(t, withSpec(shopSpec, false))
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, call{"GET", "/api/v1/admin/stats"}, call{"GET", "/health"})))
	require.NoError(t, e.consumeTraces(ctx, callSpans(balances, frontend, call{"GET", "/api/v1/orders/7"})))
	assert.Zero(t, e.skipped[reasonNotInSpec].Load())
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "GET", Path: "/api/v1/admin/stats"}))
	assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "GET", Path: "/health"}))
	assert.True(t, policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/api/v1/orders/7"}))
	// balances has no spec: its route is the heuristics', which type the
	// number, but no spec widens anything there.
	assert.False(t, policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "DELETE", Path: "/api/v1/orders/7"}))
}

// With strict, a request to the callee that is no operation of its spec
// is not learned, and counted.
func TestStrictSpecRefusesOtherRequests(t *testing.T) {
	ctx := context.Background()
	e, dir := newTestExporter(t, withSpec(shopSpec, true))
	calls := append([]call{
		{"GET", "/api/v1/admin/stats"},
		{"GET", "/orders/7"},
		{"DELETE", "/api/v1/customers/alice/orders"},
		{"POST", "/api/v1/customers/alice/orders"},
	}, used...)
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, calls...)))
	assert.EqualValues(t, 4, e.skipped[reasonNotInSpec].Load()) // until the flush logs them
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	for _, c := range calls[:4] {
		assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: c.method, Path: c.path}), "must deny %s %s", c.method, c.path)
	}
	for _, c := range used {
		assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: c.method, Path: c.path}), "must allow %s %s", c.method, c.path)
	}
	assert.Equal(t, "not_in_spec", reasonNotInSpec.String())
}

// A spec that cannot be read stops the exporter at start, naming the file
// and the reason.
func TestBrokenSpecAtStart(t *testing.T) {
	for spec, want := range map[string]string{
		"testdata/openapi/broken.yaml":       `testdata/openapi/broken.yaml: path parameter not declared: GET /orders/{orderId}: "orderId"`,
		"testdata/openapi/no-such-spec.yaml": "open testdata/openapi/no-such-spec.yaml: no such file or directory",
		"testdata/config.yaml":               "testdata/config.yaml: not an OpenAPI document",
	} {
		cfg := createDefaultConfig().(*Config)
		cfg.Output.URL = "file://" + t.TempDir()
		withSpec(spec, false)(cfg)
		err := cfg.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
		_, err = newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
}

// A spec is read again when it changes: a bad new version keeps the last
// good one, logged and counted once; a good one is used from the next
// flush on.
func TestSpecReload(t *testing.T) {
	ctx := context.Background()
	good, err := os.ReadFile(shopSpec)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "shop.yaml")
	require.NoError(t, os.WriteFile(file, good, 0o600))

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(ctx)) })
	core, logs := observer.New(zap.InfoLevel)
	set := metadatatest.NewSettings(tel)
	set.Logger = zap.New(core)
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	withSpec(file, true)(cfg)
	e, err := newExporter(cfg, set)
	require.NoError(t, err)
	require.NoError(t, e.start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, e.shutdown(ctx)) })

	outcomes := func(loaded, failed int64) {
		t.Helper()
		var dps []metricdata.DataPoint[int64]
		if failed > 0 {
			dps = append(dps, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("outcome", "failed")), Value: failed})
		}
		if loaded > 0 {
			dps = append(dps, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("outcome", "loaded")), Value: loaded})
		}
		metadatatest.AssertEqualAuthzPolicyOpenapiReloads(t, tel, dps, metricdatatest.IgnoreTimestamp())
	}
	admin := call{"GET", "/api/v1/admin/stats"}
	learn := func() *opatest.Policy {
		t.Helper()
		require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, append([]call{admin}, used...)...)))
		require.NoError(t, e.flush(ctx))
		return readBundle(t, dir)
	}
	allowed := func(p *opatest.Policy, c call) bool {
		return p.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: c.method, Path: c.path})
	}

	p := learn()
	assert.False(t, allowed(p, admin), "strict: not in the spec")
	assert.True(t, allowed(p, call{"GET", "/api/v1/orders/9"}))

	// A broken version: the spec read before stays, reported once.
	require.NoError(t, os.WriteFile(file, []byte("openapi: 3.0.3\npaths: [broken\n"), 0o600))
	for range 3 {
		p = learn()
	}
	assert.False(t, allowed(p, admin))
	assert.True(t, allowed(p, call{"GET", "/api/v1/orders/9"}))
	outcomes(0, 1)
	assert.Equal(t, 1, logs.FilterMessage("The changed API spec cannot be used; the spec read before stays in force").Len())

	// A good version with the admin operation: learned from then on.
	next := strings.Replace(string(good), "paths:\n", "paths:\n  /admin/stats:\n    get:\n      responses: {\"200\": {description: ok}}\n", 1)
	require.NoError(t, os.WriteFile(file, []byte(next), 0o600))
	for range 2 { // read twice: the new version settled
		learn()
	}
	p = learn() // learned after the reload
	assert.True(t, allowed(p, admin))
	outcomes(1, 1)
	assert.Equal(t, 1, logs.FilterMessage("Read the changed API spec").Len())
}

// Operations of one spec may admit the same request; the spec's matching
// order gives it to one (a literal before a wildcard, at the first segment
// where they differ). A caller is allowed a request exactly when its
// operation is one the caller used: /users/{name} is no grant of
// /users/me. Checked with OPA on the real bundle for every path of the
// spec's segments, for a caller of the wildcard operations and one of the
// literal ones.
func TestOverlappingOperations(t *testing.T) {
	const file = "internal/route/openapi/testdata/overlap.yaml"
	spec, err := openapi.Load(file)
	require.NoError(t, err)
	wide := []call{
		{"GET", "/api/users/alice"},
		{"GET", "/api/users/bob/orders/7"},
		{"GET", "/api/shops/us/items/7"},
		{"GET", "/api/shops/acme/toys/0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f"},
		{"GET", "/api/catalog/alice/list2"},
		{"GET", "/api/v/abc/x"},
		{"GET", "/api/v/5/zz"},
	}
	narrow := []call{
		{"GET", "/api/users/me"},
		{"GET", "/api/users/admin/orders/abc"},
		{"GET", "/api/shops/eu/items/sku-1"},
		{"GET", "/api/catalog/books/list"},
	}
	ctx := context.Background()
	unpacked := t.TempDir()
	e, dir := newTestExporter(t, func(c *Config) {
		c.Routes.OpenAPI = []OpenAPIConfig{{Callee: shop, Spec: file, Strict: true}}
		c.Output.UnpackedDir = unpacked
	})
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, wide...)))
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, backend, narrow...)))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	// The review output says what a route leaves out.
	evidence, err := os.ReadFile(filepath.Join(unpacked, "envoy/authz/grants/example.org/ns/shop/sa/api/@callers/evidence.json"))
	require.NoError(t, err)
	assert.Contains(t, string(evidence), `"route": "/api/users/{token}",
    "except": "/api/users/me",`)
	page, err := os.ReadFile(filepath.Join(unpacked, "index.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), `<code>/api/users/{token}</code> except <code>/api/users/me</code>`)

	// Every path of up to three segments below the base path, and of four
	// for the operations that have four.
	vocab := []string{"users", "me", "admin", "alice", "orders", "7", "x", "shops", "eu", "us",
		"items", "latest", "v", "catalog", "books", "list", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f"}
	var probes []string
	var grow func(p string, n int)
	grow = func(p string, n int) {
		if n >= 2 {
			probes = append(probes, p)
		}
		if n == 4 || n == 3 && !strings.HasPrefix(p, "/api/users/") && !strings.HasPrefix(p, "/api/shops/") {
			return
		}
		for _, v := range vocab {
			grow(p+"/"+v, n+1)
		}
	}
	grow("/api", 0)
	for _, caller := range []struct {
		id    string
		calls []call
	}{{frontend, wide}, {backend, narrow}} {
		used := map[*openapi.Operation]bool{}
		for _, c := range caller.calls {
			op, ok := spec.Match(c.method, c.path)
			require.True(t, ok, "%s %s", c.method, c.path)
			used[op] = true
		}
		allowed := 0
		for _, p := range probes {
			op, ok := spec.Match("GET", p)
			want := ok && used[op]
			got := policy.Allowed(opatest.Request{Destination: shop, Source: caller.id, Method: "GET", Path: p})
			require.Equal(t, want, got, "%s GET %s (operation %v)", caller.id, p, op)
			if want {
				allowed++
			}
		}
		t.Logf("%s: %d of %d paths allowed, each its operation's", caller.id, allowed, len(probes))
		assert.Greater(t, allowed, 10)
	}
}
