package authzpolicyexporter

// Red-team tests of replicas sharing one output (issue 12). Those named
// TestRedteamHolds... are attacks that held up; the others are regression
// tests of the defects the red team found.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate/shard"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

var rtCtx = context.Background()

// aloneAt is a collector without replica_id writing to out, its clock at
// *now; Validate is skipped so that a learning period needs no storage.
func aloneAt(t *testing.T, out string, now *time.Time, mutate func(*Config)) *authzExporter {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + out
	cfg.Output.PerCallee = true
	if mutate != nil {
		mutate(cfg)
	}
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	e.now = func() time.Time { return *now }
	require.NoError(t, e.start(rtCtx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.shutdown(rtCtx) })
	return e
}

// outputFiles are the digests of every file of out but the shards.
func outputFiles(t *testing.T, out string) map[string][sha256.Size]byte {
	t.Helper()
	files := map[string][sha256.Size]byte{}
	require.NoError(t, filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if strings.HasPrefix(filepath.ToSlash(rel), shard.Prefix) {
			return nil
		}
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = sha256.Sum256(data)
		return err
	}))
	return files
}

func spansAt(at time.Time, callee, caller string, paths ...string) ptrace.Traces {
	td := calleeSpans(callee, caller, "", paths...)
	stampAt(td, at)
	return td
}

func consume(t *testing.T, e *authzExporter, td ptrace.Traces) {
	t.Helper()
	require.NoError(t, e.consumeTraces(rtCtx, td))
}

func flushAll(t *testing.T, es ...*authzExporter) {
	t.Helper()
	for _, e := range es {
		require.NoError(t, e.flush(rtCtx))
	}
}

func allowed(t *testing.T, out, callee, caller, path string) bool {
	t.Helper()
	return readBundle(t, out).Allowed(opatest.Request{Destination: callee, Source: caller, Method: "GET", Path: path})
}

const (
	rtAuditor = "spiffe://example.org/ns/bank/sa/auditor"
	rtReports = "spiffe://example.org/ns/bank/sa/reports"
)

// HOLDS: the merge of two replicas equals, file for file (the full bundle
// and every callee's), what one collector without replica_id publishes
// from all of the traffic, with evidence thresholds that neither half
// meets alone, a learning period whose start only one replica saw, and
// keys held by both replicas at different times.
func TestRedteamHoldsMergeEqualsAloneWithThresholdsAndLearning(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	now := t0
	mutate := func(c *Config) {
		c.MinObservations = 3
		c.MinTimeBuckets = 2
		c.LearningPeriod = 3 * time.Hour
		c.Routes.CardinalityThreshold = 4
	}
	single := t.TempDir()
	shared := t.TempDir()
	one := aloneAt(t, single, &now, mutate)
	a := replicaAt(t, shared, "replica-a", &now, mutate)
	b := replicaAt(t, shared, "replica-b", &now, mutate)
	c := replicaAt(t, shared, "replica-c", &now, mutate)

	// Each replica gets a part; the single collector gets everything.
	type part struct {
		at     time.Duration
		to     *authzExporter
		callee string
		caller string
		paths  []string
	}
	parts := []part{
		{0, b, balances, frontend, []string{"/balances/1", "/balances/2"}},
		{90 * time.Minute, c, balances, frontend, []string{"/balances/1", "/balances/3"}},
		{2 * time.Hour, c, balances, frontend, []string{"/balances/4", "/balances/5"}},
		{150 * time.Minute, b, payments, frontend, []string{"/payments", "/payments"}},
		{4 * time.Hour, c, payments, frontend, []string{"/payments"}},
		{5 * time.Hour, c, rtReports, rtAuditor, []string{"/reports/x"}},
		{6 * time.Hour, b, rtReports, rtAuditor, []string{"/reports/x", "/reports/x"}},
	}
	for _, p := range parts {
		now = t0.Add(p.at)
		consume(t, p.to, spansAt(now, p.callee, p.caller, p.paths...))
		consume(t, one, spansAt(now, p.callee, p.caller, p.paths...))
		flushAll(t, b, c, a, one)
		assert.Equal(t, outputFiles(t, single), outputFiles(t, shared), "at +%s", p.at)
	}
	for _, d := range []time.Duration{3*time.Hour + time.Minute, 8 * time.Hour, 9 * time.Hour} {
		now = t0.Add(d)
		flushAll(t, b, c, a, one)
		assert.Equal(t, outputFiles(t, single), outputFiles(t, shared), "at +%s", d)
	}
	assert.True(t, allowed(t, shared, rtReports, rtAuditor, "/reports/x"), "the evidence of two replicas adds up")
}

