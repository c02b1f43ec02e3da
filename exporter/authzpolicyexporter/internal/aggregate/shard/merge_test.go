package shard

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

// replicas spreads obs over n replicas at random and returns each one's
// shard as read back from its bytes.
func replicas(t *testing.T, rng *rand.Rand, obs []aggregate.Record, n int) []Shard {
	shares := make([][]aggregate.Record, n)
	for _, i := range rng.Perm(len(obs)) {
		r := rng.Intn(n)
		shares[r] = append(shares[r], obs[i])
	}
	out := make([]Shard, n)
	for i, share := range shares {
		recs := snapshotOf(share)
		s := Shard{Replica: fmt.Sprintf("authz-%d", i), Written: t0, Records: recs, Callees: calleesOf(t, recs)}
		got, err := Decode(Encode(s), s.Replica, 0)
		require.NoError(t, err)
		out[i] = got
	}
	return out
}

// restored is the callee state of a fresh lifecycle into which callees
// were restored in turn.
func restored(t *testing.T, callees [][]byte) []byte {
	l := lifecycle.New(lifecycle.Config{Limit: 1000, LearningPeriod: 1})
	for _, c := range callees {
		_, err := l.RestoreState(c)
		require.NoError(t, err)
	}
	data, err := l.MarshalState()
	require.NoError(t, err)
	return data
}

func TestMergeEqualsOneCollectorThatSawEverything(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		obs := spans(rng, 50+rng.Intn(500), 1+rng.Intn(200))
		all := snapshotOf(obs)
		want := aggregate.EncodeState(all)
		wantCallees := calleesOf(t, all)

		for try := range 4 {
			// Another spread of the same spans, in another order, the
			// shards listed in another order.
			rng.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
			shards := replicas(t, rng, obs, 3)
			rng.Shuffle(len(shards), func(i, j int) { shards[i], shards[j] = shards[j], shards[i] })
			recs, callees := Merge(shards)
			require.Equal(t, string(want), string(aggregate.EncodeState(recs)), "seed %d, try %d", seed, try)
			require.Equal(t, all, recs)
			assert.Equal(t, string(wantCallees), string(restored(t, callees)), "seed %d, try %d", seed, try)
		}
	}
}

func TestMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	s := replicas(t, rng, spans(rng, 600, 150), 3)
	a, b, c := s[0], s[1], s[2]
	enc := func(shards ...Shard) string {
		recs, _ := Merge(shards)
		return string(aggregate.EncodeState(recs))
	}
	merged := func(name string, shards ...Shard) Shard {
		recs, _ := Merge(shards)
		return Shard{Replica: name, Records: recs}
	}
	abc := enc(a, b, c)
	assert.Equal(t, abc, enc(c, b, a), "commutative")
	assert.Equal(t, abc, enc(b, c, a), "commutative")
	assert.Equal(t, abc, enc(merged("ab", a, b), c), "associative")
	assert.Equal(t, abc, enc(a, merged("bc", b, c)), "associative")
	assert.Equal(t, abc, enc(a, b, c, a, b, b), "idempotent: a replica's shard read twice is one shard")
	assert.Equal(t, enc(a), enc(a, a))
	recs, _ := Merge([]Shard{a})
	assert.Equal(t, a.Records, recs)
}

func TestMergeCallees(t *testing.T) {
	recs, callees := Merge(nil)
	assert.Empty(t, recs)
	assert.Empty(t, callees)

	a := Shard{Replica: "a", Callees: []byte(`{"version":1,"callees":[{"id":"x","first":5}]}`)}
	b := Shard{Replica: "b", Callees: []byte(`{"version":1,"callees":[{"id":"x","first":3,"enforced":true}]}`)}
	c := Shard{Replica: "c"}
	_, callees = Merge([]Shard{c, b, a})
	assert.Equal(t, [][]byte{a.Callees, b.Callees}, callees, "in replica order, none for a replica without")
	assert.JSONEq(t, `{"version":1,"callees":[{"id":"x","first":3,"enforced":true}]}`, string(restored(t, callees)),
		"the earliest start, enforced if any says so")
}

func TestMergeKeepsALatestCopy(t *testing.T) {
	k := aggregate.Key{Destination: "d", Source: "s", Method: "GET", Route: "/a"}
	older := Shard{Replica: "a", Written: t0, Records: []aggregate.Record{{Key: k, Stats: aggregate.Stats{Count: 1}}}}
	newer := Shard{Replica: "a", Written: t0.Add(1), Records: []aggregate.Record{{Key: k, Stats: aggregate.Stats{Count: 5}}}}
	for _, shards := range [][]Shard{{older, newer}, {newer, older}} {
		recs, _ := Merge(shards)
		require.Len(t, recs, 1)
		assert.Equal(t, uint64(5), recs[0].Count)
	}
	tie := newer
	tie.Records = []aggregate.Record{{Key: k, Stats: aggregate.Stats{Count: 7}}}
	x, _ := Merge([]Shard{newer, tie})
	y, _ := Merge([]Shard{tie, newer})
	assert.Equal(t, x, y, "on a tie, the same copy whatever the order")
}
