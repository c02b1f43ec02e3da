package authzpolicyexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const (
	frontend = "spiffe://example.org/ns/bank/sa/frontend"
	backend  = "spiffe://example.org/ns/bank/sa/backend"
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
)

func newTestExporter(t testing.TB, mutate func(*Config)) (*authzExporter, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	if mutate != nil {
		mutate(cfg)
	}
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, e.shutdown(context.Background())) })
	return e, dir
}

// loadSpans reads a sample file and returns it with the time just after its
// last span, so the rolling window keeps it.
func loadSpans(t *testing.T, name string) (ptrace.Traces, time.Time) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "spans", name))
	require.NoError(t, err)
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	require.NoError(t, err)
	var last pcommon.Timestamp
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			for k := 0; k < ss.At(j).Spans().Len(); k++ {
				last = max(last, ss.At(j).Spans().At(k).EndTimestamp())
			}
		}
	}
	return td, last.AsTime().Add(time.Minute)
}

func readBundle(t testing.TB, dir string) *opatest.Policy {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	return opatest.Load(t, raw)
}

// Every sample shape teaches the same policy, and none of the spans that
// must not be learned widens it.
func TestLearnsSampleSpans(t *testing.T) {
	for _, name := range []string{"pixie-pxl.json", "pixie-http-spans.json", "semconv.json"} {
		t.Run(name, func(t *testing.T) {
			e, dir := newTestExporter(t, nil)
			td, now := loadSpans(t, name)
			e.now = func() time.Time { return now }
			require.NoError(t, e.consumeTraces(context.Background(), td))
			for _, why := range []reason{reasonDeniedStatus, reasonNoIdentity, reasonPathTraversal} {
				assert.Positive(t, e.skipped[why].Load(), "no span skipped as %s", why)
			}
			// The PxL shape splits the header, so its broken quote shows as an invalid identity.
			assert.Positive(t, e.skipped[reasonMalformedXFCC].Load()+e.skipped[reasonInvalidIdentity].Load())
			require.NoError(t, e.flush(context.Background()))
			policy := readBundle(t, dir)

			allowed := []opatest.Request{
				{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/7"},
				{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/991234?currency=EUR"},
				{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"},
				{Destination: payments, Source: frontend, Method: "POST", Path: "/payments"},
				{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/2c9d1e4f-7b4d-4e2a-9c1f-0a1b2c3d4e5f"},
				{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/0a1b2c3d4e/status"},
				{Destination: backend, Source: payments, Method: "POST", Path: "/ledger/entries"},
				{Destination: backend, Source: payments, Method: "GET", Path: "/ledger/accounts/5500112233"},
				{Destination: backend, Source: frontend, Method: "GET", Path: "/healthz"},
				{Destination: backend, Source: payments, Method: "POST", Path: "/bank.Ledger/Transfer"}, // gRPC, OK
			}
			for _, r := range allowed {
				assert.True(t, policy.Allowed(r), "%s %s from %s to %s", r.Method, r.Path, r.Source, r.Destination)
			}
			denied := []opatest.Request{
				{Destination: payments, Source: balances, Method: "POST", Path: "/payments"},             // answered 403
				{Destination: backend, Source: frontend, Method: "POST", Path: "/ledger/entries"},        // answered 401
				{Destination: backend, Source: frontend, Method: "DELETE", Path: "/ledger/accounts/1"},   // malformed XFCC
				{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/admin/export"}, // no XFCC
				{Destination: balances, Source: frontend, Method: "GET", Path: "/admin/config"},          // learned only via ..
				{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/admin"},
				{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/admin"},
				{Destination: backend, Source: frontend, Method: "GET", Path: "/healthz/x"},
				{Destination: backend, Source: "spiffe://evil.org/ns/bank/sa/frontend", Method: "GET", Path: "/healthz"},
				{Destination: backend, Source: frontend, Method: "POST", Path: "/bank.Ledger/Transfer"}, // gRPC PERMISSION_DENIED with HTTP 200
				{Destination: backend, Source: payments, Method: "POST", Path: "/bank.Ledger/Delete"},
				{Destination: backend, Source: payments, Method: "GET", Path: "/bank.Ledger/Transfer"},
			}
			for _, r := range denied {
				assert.False(t, policy.Allowed(r), "%s %s from %s to %s", r.Method, r.Path, r.Source, r.Destination)
			}
		})
	}
}

func TestSkipReasonsAreCounted(t *testing.T) {
	e, _ := newTestExporter(t, nil)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	add := func(attrs map[string]any) {
		s := spans.AppendEmpty()
		require.NoError(t, s.Attributes().FromRaw(attrs))
	}
	xfcc := "By=" + balances + ";URI=" + frontend
	add(map[string]any{"http.method": "GET", "http.target": "/a"})                                                             // no identity
	add(map[string]any{"http.request.header.x-forwarded-client-cert": "By=x;URI=\"y", "http.method": "GET", "url.path": "/a"}) // malformed
	add(map[string]any{"http.request.header.x-forwarded-client-cert": "By=spiffe://a/b;URI=spiffe://a/c;URI=spiffe://a/d", "http.method": "GET", "url.path": "/a"})
	add(map[string]any{"http.request.header.x-forwarded-client-cert": "By=spiffe://A/b;URI=spiffe://a/c", "http.method": "GET", "url.path": "/a"})
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "url.path": "/a"})                              // no method
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "g et", "url.path": "/a"})       // invalid method
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "GET"})                          // no path
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "GET", "url.path": "/a b"})      // invalid path
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "GET", "url.path": "/a/%2e%2e"}) // traversal
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "GET", "url.path": "/" + string(make([]byte, 5000))})
	add(map[string]any{"http.request.header.x-forwarded-client-cert": xfcc, "http.method": "GET", "url.path": "/a", "http.response.status_code": 403})
	add(map[string]any{"http.req_headers": `{"x-forwarded-client-cert": "By=spiffe://a/b;URI=spiffe://a/c"`, "http.method": "GET", "url.path": "/a"}) // truncated JSON
	add(map[string]any{"http.request.header.x-forwarded-client-cert": []any{xfcc}, "http.method": "GET", "url.full": "http://balances:8080/a?b=c"})   // learned

	require.NoError(t, e.consumeTraces(context.Background(), td))
	want := map[reason]int64{
		reasonNoIdentity: 1, reasonMalformedXFCC: 1, reasonTruncatedHeader: 1, reasonAmbiguousIdentity: 1, reasonInvalidIdentity: 1,
		reasonNoMethod: 1, reasonInvalidMethod: 1, reasonNoPath: 1, reasonInvalidPath: 1,
		reasonPathTraversal: 1, reasonPathTooLong: 1, reasonDeniedStatus: 1,
	}
	for r := learned + 1; r < numReasons; r++ {
		assert.Equal(t, want[r], e.skipped[r].Load(), "reason %s", r)
	}
	assert.Equal(t, 1, e.agg.Len())
}