// writes records what a replica writes to the output.
type writes struct {
	publish.Publisher
	keys []string
}

func (w *writes) Publish(ctx context.Context, b *render.Bundle) (bool, error) {
	w.keys = append(w.keys, publish.BundleName)
	return w.Publisher.Publish(ctx, b)
}

func (w *writes) PublishObject(ctx context.Context, key, revision string, tarball []byte) (bool, error) {
	w.keys = append(w.keys, key)
	return w.Publisher.PublishObject(ctx, key, revision, tarball)
}

func (w *writes) DeleteObject(ctx context.Context, key string) error {
	w.keys = append(w.keys, "delete "+key)
	return w.Publisher.DeleteObject(ctx, key)
}

// HOLDS: a follower writes nothing to the output but its own shard, over
// more flushes than the callee publisher's verification period.
func TestRedteamHoldsFollowerWritesOnlyItsShard(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, nil)
	b := replicaAt(t, shared, "replica-b", &now, nil)
	w := &writes{Publisher: b.publisher}
	b.publisher, b.replicas.output = w, w // its publications and its shard
	for i := 0; i < 25; i++ {
		now = now.Add(30 * time.Second)
		consume(t, a, spansAt(now, balances, frontend, fmt.Sprintf("/balances/%d", i)))
		consume(t, b, spansAt(now, ledger, payments, fmt.Sprintf("/ledger/%c", 'a'+i)))
		flushAll(t, a, b)
	}
	flushAll(t, a)
	require.True(t, allowed(t, shared, ledger, payments, "/ledger/a"))
	for _, k := range w.keys {
		assert.Equal(t, "shards/replica-b.json", k)
	}
}

// Found by a red team (medium), now a regression test: the access only a replica that stopped learned never
// expires. The publisher learned nothing itself, so once the stopped
// replica's records fall out of the window the merge is empty and the
// "nothing learned yet" branch keeps the published bundle forever; a
// collector alone would publish the expiry.
func TestRedteamGoneReplicasAccessNeverExpires(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	mutate := func(c *Config) { c.Window = time.Hour }
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, mutate)
	b := replicaAt(t, shared, "replica-b", &now, mutate)
	consume(t, b, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, b, a)
	require.True(t, allowed(t, shared, balances, frontend, "/balances/1"))
	require.NoError(t, b.shutdown(rtCtx))

	for i := 0; i < 4; i++ {
		now = now.Add(time.Hour)
		flushAll(t, a)
	}
	assert.False(t, allowed(t, shared, balances, frontend, "/balances/1"),
		"access unseen for four windows is still published")
}

// HOLDS: access another replica learned expires in the merge when a
// collector alone expires it, though the publisher's shrink guard hears
// only of its own aggregate's expiry (the removal is explained otherwise).
func TestRedteamHoldsOtherReplicasExpiryIsPublished(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	mutate := func(c *Config) { c.Window = time.Hour; c.Routes.CardinalityThreshold = 0 }
	single, shared := t.TempDir(), t.TempDir()
	one := aloneAt(t, single, &now, mutate)
	a := replicaAt(t, shared, "replica-a", &now, mutate)
	b := replicaAt(t, shared, "replica-b", &now, mutate)
	old := []string{"/balances/1", "/balances/2", "/balances/3", "/balances/4"}
	consume(t, b, spansAt(now, balances, frontend, old...))
	consume(t, one, spansAt(now, balances, frontend, old...))
	for i := 0; i < 3; i++ {
		now = t0.Add(time.Duration(i) * 40 * time.Minute)
		// a and the single collector keep seeing fresh access.
		consume(t, a, spansAt(now, ledger, payments, "/ledger/entries"))
		consume(t, one, spansAt(now, ledger, payments, "/ledger/entries"))
		flushAll(t, b, a, one)
	}
	require.False(t, allowed(t, single, balances, frontend, "/balances/1"), "the single collector expired it")
	assert.False(t, allowed(t, shared, balances, frontend, "/balances/1"),
		"the replicas keep publishing access the window expired")
	assert.Equal(t, outputFiles(t, single), outputFiles(t, shared))
}

