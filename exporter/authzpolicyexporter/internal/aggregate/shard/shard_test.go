package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

var t0 = time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)

// spans returns n random observations over keys of which many repeat.
func spans(rng *rand.Rand, n, keys int) []aggregate.Record {
	out := make([]aggregate.Record, n)
	for i := range out {
		k := rng.Intn(keys)
		seen := t0.Add(time.Duration(rng.Intn(24*60)) * time.Minute)
		out[i] = aggregate.Record{
			Key: aggregate.Key{
				Destination: fmt.Sprintf("spiffe://td/ns/shop/sa/svc-%d", k%37),
				Source:      fmt.Sprintf("spiffe://td/ns/shop/sa/caller-%d", k%11),
				Method:      []string{"GET", "POST", "DELETE"}[k%3],
				Route:       fmt.Sprintf("/api/v1/items/%d", k),
			},
			Stats: aggregate.Stats{Count: 1, FirstSeen: seen, LastSeen: seen, Buckets: 1 << (seen.Hour() % 64), Values: aggregate.ValueBit(fmt.Sprint(i)), Origin: uint8(k % 3)},
		}
	}
	return out
}

func snapshotOf(obs []aggregate.Record) []aggregate.Record {
	a := aggregate.New(aggregate.Limits{Entries: len(obs) + 1})
	a.Observe(obs)
	return a.Snapshot()
}

// calleesOf is the lifecycle state of a replica that saw the callees of
// recs, each first at its earliest sighting.
func calleesOf(t testing.TB, recs []aggregate.Record) []byte {
	first := map[string]time.Time{}
	for _, r := range recs {
		if f, ok := first[r.Destination]; !ok || r.FirstSeen.Before(f) {
			first[r.Destination] = r.FirstSeen
		}
	}
	l := lifecycle.New(lifecycle.Config{Limit: 1000, LearningPeriod: time.Hour})
	for id, f := range first {
		l.Seen(id, f)
	}
	data, err := l.MarshalState()
	require.NoError(t, err)
	return data
}

func sample(t testing.TB, replica string, seed int64, n int) Shard {
	recs := snapshotOf(spans(rand.New(rand.NewSource(seed)), n, n/2+1))
	return Shard{Replica: replica, Written: t0.Add(time.Duration(seed) * time.Second), Records: recs, Callees: calleesOf(t, recs)}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, s := range []Shard{
		sample(t, "authz-0", 1, 200),
		{Replica: "a", Written: t0},
		{Replica: "collector-7f9c.example.org", Written: t0.Add(123456789), Records: sample(t, "x", 2, 3).Records},
	} {
		data := Encode(s)
		assert.Equal(t, data, Encode(s), "the same shard gives the same bytes")
		got, err := Decode(data, s.Replica, 0)
		require.NoError(t, err)
		assert.Equal(t, s.Replica, got.Replica)
		assert.True(t, s.Written.Equal(got.Written))
		assert.Equal(t, len(s.Records), len(got.Records))
		if len(s.Records) > 0 {
			assert.Equal(t, s.Records, got.Records)
		}
		assert.Equal(t, s.Callees, got.Callees)
		assert.Equal(t, data, Encode(got), "what decodes encodes again to the same bytes")
	}
}

func TestEncodeIsDeterministicAcrossZones(t *testing.T) {
	s := sample(t, "r", 3, 20)
	u := s
	u.Written = s.Written.In(time.FixedZone("x", 3600))
	assert.Equal(t, Encode(s), Encode(u))
	assert.Contains(t, string(Encode(s)), `"written":"2024-01-15T12:00:03Z"`)
}