// Until something is learned, a flush publishes nothing: a restarted
// collector must not replace a good bundle with an empty one.
func TestNoBundleBeforeLearning(t *testing.T) {
	e, dir := newTestExporter(t, nil)
	require.NoError(t, e.flush(context.Background()))
	_, err := os.Stat(filepath.Join(dir, publish.BundleName))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestUnchangedRevisionIsNotRewritten(t *testing.T) {
	e, dir := newTestExporter(t, nil)
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	path := filepath.Join(dir, publish.BundleName)
	before, err := os.Stat(path)
	require.NoError(t, err)

	// The PxL script re-sends its last minutes: same spans, same policy.
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	after, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, before.ModTime(), after.ModTime())
	assert.True(t, os.SameFile(before, after), "bundle was replaced")
}

func TestAccessExpiresAfterWindow(t *testing.T) {
	e, dir := newTestExporter(t, func(c *Config) { c.Window = time.Hour })
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	healthz := opatest.Request{Destination: backend, Source: frontend, Method: "GET", Path: "/healthz"}
	require.True(t, readBundle(t, dir).Allowed(healthz))

	e.now = func() time.Time { return now.Add(2 * time.Hour) }
	require.NoError(t, e.flush(context.Background()))
	assert.False(t, readBundle(t, dir).Allowed(healthz))
	assert.Zero(t, e.agg.Len())
}

func TestUnpackedDirIsALoadableBundle(t *testing.T) {
	unpacked := t.TempDir()
	e, _ := newTestExporter(t, func(c *Config) { c.Output.UnpackedDir = unpacked })
	td, now := loadSpans(t, "pixie-http-spans.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	for _, f := range []string{".manifest", "envoy/authz/policy.rego", "envoy/authz/grants/example.org/ns/bank/sa/balances/@callers/data.json"} {
		assert.FileExists(t, filepath.Join(unpacked, f))
	}
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	cfg.FlushInterval = 10 * time.Millisecond
	exp, err := f.CreateTraces(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	td, _ := loadSpans(t, "semconv.json")
	// The sample's timestamps are old; as seen now they would be expired,
	// so stamp them with the current time.
	stampNow(td)
	require.NoError(t, exp.ConsumeTraces(context.Background(), td))
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, publish.BundleName))
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, exp.Shutdown(context.Background()))
}