// failingReads fails ReadObject for the keys fail accepts, as a store
// that times out.
type failingReads struct {
	publish.Publisher
	fail func(key string) bool
}

func (f *failingReads) ReadObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	if f.fail(key) {
		return nil, errors.New("read timed out")
	}
	return f.Publisher.ReadObject(ctx, key, limit)
}

// mesh has replica-a see ten rules' access and replica-b one, so that losing
// b's is below the shrink guard's 20%.
func mesh(t *testing.T, shared string, now *time.Time, mutate func(*Config)) (a, b *authzExporter) {
	t.Helper()
	a = replicaAt(t, shared, "replica-a", now, mutate)
	b = replicaAt(t, shared, "replica-b", now, mutate)
	for i := 0; i < 10; i++ { // ten rules (a rule is a callee, caller and method)
		consume(t, a, spansAt(*now, payments, fmt.Sprintf("spiffe://example.org/ns/bank/sa/caller-%d", i), "/payments"))
	}
	consume(t, b, spansAt(*now, balances, frontend, "/balances/1"))
	flushAll(t, b, a)
	require.True(t, allowed(t, shared, balances, frontend, "/balances/1"))
	return a, b
}

func noGeneralization(c *Config) { c.Routes.CardinalityThreshold = 0 }

// Found by a red team (high), now a regression test: a replica restarted without its volume whose own shard
// cannot be read at start (a timeout, a throttled request) "starts empty"
// and is never retried: its first flush writes an empty shard over the
// good one, and its access is gone for good, though it was seen a minute
// ago (below max_shrink the guard lets that through).
func TestRedteamResumeReadErrorOverwritesOwnShard(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a, b := mesh(t, shared, &now, noGeneralization)
	require.NoError(t, b.shutdown(rtCtx))

	// Started again; its shard read fails once at start. (The start path
	// is replayed by hand, with a publisher whose first read fails.)
	now = now.Add(time.Minute)
	b2 := replicaAt(t, shared, "replica-b", &now, noGeneralization)
	b2.agg = aggregate.New(aggregate.Limits{Entries: b2.cfg.MaxEntries, PerCaller: b2.cfg.MaxEntriesPerCaller, PerSource: b2.cfg.MaxEntriesPerSource})
	b2.learnedAny.Store(false)
	real := b2.replicas.output
	b2.replicas.output = &failingReads{Publisher: real, fail: func(key string) bool { return key == b2.replicas.key }}
	require.Error(t, b2.resumeShard(rtCtx), "start logs this and goes on empty")
	b2.replicas.output = real // the store recovers

	flushAll(t, b2, a)
	data, err := os.ReadFile(filepath.Join(shared, "shards", "replica-b.json"))
	require.NoError(t, err)
	s, err := shard.Decode(data, "replica-b", 0)
	require.NoError(t, err)
	assert.NotEmpty(t, s.Records, "the restarted replica wrote an empty shard over its good one")
	assert.True(t, allowed(t, shared, balances, frontend, "/balances/1"),
		"access seen a minute ago is denied after a transient read error")
}

// Found by a red team (medium), now a regression test: a shard that cannot be read (a transient error, not a
// damaged object) by a replica that has not read it before (it just
// started, or just took over) is merged as nothing, and the publisher
// publishes the smaller policy (below max_shrink). An unreadable shard
// should hold the publication back, as a listing error does.
func TestRedteamReadErrorOnFirstReadPublishesLess(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a, b := mesh(t, shared, &now, noGeneralization)
	require.NoError(t, a.shutdown(rtCtx))

	now = now.Add(time.Minute)
	a2 := replicaAt(t, shared, "replica-a", &now, noGeneralization)
	real := a2.replicas.output
	a2.replicas.output = &failingReads{Publisher: real, fail: func(key string) bool { return key == b.replicas.key }}
	flushAll(t, b, a2)
	assert.True(t, allowed(t, shared, balances, frontend, "/balances/1"),
		"a transient read error removed a live replica's access from the policy")
}