func TestEncodeNormalizes(t *testing.T) {
	k := func(route string) aggregate.Key {
		return aggregate.Key{Destination: "d", Source: "s", Method: "GET", Route: route}
	}
	s := Shard{Replica: "r", Written: t0, Records: []aggregate.Record{
		{Key: k("/b"), Stats: aggregate.Stats{Count: 1}},
		{Key: k("/a"), Stats: aggregate.Stats{Count: 2}},
		{Key: k("/b"), Stats: aggregate.Stats{Count: 3}},
		{Key: k(""), Stats: aggregate.Stats{Count: 1}},
		{Key: k("/\xff"), Stats: aggregate.Stats{Count: 1}},
		{Key: k("/\uFFFD"), Stats: aggregate.Stats{Count: 1}},
	}}
	before := slices.Clone(s.Records)
	got, err := Decode(Encode(s), "r", 0)
	require.NoError(t, err, "Decode accepts whatever Encode writes")
	assert.Equal(t, before, s.Records, "Encode leaves its records alone")
	var routes []string
	var counts []uint64
	for _, r := range got.Records {
		routes, counts = append(routes, r.Route), append(counts, r.Count)
	}
	assert.Equal(t, []string{"/a", "/b", "/\uFFFD"}, routes)
	assert.Equal(t, []uint64{2, 4, 2}, counts)
}

// reseal replaces the payload of an encoded shard and sums it again, as a
// writer that meant to would.
func reseal(t *testing.T, data []byte, edit func(payload string) string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(`,"sha256":"`))
	j := bytes.Index(data, []byte(`"payload":`)) + len(`"payload":`)
	require.Positive(t, i)
	p := edit(string(data[j : len(data)-1]))
	sum := sha256.Sum256([]byte(string(data[:i]) + p))
	return []byte(string(data[:i]) + `,"sha256":"` + hex.EncodeToString(sum[:]) + `","payload":` + p + "}")
}

// twice repeats the first object of the array that follows array in p.
func twice(p, array string) string {
	i := strings.Index(p, array) + len(array)
	j := strings.Index(p[i:], "}") + i + 1
	return p[:i] + p[i:j] + "," + p[i:]
}