func stampNow(td ptrace.Traces) {
	now := pcommon.NewTimestampFromTime(time.Now())
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			for k := 0; k < ss.At(j).Spans().Len(); k++ {
				ss.At(j).Spans().At(k).SetEndTimestamp(now)
			}
		}
	}
}

func TestTrustDomainsAllowlist(t *testing.T) {
	e, _ := newTestExporter(t, func(c *Config) { c.TrustDomains = []string{"example.org"} })
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, header := range []string{
		"By=" + balances + ";URI=" + frontend,
		"By=" + balances + ";URI=spiffe://evil.org/ns/bank/sa/frontend",
		"By=spiffe://evil.org/ns/bank/sa/balances;URI=" + frontend,
	} {
		s := spans.AppendEmpty()
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", header)
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", "/balances/1")
	}
	require.NoError(t, e.consumeTraces(context.Background(), td))
	assert.Equal(t, 1, e.agg.Len())
	assert.Equal(t, int64(2), e.skipped[reasonUntrustedDomain].Load())
}

// A review directory that cannot be written does not fail the flush: the
// enforced bundle is published and the next flush sees it as unchanged.
func TestUnwritableReviewDirDoesNotFailTheFlush(t *testing.T) {
	blocked := filepath.Join(t.TempDir(), "review")
	require.NoError(t, os.WriteFile(blocked, []byte("a file, not a directory"), 0o600))
	e, dir := newTestExporter(t, func(c *Config) { c.Output.UnpackedDir = blocked; c.Output.Timeout = time.Second })
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	assert.FileExists(t, filepath.Join(dir, publish.BundleName))
	assert.NotEmpty(t, e.lastRevision)
}

// An operator template parameter without a type takes the narrowest type
// of the value it was seen with: /users/{id} learned from /users/4711
// admits numbers, not /users/admin. A typed parameter keeps its type.
func TestUntypedTemplateParameterIsNarrowed(t *testing.T) {
	ctx := context.Background()
	e, dir := newTestExporter(t, func(c *Config) {
		c.Routes.Templates = []string{"/users/{id}", "/keys/:key", "/orders/{order:id}"}
	})
	require.NoError(t, e.consumeTraces(ctx, spansFor("/users/4711", "/keys/550e8400-e29b-41d4-a716-446655440000", "/orders/12345")))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	req := func(p string) opatest.Request {
		return opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: p}
	}
	for _, p := range []string{"/users/4711", "/users/1", "/keys/123e4567-e89b-12d3-a456-426614174000", "/orders/12345", "/orders/ord-2024-1"} {
		assert.True(t, policy.Allowed(req(p)), "must allow %s", p)
	}
	for _, p := range []string{"/users/admin", "/users/.env", "/users/4711x", "/users/abc1", "/users/..", "/users/",
		"/keys/admin", "/keys/4711", "/orders/admin"} {
		assert.False(t, policy.Allowed(req(p)), "must deny %s", p)
	}
}

// The cardinality backstop opens a position only for a rest of the route
// that enough values were seen with: ten users with ten different actions
// do not let one user do what another did.
func TestBackstopDoesNotCombineUnseenPairs(t *testing.T) {
	ctx := context.Background()
	e, dir := newTestExporter(t, func(c *Config) { c.Routes.CardinalityThreshold = 10 })
	users := []string{"kim", "lou", "max", "ned", "ola", "pat", "quinn", "rae", "sam", "tom"}
	actions := []string{"view", "edit", "delete", "share", "export", "archive", "restore", "rename", "audit", "reset-password"}
	var paths []string
	for i, u := range users {
		paths = append(paths, "/users/"+u+"/"+actions[i], "/users/"+u+"/profile")
	}
	require.NoError(t, e.consumeTraces(ctx, spansFor(paths...)))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	req := func(p string) opatest.Request {
		return opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: p}
	}
	for _, p := range append(paths, "/users/uma/profile") {
		assert.True(t, policy.Allowed(req(p)), "must allow %s", p)
	}
	for _, p := range []string{"/users/kim/edit", "/users/lou/reset-password", "/users/admin/impersonate", "/users/uma/view"} {
		assert.False(t, policy.Allowed(req(p)), "must deny %s", p)
	}
}