// Found by a red team (medium), now a regression test: a follower that published once (a takeover) keeps
// serving, from its bundle server, the callees' bundles of its own
// publication after the lower replica publishes again: follow reads the
// bundle in place only while calleeSource is nil. OPA sidecars polling it
// get an older policy than the one in place.
func TestRedteamFollowerServesStaleCalleeBundles(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	serveOn := func(c *Config) { c.Serve.NetAddr.Endpoint = "127.0.0.1:0" }
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, serveOn)
	b := replicaAt(t, shared, "replica-b", &now, serveOn)
	consume(t, b, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, b, a)

	// a is stalled past the timeout: b takes over and publishes.
	now = now.Add(5 * time.Minute)
	consume(t, b, spansAt(now, balances, frontend, "/balances/2"))
	flushAll(t, b)
	require.True(t, allowed(t, shared, balances, frontend, "/balances/2"), "b took over")

	// a is back and publishes new access; b follows.
	now = now.Add(30 * time.Second)
	consume(t, a, spansAt(now, balances, backend, "/balances/3"))
	flushAll(t, a, b)
	require.True(t, allowed(t, shared, balances, backend, "/balances/3"))

	key, err := publish.CalleeKey(balances)
	require.NoError(t, err)
	inPlace, err := os.ReadFile(filepath.Join(shared, filepath.FromSlash(key)))
	require.NoError(t, err)
	served := serveGet(t, b, "/"+key)
	assert.True(t, bytes.Equal(inPlace, served), "the follower serves a callee bundle other than the one in place")
}

func serveGet(t *testing.T, e *authzExporter, path string) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	e.server.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	body, err := io.ReadAll(w.Result().Body)
	require.NoError(t, err)
	return body
}

// Found by a red team (high), now a regression test: a replica that published once, followed a newer
// publication, then takes over again (the same merge, so "unchanged")
// writes its old callees' bundles over the newer ones in place: its
// calleeSource is still its own old publication.
func TestRedteamTakeoverWritesOlderCalleeBundles(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, nil)
	b := replicaAt(t, shared, "replica-b", &now, nil)
	consume(t, b, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, b, a)
	now = now.Add(5 * time.Minute) // a stalls; b takes over
	flushAll(t, b)
	now = now.Add(30 * time.Second) // a is back with new access
	consume(t, a, spansAt(now, balances, backend, "/balances/3"))
	flushAll(t, a, b)
	want := outputFiles(t, shared)
	require.NoError(t, a.shutdown(rtCtx)) // a gone for good; b takes over again
	for i := 0; i < 25; i++ {
		now = now.Add(time.Minute)
		flushAll(t, b)
	}
	assert.True(t, allowed(t, shared, balances, backend, "/balances/3"))
	key, err := publish.CalleeKey(balances)
	require.NoError(t, err)
	assert.Equal(t, want[key], outputFiles(t, shared)[key], "an older callee bundle replaced the newer one")
}

