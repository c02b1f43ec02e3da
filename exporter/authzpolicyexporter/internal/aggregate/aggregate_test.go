package aggregate

import (
	"fmt"
	"math/rand"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func key(dst, src, method, route string) Key {
	return Key{Destination: dst, Source: src, Method: method, Route: route}
}

func rec(k Key, count uint64, first, last time.Time) Record {
	return Record{Key: k, Stats: Stats{Count: count, FirstSeen: first, LastSeen: last}}
}

func keysOf(rs []Record) []Key {
	out := make([]Key, len(rs))
	for i, r := range rs {
		out[i] = r.Key
	}
	return out
}

func TestObserveAndSnapshotSorted(t *testing.T) {
	a := New(Limits{Entries: 100})
	in := []Record{
		rec(key("spiffe://td/b", "spiffe://td/x", "GET", "/z"), 1, at(0), at(0)),
		rec(key("spiffe://td/a", "spiffe://td/y", "GET", "/a"), 1, at(0), at(0)),
		rec(key("spiffe://td/a", "spiffe://td/x", "POST", "/a"), 1, at(0), at(0)),
		rec(key("spiffe://td/a", "spiffe://td/x", "GET", "/b"), 1, at(0), at(0)),
		rec(key("spiffe://td/a", "spiffe://td/x", "GET", "/a"), 1, at(0), at(0)),
	}
	assert.Zero(t, a.Observe(in))
	assert.Equal(t, 5, a.Len())
	got := keysOf(a.Snapshot())
	assert.Equal(t, []Key{
		key("spiffe://td/a", "spiffe://td/x", "GET", "/a"),
		key("spiffe://td/a", "spiffe://td/x", "GET", "/b"),
		key("spiffe://td/a", "spiffe://td/x", "POST", "/a"),
		key("spiffe://td/a", "spiffe://td/y", "GET", "/a"),
		key("spiffe://td/b", "spiffe://td/x", "GET", "/z"),
	}, got)
	assert.True(t, slices.IsSortedFunc(got, CompareKeys))
}

func TestSnapshotEmpty(t *testing.T) {
	a := New(Limits{Entries: 10})
	s := a.Snapshot()
	assert.NotNil(t, s)
	assert.Empty(t, s)
	assert.Zero(t, a.Len())
	assert.Zero(t, a.Observe(nil))
}

func TestCompareKeys(t *testing.T) {
	base := key("d", "s", "GET", "/r")
	assert.Zero(t, CompareKeys(base, base))
	for _, bigger := range []Key{key("e", "a", "A", "/a"), key("d", "t", "A", "/a"), key("d", "s", "HEAD", "/a"), key("d", "s", "GET", "/s")} {
		assert.Negative(t, CompareKeys(base, bigger), "%v < %v", base, bigger)
		assert.Positive(t, CompareKeys(bigger, base), "%v > %v", bigger, base)
	}
}

func TestReobservationIsIdempotentForKeys(t *testing.T) {
	a := New(Limits{Entries: 10})
	k := key("d", "s", "GET", "/users/{int}")
	a.Observe([]Record{rec(k, 1, at(5), at(5))})
	before := keysOf(a.Snapshot())

	a.Observe([]Record{rec(k, 1, at(5), at(5))}) // Pixie re-sends the same span
	a.Observe([]Record{rec(k, 3, at(2), at(4))}) // older evidence widens FirstSeen only
	a.Observe([]Record{rec(k, 0, at(9), at(9))}) // a zero count still counts once
	a.Observe([]Record{rec(k, 1, at(6), at(7)), rec(k, 1, at(6), at(7))})

	snap := a.Snapshot()
	assert.Equal(t, before, keysOf(snap), "the key set does not change")
	require.Len(t, snap, 1)
	assert.Equal(t, uint64(1+1+3+1+2), snap[0].Count)
	assert.Equal(t, at(2), snap[0].FirstSeen)
	assert.Equal(t, at(9), snap[0].LastSeen)
}

func TestNewKeyCountsAtLeastOnce(t *testing.T) {
	a := New(Limits{Entries: 10})
	a.Observe([]Record{rec(key("d", "s", "GET", "/"), 0, at(0), at(0)), rec(key("d", "s", "PUT", "/"), 7, at(0), at(0))})
	snap := a.Snapshot()
	require.Len(t, snap, 2)
	assert.Equal(t, uint64(1), snap[0].Count)
	assert.Equal(t, uint64(7), snap[1].Count)
}

func TestCap(t *testing.T) {
	a := New(Limits{Entries: 2})
	k1, k2, k3, k4 := key("d", "s", "GET", "/1"), key("d", "s", "GET", "/2"), key("d", "s", "GET", "/3"), key("d", "s", "GET", "/4")
	assert.Equal(t, Dropped{Full: 1}, a.Observe([]Record{rec(k1, 1, at(0), at(0)), rec(k2, 1, at(0), at(0)), rec(k3, 1, at(0), at(0))}))
	assert.Equal(t, 2, a.Len())
	assert.Equal(t, []Key{k1, k2}, keysOf(a.Snapshot()), "the first keys are kept")

	// Known keys are still updated when full; only new keys are refused.
	assert.Equal(t, Dropped{Full: 2}, a.Observe([]Record{rec(k1, 1, at(0), at(3)), rec(k4, 1, at(0), at(0)), rec(k3, 1, at(0), at(0))}))
	snap := a.Snapshot()
	assert.Equal(t, []Key{k1, k2}, keysOf(snap))
	assert.Equal(t, uint64(2), snap[0].Count)
	assert.Equal(t, at(3), snap[0].LastSeen)

	// Expiry makes room again.
	assert.Len(t, a.Expire(at(1)), 1)
	assert.Zero(t, a.Observe([]Record{rec(k4, 1, at(5), at(5))}))
	assert.Equal(t, []Key{k1, k4}, keysOf(a.Snapshot()))
}

// One caller's flood of distinct routes fills its own share for that callee
// only: other callers of the callee, and the same caller of other callees,
// are still learned, and expiry gives the share back.
func TestCapPerCaller(t *testing.T) {
	a := New(Limits{Entries: 100, PerCaller: 3})
	flood := make([]Record, 10)
	for i := range flood {
		flood[i] = rec(key("d", "flooder", "GET", fmt.Sprintf("/f/%d", i)), 1, at(0), at(i))
	}
	assert.Equal(t, Dropped{CallerFull: 7}, a.Observe(flood))
	assert.Equal(t, Dropped{}, a.Observe([]Record{
		rec(key("d", "other", "GET", "/a"), 1, at(0), at(5)),
		rec(key("d2", "flooder", "GET", "/a"), 1, at(0), at(5)),
		rec(key("d", "flooder", "GET", "/f/0"), 1, at(0), at(5)), // held: refreshed
	}))
	assert.Equal(t, 5, a.Len())
	assert.Equal(t, Dropped{CallerFull: 1}, a.Observe([]Record{rec(key("d", "flooder", "POST", "/x"), 1, at(0), at(5))}), "methods share the pair's cap")

	// /f/1 and /f/2 expire; two new keys fit again, the third does not.
	assert.Len(t, a.Expire(at(3)), 2)
	assert.Equal(t, Dropped{CallerFull: 1}, a.Observe([]Record{
		rec(key("d", "flooder", "GET", "/n/1"), 1, at(6), at(6)),
		rec(key("d", "flooder", "GET", "/n/2"), 1, at(6), at(6)),
		rec(key("d", "flooder", "GET", "/n/3"), 1, at(6), at(6)),
	}))
	// Retain gives shares back too.
	assert.Equal(t, 3, a.Retain(func(k Key) bool { return k.Source != "flooder" || k.Destination != "d" }))
	assert.Equal(t, Dropped{}, a.Observe([]Record{rec(key("d", "flooder", "GET", "/m"), 1, at(6), at(6))}))
}

// One caller reaching many callees fills its share in all, and no more.
func TestCapPerSource(t *testing.T) {
	a := New(Limits{Entries: 100, PerCaller: 3, PerSource: 5})
	var flood []Record
	for d := 0; d < 4; d++ {
		for i := 0; i < 3; i++ {
			flood = append(flood, rec(key(fmt.Sprintf("d%d", d), "flooder", "GET", fmt.Sprintf("/%d", i)), 1, at(0), at(i)))
		}
	}
	assert.Equal(t, Dropped{CallerFull: 7}, a.Observe(flood))
	assert.Equal(t, Dropped{}, a.Observe([]Record{rec(key("d3", "other", "GET", "/a"), 1, at(0), at(5))}))
	assert.Len(t, a.Expire(at(1)), 2, "expiry gives the share back")
	assert.Equal(t, Dropped{CallerFull: 1}, a.Observe([]Record{
		rec(key("d9", "flooder", "GET", "/n"), 1, at(6), at(6)),
		rec(key("d9", "flooder", "GET", "/m"), 1, at(6), at(6)),
		rec(key("d9", "flooder", "GET", "/o"), 1, at(6), at(6)),
	}))
}

func TestCapZero(t *testing.T) {
	a := New(Limits{Entries: 0})
	assert.Equal(t, Dropped{Full: 2}, a.Observe([]Record{rec(key("d", "s", "GET", "/"), 1, at(0), at(0)), rec(key("d", "s", "GET", "/"), 1, at(0), at(0))}))
	assert.Zero(t, a.Len())
}

func TestExpire(t *testing.T) {
	a := New(Limits{Entries: 10})
	old, edge, fresh := key("d", "s", "GET", "/old"), key("d", "s", "GET", "/edge"), key("d", "s", "GET", "/fresh")
	a.Observe([]Record{rec(old, 1, at(0), at(1)), rec(edge, 1, at(0), at(5)), rec(fresh, 1, at(0), at(9))})

	assert.Empty(t, a.Expire(at(0)))
	assert.Len(t, a.Expire(at(5)), 1, "LastSeen equal to the cutoff is kept")
	assert.Equal(t, []Key{edge, fresh}, keysOf(a.Snapshot()))

	// A re-observation refreshes LastSeen and saves the key.
	a.Observe([]Record{rec(edge, 1, at(20), at(20))})
	assert.Len(t, a.Expire(at(10)), 1)
	assert.Equal(t, []Key{edge}, keysOf(a.Snapshot()))

	// Late, older evidence never moves LastSeen back.
	a.Observe([]Record{rec(edge, 1, at(1), at(1))})
	assert.Empty(t, a.Expire(at(20)))
	assert.Len(t, a.Expire(at(21)), 1)
	assert.Zero(t, a.Len())
	assert.Empty(t, a.Expire(at(100)))
}

// TestSnapshotIsACopy checks that neither the caller's batch nor a snapshot
// shares memory with the aggregate.
func TestSnapshotIsACopy(t *testing.T) {
	a := New(Limits{Entries: 10})
	k := key("d", "s", "GET", "/x")
	batch := []Record{rec(k, 1, at(0), at(0))}
	a.Observe(batch)

	batch[0].Key.Route = "/changed"
	batch[0].Stats.Count = 99
	snap := a.Snapshot()
	require.Len(t, snap, 1)
	assert.Equal(t, k, snap[0].Key)
	assert.Equal(t, uint64(1), snap[0].Count)

	snap[0].Count = 1000
	snap[0].LastSeen = at(1000)
	again := a.Snapshot()
	assert.Equal(t, uint64(1), again[0].Count)
	assert.Equal(t, at(0), again[0].LastSeen)
}

// TestKeysDoNotAliasCallerMemory builds keys the way a zero-copy decoder
// might, as strings over a reused buffer, and checks the aggregate keeps
// its own copy. This is the one place unsafe is needed: a string built
// with string(b) is already a copy and could not detect a missing clone.
func TestKeysDoNotAliasCallerMemory(t *testing.T) {
	a := New(Limits{Entries: 100})
	buf := make([]byte, 0, 64)
	view := func(s string) string {
		buf = append(buf[:0], s...)
		return unsafe.String(unsafe.SliceData(buf), len(buf))
	}
	var want []Key
	for i := 0; i < 10; i++ {
		route := fmt.Sprintf("/route/%02d", i)
		k := Key{Destination: "spiffe://td/d", Source: "spiffe://td/s", Method: "GET", Route: view(route)}
		a.Observe([]Record{rec(k, 1, at(0), at(0))})
		want = append(want, Key{Destination: "spiffe://td/d", Source: "spiffe://td/s", Method: "GET", Route: route})
	}
	// buf now holds "/route/09"; overwrite it too.
	for i := range buf {
		buf[i] = 'X'
	}
	assert.Equal(t, want, keysOf(a.Snapshot()))
	assert.Equal(t, 10, a.Len())
	// The map still finds each key by value.
	for _, k := range want {
		assert.Zero(t, a.Observe([]Record{rec(k, 1, at(1), at(1))}))
	}
	assert.Equal(t, 10, a.Len())

	// Reusing an ordinary caller slice (the usual batch pattern) is safe too.
	a2 := New(Limits{Entries: 100})
	batch := make([]Record, 1)
	for i := 0; i < 10; i++ {
		b := []byte(fmt.Sprintf("/r/%d", i))
		batch[0] = rec(Key{Destination: "d", Source: "s", Method: "GET", Route: string(b)}, 1, at(0), at(0))
		a2.Observe(batch)
		b[1] = 'X'
	}
	for i, r := range a2.Snapshot() {
		assert.Equal(t, fmt.Sprintf("/r/%d", i), r.Route)
	}
}

func TestConcurrent(t *testing.T) {
	const (
		maxKeys   = 200
		observers = 16
		rounds    = 300
	)
	a := New(Limits{Entries: maxKeys})
	var wg sync.WaitGroup
	for g := 0; g < observers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			batch := make([]Record, 0, 8)
			for i := 0; i < rounds; i++ {
				batch = batch[:0]
				for j := 0; j < 1+rng.Intn(8); j++ {
					m := rng.Intn(120)
					k := key(fmt.Sprintf("spiffe://td/d%d", rng.Intn(5)), fmt.Sprintf("spiffe://td/s%d", rng.Intn(5)), "GET", fmt.Sprintf("/r/%d", rng.Intn(20)))
					batch = append(batch, rec(k, 1, at(m), at(m)))
				}
				dropped := a.Observe(batch).Total()
				if dropped < 0 || dropped > len(batch) {
					t.Errorf("dropped %d of %d", dropped, len(batch))
				}
			}
		}(g)
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if g%2 == 0 {
					a.Expire(at(i % 60))
					continue
				}
				snap := a.Snapshot()
				if len(snap) > maxKeys {
					t.Errorf("snapshot holds %d > %d", len(snap), maxKeys)
				}
				if !slices.IsSortedFunc(snap, func(x, y Record) int { return CompareKeys(x.Key, y.Key) }) {
					t.Error("snapshot not sorted")
				}
				for j := 1; j < len(snap); j++ {
					if snap[j-1].Key == snap[j].Key {
						t.Errorf("duplicate key %v", snap[j].Key)
					}
				}
				for _, r := range snap {
					if r.Count == 0 || r.FirstSeen.After(r.LastSeen) {
						t.Errorf("bad stats %+v", r)
					}
				}
				if n := a.Len(); n > maxKeys {
					t.Errorf("Len %d > %d", n, maxKeys)
				}
			}
		}(g)
	}
	wg.Wait()
	assert.LessOrEqual(t, a.Len(), maxKeys)
	assert.Empty(t, a.Expire(at(0)), "nothing was last seen before minute 0")
	a.Expire(at(1000))
	assert.Zero(t, a.Len())
	assert.Empty(t, a.names, "no string is held once no key uses it")
}

