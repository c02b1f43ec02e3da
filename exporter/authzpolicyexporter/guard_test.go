package authzpolicyexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// spansFor is one span per path from frontend to balances.
func spansFor(paths ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, p := range paths {
		s := spans.AppendEmpty()
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By="+balances+";URI="+frontend)
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", p)
	}
	return td
}

// publishSamples publishes the semantic-conventions sample as a first
// collector would, with a one-hour window, and returns the output
// directory, a config change writing there, the spans and their time.
func publishSamples(t *testing.T) (string, func(*Config), ptrace.Traces, time.Time) {
	t.Helper()
	dir := t.TempDir()
	out := func(c *Config) { c.Output.URL = "file://" + dir; c.Window = time.Hour }
	first, _ := newTestExporter(t, out)
	td, now := loadSpans(t, "semconv.json")
	first.now = func() time.Time { return now }
	require.NoError(t, first.consumeTraces(context.Background(), td))
	require.NoError(t, first.flush(context.Background()))
	return dir, out, td, now
}

// A collector restarted without its aggregate must not replace a full
// policy with what it saw since: the smaller bundle is held back until
// the access is seen again or a whole window has passed.
func TestShrinkGuardHoldsBackALostAggregate(t *testing.T) {
	dir, out, td, now := publishSamples(t)
	published, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)

	restarted, _ := newTestExporter(t, out)
	restarted.now = func() time.Time { return now }
	require.NoError(t, restarted.consumeTraces(context.Background(), spansFor("/healthz-only")))
	require.NoError(t, restarted.flush(context.Background()))
	held, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.Equal(t, published, held, "a shrunk bundle was published")

	// The traffic comes back: the bundle grows and is published.
	require.NoError(t, restarted.consumeTraces(context.Background(), td))
	require.NoError(t, restarted.flush(context.Background()))
	grown, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.NotEqual(t, published, grown)
	assert.True(t, opatest.Load(t, grown).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/healthz-only"}))
}

// A bundle the version before template groups published, in place at an
// upgrade, is the shrink guard's reference all the same: a collector that
// restarts on the new version having seen less holds the smaller bundle
// back.
func TestShrinkGuardReadsPreviousLayout(t *testing.T) {
	dir := t.TempDir()
	previous := opatest.PackDir(t, filepath.Join("..", "..", "testdata", "previous", "bank"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, publish.BundleName), previous, 0o644))

	upgraded, _ := newTestExporter(t, func(c *Config) { c.Output.URL = "file://" + dir; c.Window = time.Hour })
	require.NoError(t, upgraded.consumeTraces(context.Background(), spansFor("/healthz-only")))
	require.NoError(t, upgraded.flush(context.Background()))
	held, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.Equal(t, previous, held, "a shrunk bundle replaced the previous version's")
}

func TestShrinkGuardReleasesAfterAWindow(t *testing.T) {
	dir, out, _, now := publishSamples(t)

	restarted, _ := newTestExporter(t, out)
	clock := now
	restarted.now = func() time.Time { return clock }
	require.NoError(t, restarted.consumeTraces(context.Background(), spansFor("/healthz-only")))
	require.NoError(t, restarted.flush(context.Background()))
	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.False(t, opatest.Load(t, raw).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/healthz-only"}), "held back")

	clock = now.Add(50 * time.Minute)
	require.NoError(t, restarted.consumeTraces(context.Background(), spansFor("/healthz-only")))
	clock = now.Add(61 * time.Minute)
	require.NoError(t, restarted.flush(context.Background()))
	raw, err = os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	policy := opatest.Load(t, raw)
	assert.True(t, policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/healthz-only"}), "released after a window")
	assert.False(t, policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"}))
}

// Generalization replaces literal rules by a wildcard that still covers
// them: that is not a shrink.
func TestShrinkGuardAcceptsGeneralization(t *testing.T) {
	e, dir := newTestExporter(t, func(c *Config) { c.Routes.CardinalityThreshold = 5 })
	var names []string
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		names = append(names, "/users/"+n)
	}
	require.NoError(t, e.consumeTraces(context.Background(), spansFor(names...)))
	require.NoError(t, e.flush(context.Background()))
	require.NoError(t, e.consumeTraces(context.Background(), spansFor("/users/erin")))
	require.NoError(t, e.flush(context.Background()))
	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.True(t, opatest.Load(t, raw).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/users/frank"}),
		"the generalized bundle was held back")
}

func TestShrinkGuardOff(t *testing.T) {
	g := newShrinkGuard(1, time.Hour)
	g.setPublished([]render.Rule{{Destination: balances, Source: frontend, Method: "GET", Route: route.Route{{Lit: "a"}}}})
	_, hold := g.check(nil, time.Now(), none)
	assert.False(t, hold, "max_shrink 1 never holds back")
	g.maxShrink = 0
	n, hold := g.check(nil, time.Now(), none)
	assert.True(t, hold)
	assert.Equal(t, 1, n)
}

func none(render.Rule) bool { return false }