func TestDecodeRefuses(t *testing.T) {
	s := sample(t, "authz-1", 4, 50)
	good := Encode(s)
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		return b
	}
	payloadAt := bytes.Index(good, []byte(`"payload":`)) + len(`"payload":`)
	tests := []struct {
		name     string
		data     []byte
		replica  string
		maxBytes int
		want     error
	}{
		{name: "a flipped byte in the payload", data: flip(payloadAt + 100), want: ErrChecksum},
		{name: "a flipped byte at the payload's end", data: flip(bytes.LastIndex(good, []byte("spiffe")) + 2), want: ErrChecksum},
		{name: "a flipped byte in the replica", data: flip(bytes.Index(good, []byte(`"authz-1"`)) + 3), want: ErrChecksum},
		{name: "a flipped byte in the sum", data: flip(bytes.Index(good, []byte(`"sha256":"`)) + 12), want: ErrChecksum},
		{name: "a flipped byte in the time", data: flip(bytes.Index(good, []byte(`"written":"`)) + 13), want: ErrChecksum},
		{name: "a time that is not one", data: bytes.Replace(good, []byte(`"written":"2`), []byte(`"written":"x`), 1), want: ErrCorrupt},
		{name: "truncated", data: good[:len(good)/2], want: ErrCorrupt},
		{name: "truncated by one", data: good[:len(good)-1], want: ErrCorrupt},
		{name: "empty", data: nil, want: ErrCorrupt},
		{name: "garbage", data: []byte("\x00\x01 not json"), want: ErrCorrupt},
		{name: "other JSON", data: []byte(`{"version":1,"entries":[]}`), want: ErrCorrupt},
		{name: "renamed: another replica's shard", data: good, replica: "authz-2", want: ErrForeign},
		{name: "a key that names no replica", data: good, replica: "../authz-1", want: ErrForeign},
		{name: "oversized", data: good, maxBytes: len(good) - 1, want: ErrTooLarge},
		{name: "oversized garbage is not parsed", data: bytes.Repeat([]byte("{"), 100), maxBytes: 99, want: ErrTooLarge},
		{name: "another version", data: bytes.Replace(good, []byte(`"version":1,"replica"`), []byte(`"version":2,"replica"`), 1), want: ErrVersion},
		{name: "a newer version with another layout", data: []byte(`{"version":3,"format":"authz-policy-shard","payload":{}}`), want: ErrVersion},
		{name: "another format", data: bytes.Replace(good, []byte(Format), []byte("authz-policy-other"), 1), want: ErrCorrupt},
		{name: "spaces in the envelope", data: bytes.Replace(good, []byte(`,"replica"`), []byte(`, "replica"`), 1), want: ErrCorrupt},
		{name: "fields in another case", data: bytes.Replace(good, []byte(`"replica"`), []byte(`"Replica"`), 1), want: ErrCorrupt},
		{name: "data after", data: append(bytes.Clone(good), ' '), want: ErrCorrupt},
		{name: "a newer aggregate state", data: reseal(t, good, func(p string) string {
			return strings.Replace(p, `{"version":1,"entries"`, `{"version":2,"entries"`, 1)
		}), want: ErrVersion},
		{name: "a newer callee state", data: reseal(t, good, func(p string) string {
			return strings.Replace(p, `"callees":{"version":1`, `"callees":{"version":9`, 1)
		}), want: ErrVersion},
		{name: "resealed: an empty route", data: reseal(t, good, func(p string) string {
			return strings.Replace(p, `"r":"/api/v1/items/`, `"r":"","x":"`, 1)
		}), want: ErrCorrupt},
		{name: "resealed: records twice", data: reseal(t, good, func(p string) string { return twice(p, `"entries":[`) }), want: ErrCorrupt},
		{name: "resealed: a spaced record", data: reseal(t, good, func(p string) string {
			return strings.Replace(p, `"m":`, `"m": `, 1)
		}), want: ErrCorrupt},
		{name: "resealed: spaced payload", data: reseal(t, good, func(p string) string {
			return strings.Replace(p, `,"callees":`, `, "callees":`, 1)
		}), want: ErrCorrupt},
		{name: "resealed: callees not a state", data: reseal(t, good, func(p string) string {
			return p[:strings.Index(p, `,"callees":`)] + `,"callees":[1,2]}`
		}), want: ErrCorrupt},
		{name: "resealed: a callee twice", data: reseal(t, good, func(p string) string { return twice(p, `"callees":[`) }), want: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replica := tt.replica
			if replica == "" {
				replica = s.Replica
			}
			_, err := Decode(tt.data, replica, tt.maxBytes)
			require.ErrorIs(t, err, tt.want)
			for _, other := range []error{ErrTooLarge, ErrVersion, ErrChecksum, ErrForeign, ErrCorrupt} {
				if other != tt.want {
					assert.NotErrorIs(t, err, other)
				}
			}
			assert.NotEmpty(t, Reason(err))
		})
	}
	_, err := Decode(good, s.Replica, len(good))
	assert.NoError(t, err, "exactly maxBytes is not too large")
}

func TestReason(t *testing.T) {
	assert.Empty(t, Reason(nil))
	assert.Equal(t, "checksum", Reason(ErrChecksum))
	assert.Equal(t, "too_large", Reason(fmt.Errorf("x: %w", ErrTooLarge)))
	assert.Equal(t, "corrupt", Reason(fmt.Errorf("other")))
}

func TestKey(t *testing.T) {
	long := strings.Repeat("a", 253)
	for _, ok := range []string{"a", "0", "authz-0", "authz-policy-6d5f7c9b8-x2k4q", "node-1.example.org", long} {
		k, err := Key(ok)
		require.NoError(t, err, ok)
		assert.Equal(t, "shards/"+ok+".json", k)
		back, err := ReplicaOf(k)
		require.NoError(t, err)
		assert.Equal(t, ok, back)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "A", "Authz-0", "a_b", "a b", "-a", "a-", "a..b", ".a", "a.", "a\x00", "é", long + "a", "a.-b"} {
		_, err := Key(bad)
		assert.Error(t, err, "%q", bad)
	}
	for _, bad := range []string{"shards/a", "a.json", "shards/x/a.json", "shards/../a.json", "shards/.json", "other/a.json"} {
		_, err := ReplicaOf(bad)
		assert.Error(t, err, bad)
	}
}