// Each string of the keys is held once, whichever records brought it.
func TestKeysShareStrings(t *testing.T) {
	a := New(Limits{Entries: 10})
	callee := func() string { return string([]byte("spiffe://td/callee")) } // a new copy each time
	a.Observe([]Record{
		rec(Key{callee(), "spiffe://td/a", "GET", "/x"}, 1, at(0), at(0)),
		rec(Key{callee(), "spiffe://td/b", "GET", "/x"}, 1, at(0), at(1)),
	})
	snap := a.Snapshot()
	require.Len(t, snap, 2)
	assert.Same(t, unsafe.StringData(snap[0].Destination), unsafe.StringData(snap[1].Destination))
	assert.Same(t, unsafe.StringData(snap[0].Route), unsafe.StringData(snap[1].Route))
	assert.Len(t, a.names, 5)
	a.Expire(at(1))
	assert.Len(t, a.names, 4, "spiffe://td/a is let go with its only key")
	assert.NotContains(t, a.names, "spiffe://td/a")
}

func TestStateRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 123, time.UTC)
	a := New(Limits{Entries: 10})
	a.Observe([]Record{
		{Key: Key{"spiffe://td/b", "spiffe://td/a", "GET", "/x/{int}"}, Stats: Stats{Count: 3, FirstSeen: t0, LastSeen: t0.Add(time.Hour)}},
		{Key: Key{"spiffe://td/b", "spiffe://td/c", "POST", "/y"}, Stats: Stats{Count: 1, FirstSeen: t0, LastSeen: t0}},
		{Key: Key{"spiffe://td/c", "spiffe://td/a", "GET", "/never/seen"}, Stats: Stats{Count: 1}},
	})
	data := EncodeState(a.Snapshot())

	b := New(Limits{Entries: 10})
	n, err := b.RestoreState(data)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, a.Snapshot(), b.Snapshot(), "zero times too")
	assert.Equal(t, data, EncodeState(b.Snapshot()))

	// Restoring into an aggregate that holds keys merges, within its cap.
	c := New(Limits{Entries: 2})
	c.Observe([]Record{rec(Key{"spiffe://td/b", "spiffe://td/a", "GET", "/x/{int}"}, 1, t0.Add(-time.Hour), t0)})
	n, err = c.RestoreState(data)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	snap := c.Snapshot()
	require.Len(t, snap, 2)
	assert.Equal(t, Stats{Count: 4, FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(time.Hour)}, snap[0].Stats)
}