// Found by a red team (medium), now a regression test: at most 64 shards are read, in listing order; the
// Helm values named replicas after Deployment pods, which get a new name at
// every rollout, so old pods' shards piled up for a whole window (168h);
// past 64 a live replica's shard was skipped as too_many and its access
// never published. The values now run a StatefulSet (stable names), and
// far more shards are read; beyond the bound the merge is held back, never
// made of some of the shards.
func TestRedteamTooManyShardsDropsLiveReplica(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	a := replicaAt(t, shared, "otelcol-authz-0aaaa", &now, nil)
	// Shards of pods of earlier rollouts, gone for a while but whose
	// access is still within the window.
	for i := 0; i < 70; i++ {
		id := fmt.Sprintf("otelcol-authz-5%04d", i)
		rec := aggregate.Record{Key: aggregate.Key{Destination: payments, Source: frontend, Method: "GET", Route: "/payments"}}
		rec.Count, rec.FirstSeen, rec.LastSeen, rec.Buckets = 1, now.Add(-24*time.Hour), now.Add(-24*time.Hour), 1
		data := shard.Encode(shard.Shard{Replica: id, Written: now.Add(-24 * time.Hour), Records: []aggregate.Record{rec}})
		require.NoError(t, os.MkdirAll(filepath.Join(shared, "shards"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(shared, "shards", id+".json"), data, 0o600))
	}
	live := replicaAt(t, shared, "otelcol-authz-9zzzz", &now, nil)
	consume(t, live, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, live, a)
	require.Empty(t, a.replicas.skipped[live.replicas.key])
	assert.True(t, allowed(t, shared, balances, frontend, "/balances/1"), "a live replica's shard was not merged")
}

// Found by a red team (medium), now a regression test: deleting a gone replica's shard forgets its callees'
// learning starts. With learning_period longer than window (allowed with
// replica_id and no storage), a callee only that replica saw starts a new
// learning period when seen again: audited again where a collector alone
// enforces it.
func TestRedteamDeletedShardRestartsLearningPeriod(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	mutate := func(c *Config) { c.Window = time.Hour; c.LearningPeriod = 6 * time.Hour }
	single, shared := t.TempDir(), t.TempDir()
	one := aloneAt(t, single, &now, mutate)
	a := replicaAt(t, shared, "replica-a", &now, mutate)
	b := replicaAt(t, shared, "replica-b", &now, mutate)
	consume(t, a, spansAt(now, payments, frontend, "/payments"))
	consume(t, one, spansAt(now, payments, frontend, "/payments"))
	consume(t, b, spansAt(now, ledger, payments, "/ledger/entries"))
	consume(t, one, spansAt(now, ledger, payments, "/ledger/entries"))
	flushAll(t, b, a, one)
	require.NoError(t, b.shutdown(rtCtx)) // b's pod is gone

	for h := 1; h <= 7; h++ {
		now = t0.Add(time.Duration(h) * time.Hour)
		consume(t, a, spansAt(now, payments, frontend, "/payments"))
		consume(t, one, spansAt(now, payments, frontend, "/payments"))
		if h == 5 { // the ledger's traffic comes back, to a
			consume(t, a, spansAt(now, ledger, payments, "/ledger/entries"))
			consume(t, one, spansAt(now, ledger, payments, "/ledger/entries"))
		}
		flushAll(t, a, one)
	}
	_, err := os.Stat(filepath.Join(shared, "shards", "replica-b.json"))
	require.ErrorIs(t, err, fs.ErrNotExist, "the gone replica's shard was deleted")
	require.Equal(t, "enforce", modesOf(t, single)[ledger])
	assert.Equal(t, "enforce", modesOf(t, shared)[ledger], "the ledger is audited again: its learning period started over")
}

// HOLDS: an enforced callee stays enforced across a takeover by a replica
// that never saw it and a restart of every replica without a volume.
func TestRedteamHoldsEnforcedSurvivesTakeoverAndRestart(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	mutate := func(c *Config) { c.LearningPeriod = time.Hour }
	shared := t.TempDir()
	a := replicaAt(t, shared, "replica-a", &now, mutate)
	b := replicaAt(t, shared, "replica-b", &now, mutate)
	consume(t, a, spansAt(now, ledger, payments, "/ledger/entries"))
	flushAll(t, a, b)
	require.Equal(t, "audit", modesOf(t, shared)[ledger])
	now = t0.Add(2 * time.Hour)
	flushAll(t, a, b)
	require.Equal(t, "enforce", modesOf(t, shared)[ledger])

	// a's shard is removed (an operator, a lifecycle rule) and a is gone.
	require.NoError(t, a.shutdown(rtCtx))
	require.NoError(t, os.Remove(filepath.Join(shared, "shards", "replica-a.json")))
	now = now.Add(5 * time.Minute)
	flushAll(t, b)
	require.NoError(t, b.shutdown(rtCtx))
	b2 := replicaAt(t, shared, "replica-b", &now, mutate)
	c := replicaAt(t, shared, "replica-c", &now, mutate)
	consume(t, c, spansAt(now, ledger, frontend, "/ledger/other"))
	flushAll(t, c, b2, c, b2)
	assert.Equal(t, "enforce", modesOf(t, shared)[ledger])
	assert.False(t, allowed(t, shared, ledger, backend, "/anything"))
}

// HOLDS: a shard dated far in the future by a replica that died does not
// stop every other replica from publishing.
func TestRedteamHoldsFutureDatedShardDoesNotBlockPublishing(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	shared := t.TempDir()
	b := replicaAt(t, shared, "replica-b", &now, nil)
	data := shard.Encode(shard.Shard{Replica: "replica-0", Written: now.Add(24 * time.Hour)})
	require.NoError(t, os.MkdirAll(filepath.Join(shared, "shards"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(shared, "shards", "replica-0.json"), data, 0o600))
	consume(t, b, spansAt(now, balances, frontend, "/balances/1"))
	flushAll(t, b)
	assert.True(t, allowed(t, shared, balances, frontend, "/balances/1"))
}
