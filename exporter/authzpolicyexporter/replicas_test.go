package authzpolicyexporter

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate/shard"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// replicaAt is an exporter of a group sharing out, its clock at *now.
func replicaAt(t *testing.T, out, id string, now *time.Time, mutate func(*Config)) *authzExporter {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + out
	cfg.Output.ReplicaID = id
	cfg.Output.PerCallee = true
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	e.now = func() time.Time { return *now }
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, e.shutdown(context.Background())) })
	return e
}

// traffic is the accesses of the test mesh, in two halves that different
// replicas see.
func traffic(at time.Time) (first, second ptrace.Traces) {
	first = calleeSpans(balances, frontend, "", "/balances/1", "/balances/2", "/balances/3", "/balances/summary")
	second = calleeSpans(balances, frontend, "", "/balances/4", "/balances/5", "/balances/6", "/balances/7", "/balances/8",
		"/balances/9", "/balances/10", "/balances/11")
	calleeSpans(payments, frontend, "", "/payments").ResourceSpans().MoveAndAppendTo(second.ResourceSpans())
	stampAt(first, at)
	stampAt(second, at)
	return first, second
}

// Three replicas, each seeing part of the traffic, publish the bundle one
// collector that saw all of it publishes, byte for byte (with the same
// generalization the whole traffic gives); the lowest id publishes, the
// others follow; a replica gone stays merged until its access expires, the
// next takes over, and a replica started again without its volume resumes
// from its shard.
func TestReplicasPublishOnePolicy(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	first, second := traffic(now.Add(-time.Minute))

	alone := t.TempDir()
	single := replicaAt(t, alone, "solo", &now, nil)
	f1, s1 := traffic(now.Add(-time.Minute))
	require.NoError(t, single.consumeTraces(context.Background(), f1))
	require.NoError(t, single.consumeTraces(context.Background(), s1))
	require.NoError(t, single.flush(context.Background()))
	want, err := os.ReadFile(filepath.Join(alone, publish.BundleName))
	require.NoError(t, err)

	shared := t.TempDir()
	review := filepath.Join(t.TempDir(), "review")
	a := replicaAt(t, shared, "replica-a", &now, func(c *Config) { c.Output.UnpackedDir = review })
	b := replicaAt(t, shared, "replica-b", &now, nil)
	c := replicaAt(t, shared, "replica-c", &now, nil)
	require.NoError(t, b.consumeTraces(context.Background(), first))
	require.NoError(t, c.consumeTraces(context.Background(), second))
	for _, e := range []*authzExporter{a, b, c, a} {
		require.NoError(t, e.flush(context.Background()))
	}
	got, err := os.ReadFile(filepath.Join(shared, publish.BundleName))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the replicas' bundle differs from the one of a collector alone")
	p := opatest.Load(t, got)
	assert.True(t, p.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/123"}), "the halves together generalize")
	keys, err := publish.NewDir(shared).ListObjects(context.Background(), shard.Prefix)
	require.NoError(t, err)
	assert.Len(t, keys, 3)
	page, err := os.ReadFile(filepath.Join(review, "index.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), "Merged from the shards of 3 replicas: <code>replica-a</code> <code>replica-b</code> <code>replica-c</code>.",
		"the review page names the replicas that contributed")

	// replica-a stops; after the timeout replica-b takes over, with a's
	// (empty) and c's shards still merged.
	require.NoError(t, a.shutdown(context.Background()))
	now = now.Add(2 * time.Minute) // the timeout is three flush intervals
	more := calleeSpans(ledger, payments, "", "/ledger/entries")
	stampAt(more, now)
	require.NoError(t, c.consumeTraces(context.Background(), more))
	for _, e := range []*authzExporter{c, b} {
		require.NoError(t, e.flush(context.Background()))
	}
	p = readBundle(t, shared)
	assert.True(t, p.Allowed(opatest.Request{Destination: ledger, Source: payments, Method: "GET", Path: "/ledger/entries"}), "the next replica took over")
	assert.True(t, p.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/123"}))

	// replica-c starts again with nothing of its own: it resumes from its
	// shard.
	require.NoError(t, c.shutdown(context.Background()))
	again := replicaAt(t, shared, "replica-c", &now, nil)
	assert.Positive(t, again.agg.Len(), "resumed from its shard")
}

// twoReplicas are replica-a, which saw nothing, and replica-b, which saw
// the first half of the traffic and wrote its shard.
func twoReplicas(t *testing.T, shared string, now *time.Time) (a, b *authzExporter) {
	t.Helper()
	a = replicaAt(t, shared, "replica-a", now, nil)
	b = replicaAt(t, shared, "replica-b", now, nil)
	first, _ := traffic(now.Add(-time.Minute))
	require.NoError(t, b.consumeTraces(context.Background(), first))
	require.NoError(t, b.flush(context.Background()))
	return a, b
}

// A corrupt, foreign or oversized shard is skipped and counted, never
// merged: the policy is what the good shards give.
func TestReplicasSkipBadShards(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a, _ := twoReplicas(t, shared, &now)
	good, err := os.ReadFile(filepath.Join(shared, "shards", "replica-b.json"))
	require.NoError(t, err)

	evil := calleeSpans(balances, "spiffe://example.org/ns/evil/sa/intruder", "", "/balances/1")
	stampAt(evil, now)
	intruder := replicaAt(t, t.TempDir(), "replica-c", &now, nil)
	require.NoError(t, intruder.consumeTraces(context.Background(), evil))
	require.NoError(t, intruder.flush(context.Background()))
	foreign, err := os.ReadFile(filepath.Join(intruder.cfg.Output.URL[len("file://"):], "shards", "replica-c.json"))
	require.NoError(t, err)
	corrupt := bytes.Replace(foreign, []byte("replica-c"), []byte("replica-d"), 1)
	for name, data := range map[string][]byte{
		"replica-0.json":     foreign,               // another replica's, renamed
		"replica-1.json":     corrupt,               // its name changed inside: the checksum fails
		"replica-2.json":     []byte("not a shard"), // garbage
		"Not_A_Replica.json": good,                  // a name no replica has
	} {
		require.NoError(t, os.WriteFile(filepath.Join(shared, "shards", name), data, 0o600))
	}
	require.NoError(t, a.flush(context.Background()))
	p := readBundle(t, shared)
	assert.True(t, p.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/1"}))
	assert.False(t, p.Allowed(opatest.Request{Destination: balances, Source: "spiffe://example.org/ns/evil/sa/intruder", Method: "GET", Path: "/balances/1"}),
		"a bad shard was merged")
	assert.Len(t, a.replicas.skipped, 4)
}

// A replica's shard that turns unreadable is merged as it was last read:
// a damaged object never makes the policy smaller.
func TestReplicasKeepTheLastGoodShard(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a, _ := twoReplicas(t, shared, &now)
	require.NoError(t, a.flush(context.Background()))
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/1"}
	require.True(t, readBundle(t, shared).Allowed(seen))

	require.NoError(t, os.WriteFile(filepath.Join(shared, "shards", "replica-b.json"), []byte(`{"format":"damaged`), 0o600))
	require.NoError(t, a.flush(context.Background()))
	assert.True(t, readBundle(t, shared).Allowed(seen), "the damaged shard's access is gone")
	assert.Equal(t, "corrupt", a.replicas.skipped["shards/replica-b.json"])
}

// A shard is a replica's state, no publication: its bundle server never
// hands it out, though the shard is written to the output it serves.
func TestBundleServerServesNoShard(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, func(c *Config) { c.Serve.NetAddr.Endpoint = "127.0.0.1:0" })
	consume(t, a, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, a)
	key, err := shard.Key("replica-a")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(shared, filepath.FromSlash(key)))
	require.NoError(t, err, "the shard is written")
	w := httptest.NewRecorder()
	a.server.ServeHTTP(w, httptest.NewRequest("GET", "/"+key, nil))
	assert.Equal(t, http.StatusNotFound, w.Code)
	w = httptest.NewRecorder()
	a.server.ServeHTTP(w, httptest.NewRequest("GET", "/bundle.tar.gz", nil))
	assert.Equal(t, http.StatusOK, w.Code)
}