// A state saved by an earlier version restores, and is encoded again to
// the same bytes.
func TestStateSavedBefore(t *testing.T) {
	data, err := os.ReadFile("testdata/state-v1.json")
	require.NoError(t, err)
	a := New(Limits{Entries: 10})
	n, err := a.RestoreState(data)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 123, time.UTC)
	assert.Equal(t, []Record{
		{Key: Key{"spiffe://td/ns/bank/sa/balances", "spiffe://td/ns/web/sa/front", "GET", "/accounts/{int}"}, Stats: Stats{Count: 7, FirstSeen: t0, LastSeen: t0.Add(90 * time.Minute), Buckets: 0b101, Values: 1<<3 | 1<<60, Origin: 1}},
		{Key: Key{"spiffe://td/ns/bank/sa/balances", "spiffe://td/ns/web/sa/front", "POST", "/accounts"}, Stats: Stats{Count: 1, FirstSeen: t0, LastSeen: t0}},
		{Key: Key{"spiffe://td/ns/shop/sa/cart", "spiffe://td/ns/bank/sa/balances", "DELETE", "/items/<a>&b"}, Stats: Stats{Count: 2, FirstSeen: t0.Add(-time.Hour), LastSeen: t0, Buckets: 1, Origin: 2}},
	}, a.Snapshot())
	assert.Equal(t, string(data), string(EncodeState(a.Snapshot())))
}

