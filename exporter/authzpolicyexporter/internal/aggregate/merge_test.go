package aggregate

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observations returns n random observations over few enough keys that
// many repeat, with the zero count and the zero times among them.
func observations(rng *rand.Rand, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		k := key(
			fmt.Sprintf("spiffe://td/ns/a/sa/d%d", rng.Intn(4)),
			fmt.Sprintf("spiffe://td/ns/a/sa/s%d", rng.Intn(5)),
			[]string{"GET", "POST"}[rng.Intn(2)],
			fmt.Sprintf("/r/%d", rng.Intn(6)),
		)
		first := at(rng.Intn(600))
		last := first.Add(time.Duration(rng.Intn(120)) * time.Minute)
		if rng.Intn(20) == 0 {
			first = time.Time{}
		}
		out[i] = Record{Key: k, Stats: Stats{
			Count: uint64(rng.Intn(3)), FirstSeen: first, LastSeen: last,
			Buckets: 1 << rng.Intn(64), Values: 1 << rng.Intn(64), Origin: uint8(rng.Intn(4)),
		}}
	}
	return out
}

// observedBy returns the snapshot of one aggregate that observed each of
// obs, in turn.
func observedBy(obs []Record) []Record {
	a := New(Limits{Entries: len(obs) + 1})
	for _, o := range obs {
		a.Observe([]Record{o})
	}
	return a.Snapshot()
}

func TestMergeEqualsOneAggregateThatSawEverything(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		obs := observations(rng, 1+rng.Intn(300))
		want := observedBy(obs)

		// Three replicas, each observing a random share, in a random order.
		shares := make([][]Record, 3)
		for _, i := range rng.Perm(len(obs)) {
			r := rng.Intn(3)
			shares[r] = append(shares[r], obs[i])
		}
		parts := make([][]Record, len(shares))
		for i, s := range shares {
			parts[i] = observedBy(s)
		}
		got := Merge(parts...)
		require.Equal(t, want, got, "seed %d", seed)
		assert.Equal(t, EncodeState(want), EncodeState(got), "seed %d", seed)

		// Any order of the parts, and of the records within them.
		for i, j := range rng.Perm(len(parts)) {
			parts[i], parts[j] = parts[j], parts[i]
		}
		for _, p := range parts {
			rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		}
		assert.Equal(t, want, Merge(parts...), "seed %d, shuffled", seed)
	}
}

func TestMergeCommutativeAndAssociative(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	a, b, c := observedBy(observations(rng, 80)), observedBy(observations(rng, 80)), observedBy(observations(rng, 80))
	abc := EncodeState(Merge(a, b, c))
	for _, got := range [][]Record{
		Merge(c, b, a),
		Merge(b, a, c),
		Merge(Merge(a, b), c),
		Merge(a, Merge(b, c)),
		Merge(Merge(c, a), b),
	} {
		assert.Equal(t, string(abc), string(EncodeState(got)))
	}
}

func TestMergeAddsCounts(t *testing.T) {
	k := key("d", "s", "GET", "/a")
	part := []Record{rec(k, 3, at(1), at(2))}
	got := Merge(part, part)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(6), got[0].Count, "a part merged with itself counts twice")
}

func TestMerge(t *testing.T) {
	k1, k2 := key("d", "s", "GET", "/a"), key("d", "s", "GET", "/b")
	tests := []struct {
		name  string
		parts [][]Record
		want  []Record
	}{
		{"none", nil, []Record{}},
		{"empty parts", [][]Record{{}, nil}, []Record{}},
		{"one part is itself, sorted", [][]Record{{rec(k2, 1, at(0), at(0)), rec(k1, 2, at(1), at(1))}},
			[]Record{rec(k1, 2, at(1), at(1)), rec(k2, 1, at(0), at(0))}},
		{"a zero count counts once", [][]Record{{rec(k1, 0, at(0), at(0))}, {rec(k1, 0, at(0), at(0))}},
			[]Record{rec(k1, 2, at(0), at(0))}},
		{"earliest first, latest last", [][]Record{{rec(k1, 1, at(5), at(6))}, {rec(k1, 1, at(2), at(3))}},
			[]Record{rec(k1, 2, at(2), at(6))}},
		{"duplicates within a part", [][]Record{{rec(k1, 1, at(5), at(5)), rec(k1, 1, at(4), at(4))}},
			[]Record{rec(k1, 2, at(4), at(5))}},
		{"bits and origin", [][]Record{
			{{Key: k1, Stats: Stats{Count: 1, Buckets: 1, Values: 4, Origin: 2}}},
			{{Key: k1, Stats: Stats{Count: 1, Buckets: 2, Values: 8, Origin: 1}}},
		}, []Record{{Key: k1, Stats: Stats{Count: 2, Buckets: 3, Values: 12, Origin: 2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.parts...)
			assert.Equal(t, tt.want, got)
			assert.True(t, slices.IsSortedFunc(got, func(x, y Record) int { return CompareKeys(x.Key, y.Key) }))
		})
	}
}

func TestMergeLeavesPartsAlone(t *testing.T) {
	k1, k2 := key("d", "s", "GET", "/a"), key("d", "s", "GET", "/b")
	p := []Record{rec(k2, 1, at(0), at(0)), rec(k1, 1, at(0), at(0))}
	q := slices.Clone(p)
	Merge(p, p)
	assert.Equal(t, q, p)
}

func TestDecodeState(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	want := observedBy(observations(rng, 200))
	got, err := DecodeState(EncodeState(want))
	require.NoError(t, err)
	assert.Equal(t, want, got, "in the order encoded, each record as it was")

	got, err = DecodeState([]byte(`{"version":1,"entries":null}`))
	require.NoError(t, err)
	assert.Empty(t, got)

	_, err = DecodeState([]byte(`{"version":2,"entries":[]}`))
	assert.ErrorIs(t, err, ErrStateVersion)
	for _, bad := range []string{``, `{`, `[]`, `{"version":1,"entries":[{"c":"x"}]}`, `{"version":1,"entries":[]} x`} {
		_, err := DecodeState([]byte(bad))
		assert.Error(t, err, bad)
		assert.NotErrorIs(t, err, ErrStateVersion, bad)
	}
}
