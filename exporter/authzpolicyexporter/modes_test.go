package authzpolicyexporter

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

var (
	seenRequest   = opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}
	unseenRequest = opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/seen"}
)

// During the learning period the bundle allows everything and marks what
// the learned policy would deny; after it, the same policy is enforced.
// The period counts from the first start, kept in storage across restarts.
func TestLearningPeriod(t *testing.T) {
	dir := t.TempDir()
	storeID := component.MustNewID("file_storage")
	host := hostWithExtensions{ext: map[component.ID]component.Component{storeID: &memStorage{data: map[string][]byte{}}}}
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	cfg.Storage = &storeID
	cfg.LearningPeriod = time.Hour
	t0 := time.Now()

	first, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	first.now = func() time.Time { return t0 }
	require.NoError(t, first.start(context.Background(), host))
	require.NoError(t, first.consumeTraces(context.Background(), spansFor("/seen")))
	require.NoError(t, first.shutdown(context.Background()))
	policy := readBundle(t, dir)
	assert.True(t, policy.Allowed(unseenRequest), "audit mode allows everything")
	assert.Equal(t, "would-deny", policy.Decision(unseenRequest)["response_headers_to_add"].(map[string]any)["x-authz-policy"])
	assert.NotContains(t, policy.Decision(seenRequest), "response_headers_to_add")

	// Restarted 50 minutes later: the period still ends an hour after the
	// first start, not after this one.
	clock := t0.Add(50 * time.Minute)
	second, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	second.now = func() time.Time { return clock }
	require.NoError(t, second.start(context.Background(), host))
	require.NoError(t, second.flush(context.Background()))
	assert.True(t, readBundle(t, dir).Allowed(unseenRequest))
	clock = t0.Add(61 * time.Minute)
	require.NoError(t, second.consumeTraces(context.Background(), spansFor("/seen")))
	require.NoError(t, second.flush(context.Background()))
	policy = readBundle(t, dir)
	assert.False(t, policy.Allowed(unseenRequest), "enforced after the learning period")
	assert.True(t, policy.Allowed(seenRequest))
	require.NoError(t, second.shutdown(context.Background()))
}

func TestMinObservations(t *testing.T) {
	e, dir := newTestExporter(t, func(c *Config) { c.MinObservations = 2 })
	require.NoError(t, e.consumeTraces(context.Background(), spansFor("/seen", "/other")))
	require.NoError(t, e.flush(context.Background()))
	assert.False(t, readBundle(t, dir).Allowed(seenRequest), "seen once is not enough evidence")
	require.NoError(t, e.consumeTraces(context.Background(), spansFor("/seen")))
	require.NoError(t, e.flush(context.Background()))
	assert.True(t, readBundle(t, dir).Allowed(seenRequest))
}

// Re-sent spans add observations but not time buckets.
func TestMinTimeBuckets(t *testing.T) {
	e, dir := newTestExporter(t, func(c *Config) { c.MinTimeBuckets = 2; c.TimeBucket = time.Hour })
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	clock := t0
	e.now = func() time.Time { return clock }
	for i := 0; i < 5; i++ {
		require.NoError(t, e.consumeTraces(context.Background(), spansFor("/seen")))
	}
	require.NoError(t, e.flush(context.Background()))
	assert.False(t, readBundle(t, dir).Allowed(seenRequest), "five times within one hour is one bucket")
	clock = t0.Add(90 * time.Minute)
	require.NoError(t, e.consumeTraces(context.Background(), spansFor("/seen")))
	require.NoError(t, e.flush(context.Background()))
	assert.True(t, readBundle(t, dir).Allowed(seenRequest))
}