func TestRestoreState(t *testing.T) {
	const rec = `{"d":"spiffe://td/b","s":"spiffe://td/a","m":"GET","r":"/x","c":1,"f":1,"l":2}`
	for _, tc := range []struct {
		name, state string
		want        int
		err         string
	}{
		{name: "empty", state: `{"version":1,"entries":[]}`},
		{name: "no entries", state: `{"version":1,"entries":null}`},
		{name: "fields in any case and order", state: `{"Entries":[` + rec + `],"extra":{"x":[1]},"VERSION":1}`, want: 1},
		{name: "unknown version", state: `{"version":99,"entries":[]}`, err: "version 99"},
		{name: "no version", state: `{"entries":[` + rec + `]}`, err: "version 0"},
		{name: "cut", state: `{"version":1,"entries":[` + rec, err: "decoding"},
		{name: "not an object", state: `[]`, err: "decoding"},
		{name: "entries not an array", state: `{"version":1,"entries":{}}`, err: "decoding"},
		{name: "a bad record after a good one", state: `{"version":1,"entries":[` + rec + `,{"c":"many"}]}`, err: "decoding"},
		{name: "data after", state: `{"version":1,"entries":[]}{}`, err: "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Limits{Entries: 10})
			n, err := a.RestoreState([]byte(tc.state))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				assert.Zero(t, a.Len(), "a state that cannot be read restores nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
			assert.Equal(t, tc.want, a.Len())
		})
	}
}

func TestDistinctValues(t *testing.T) {
	var v uint64
	assert.Equal(t, 0, DistinctValues(v))
	for i := range 5 {
		v |= ValueBit(fmt.Sprintf("/users/%d", i))
	}
	assert.InDelta(t, 5, DistinctValues(v), 1)
	for i := range 50 {
		v |= ValueBit(fmt.Sprintf("/users/%d", i))
	}
	assert.InDelta(t, 50, DistinctValues(v), 15)
	assert.Equal(t, 266, DistinctValues(^uint64(0)))
	assert.Equal(t, ValueBit("/a"), ValueBit("/a"), "fixed hash")
}
