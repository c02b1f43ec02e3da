package render

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

// A cache carried through a sequence of renders gives, at every step, the
// bytes and revisions a fresh render gives; and within each kind of
// bundle, two steps share a revision only when they share the bytes.
func TestRedteamCacheMatchesFreshRender(t *testing.T) {
	type step struct {
		name string
		recs []aggregate.Record
		opts func(*Options)
	}
	base := meshRecords()
	steps := []step{
		{"start", base, nil},
		{"same", base, nil},
		{"mode", base, func(o *Options) { o.Callees[balances] = lifecycle.Audit }},
		{"back", base, nil},
		{"threshold", base, func(o *Options) { o.CardinalityThreshold = 2 }},
		{"unseen", base, func(o *Options) { o.UnseenCallees = UnseenDeny }},
		{"trust", base, func(o *Options) { o.TrustDomains = []string{"example.org", "other.org"} }},
		{"modes", base, func(o *Options) { o.ModeRules = nil }},
		{"overrides", base, func(o *Options) { o.Overrides = nil }},
		{"fewer", base[:3], nil},
		{"more", append(append([]aggregate.Record{}, base...), rec(balances, web, "GET", "/balances/summary")), nil},
		{"signed", base, func(o *Options) {
			o.Signing = &SigningOptions{Key: bytes.Repeat([]byte("1"), 32), Algorithm: "HS256", KeyID: "a"}
		}},
		{"rekeyed", base, func(o *Options) {
			o.Signing = &SigningOptions{Key: bytes.Repeat([]byte("2"), 32), Algorithm: "HS256", KeyID: "a"}
		}},
		{"kid", base, func(o *Options) {
			o.Signing = &SigningOptions{Key: bytes.Repeat([]byte("2"), 32), Algorithm: "HS256", KeyID: "x"}
		}},
		{"again", base, nil},
	}
	cache := NewCache()
	revs := map[string]map[string][]byte{} // kind -> revision -> bytes
	seen := func(kind, rev string, tarball []byte) {
		if revs[kind] == nil {
			revs[kind] = map[string][]byte{}
		}
		if old, ok := revs[kind][rev]; ok {
			assert.True(t, bytes.Equal(old, tarball), "%s: revision %s names two contents", kind, rev)
		}
		revs[kind][rev] = tarball
	}
	for _, s := range steps {
		mk := func() Options {
			o := perCallee(t)
			if s.opts != nil {
				s.opts(&o)
			}
			return o
		}
		withCache := mk()
		withCache.Cache = cache
		recs := append([]aggregate.Record{}, s.recs...)
		got, err := Render(context.Background(), recs, withCache)
		require.NoError(t, err, s.name)
		want, err := Render(context.Background(), append([]aggregate.Record{}, s.recs...), mk())
		require.NoError(t, err, s.name)
		assert.Equal(t, want.Revision, got.Revision, s.name)
		assert.True(t, bytes.Equal(want.Tarball, got.Tarball), "%s: full bundle", s.name)
		require.Len(t, got.Callees, len(want.Callees), s.name)
		for i := range want.Callees {
			assert.Equal(t, want.Callees[i].ID, got.Callees[i].ID, s.name)
			assert.Equal(t, want.Callees[i].Revision, got.Callees[i].Revision, "%s: %s", s.name, want.Callees[i].ID)
			assert.True(t, bytes.Equal(want.Callees[i].Tarball, got.Callees[i].Tarball), "%s: %s", s.name, want.Callees[i].ID)
			seen("callee "+got.Callees[i].ID, got.Callees[i].Revision, got.Callees[i].Tarball)
		}
		assert.Equal(t, want.Unseen.Revision, got.Unseen.Revision, s.name)
		assert.True(t, bytes.Equal(want.Unseen.Tarball, got.Unseen.Tarball), "%s: unseen", s.name)
		seen("full", got.Revision, got.Tarball)
		seen("unseen", got.Unseen.Revision, got.Unseen.Tarball)
	}
}

// A record whose route holds NULs is accepted by Render (and skipped as
// invalid). Were the cache key the fields joined with NUL bytes, it would
// hash like two valid records, and a flush whose only record for balances
// is that invalid one would reuse their rendering: the bundles would keep
// granting access no record supports.
func TestRedteamCacheKeyIsInjective(t *testing.T) {
	opts := Options{CardinalityThreshold: 10, PerCallee: true, Cache: NewCache()}
	valid := []aggregate.Record{
		rec(balances, frontend, "GET", "/x"),
		rec(balances, web, "GET", "/y"),
	}
	renderOpts(t, valid, opts)
	forged := []aggregate.Record{rec(balances, frontend, "GET", "/x\x00"+web+"\x00GET\x00/y")}
	got := renderOpts(t, forged, opts)
	want := renderOpts(t, forged, Options{CardinalityThreshold: 10, PerCallee: true})
	assert.Equal(t, 1, want.Skipped)
	assert.Equal(t, want.Skipped, got.Skipped, "the invalid record is skipped")
	assert.Equal(t, want.Revision, got.Revision, "the cached rendering of other records is reused")
	assert.Empty(t, got.Rules)
}