func TestPublisher(t *testing.T) {
	now := t0
	const timeout = 3 * time.Minute
	m := func(replica string, age time.Duration) Meta { return Meta{Replica: replica, Written: now.Add(-age)} }
	tests := []struct {
		name   string
		shards []Meta
		self   string
		want   string
	}{
		{"self alone", nil, "b", "b"},
		{"self's own shard listed", []Meta{m("b", time.Hour)}, "b", "b"},
		{"the lowest fresh wins", []Meta{m("c", 0), m("a", time.Minute), m("b", 0)}, "c", "a"},
		{"self is the lowest", []Meta{m("c", 0), m("d", 0)}, "b", "b"},
		{"a stale lowest is skipped", []Meta{m("a", timeout+time.Second), m("b", time.Minute)}, "c", "b"},
		{"exactly timeout old is fresh", []Meta{m("a", timeout)}, "c", "a"},
		{"every other stale: self takes over", []Meta{m("a", time.Hour), m("b", 2*timeout)}, "c", "c"},
		{"byte order", []Meta{m("authz-10", 0), m("authz-9", 0)}, "authz-2", "authz-10"},
		{"equal ids", []Meta{m("a", 0), m("a", time.Hour), m("b", 0)}, "b", "a"},
		{"equal ids, all stale", []Meta{m("a", time.Hour), m("a", time.Hour)}, "b", "b"},
		{"clock skew: written in the future is fresh", []Meta{m("a", -time.Minute)}, "b", "a"},
		{"too far in the future is not trusted", []Meta{m("a", -timeout-time.Second)}, "b", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Publisher(tt.shards, tt.self, now, timeout))
			rev := slices.Clone(tt.shards)
			slices.Reverse(rev)
			assert.Equal(t, tt.want, Publisher(rev, tt.self, now, timeout), "in any order")
		})
	}
}

// TestPublisherTakeover: replicas a, b and c flush each minute; a dies,
// and within the timeout b, then everyone, agrees b publishes.
func TestPublisherTakeover(t *testing.T) {
	const timeout = 3 * time.Minute
	written := map[string]time.Time{}
	publishers := func(now time.Time, alive ...string) map[string]bool {
		var metas []Meta
		for _, r := range slices.Sorted(func(yield func(string) bool) {
			for r := range written {
				if !yield(r) {
					return
				}
			}
		}) {
			metas = append(metas, Meta{Replica: r, Written: written[r]})
		}
		out := map[string]bool{}
		for _, r := range alive {
			if p := Publisher(metas, r, now, timeout); p == r {
				out[r] = true
			}
		}
		return out
	}
	now := t0
	for range 5 {
		now = now.Add(time.Minute)
		for _, r := range []string{"a", "b", "c"} {
			written[r] = now
		}
		assert.Equal(t, map[string]bool{"a": true}, publishers(now, "a", "b", "c"))
	}
	// a dies; b and c go on writing.
	var tookOver time.Duration
	for i := 1; i <= 10; i++ {
		now = now.Add(time.Minute)
		written["b"], written["c"] = now, now
		if p := publishers(now, "b", "c"); len(p) > 0 {
			assert.Equal(t, map[string]bool{"b": true}, p)
			if tookOver == 0 {
				tookOver = time.Duration(i) * time.Minute
			}
		}
	}
	assert.Equal(t, timeout+time.Minute, tookOver, "taken over at the first flush after the timeout")
	// a comes back and is the publisher again at once.
	now = now.Add(time.Minute)
	for _, r := range []string{"a", "b", "c"} {
		written[r] = now
	}
	assert.Equal(t, map[string]bool{"a": true}, publishers(now, "a", "b", "c"))
}
