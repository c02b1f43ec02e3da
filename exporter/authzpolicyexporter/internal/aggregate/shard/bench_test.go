package shard

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// benchShards are three replicas' shards holding 100k distinct keys in
// all, a tenth of them seen by more than one replica.
func benchShards(b *testing.B) []Shard {
	const keys = 100_000
	rng := rand.New(rand.NewSource(1))
	shares := make([][]aggregate.Record, 3)
	for k := range keys {
		r := aggregate.Record{
			Key: aggregate.Key{
				Destination: fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/svc-%d", k%500),
				Source:      fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/caller-%d", k%97),
				Method:      []string{"GET", "POST", "PUT", "DELETE"}[k%4],
				Route:       fmt.Sprintf("/api/v1/items/%d/parts", k),
			},
			Stats: aggregate.Stats{Count: uint64(1 + k%9), FirstSeen: t0, LastSeen: t0.Add(3600e9), Buckets: 1 << (k % 64), Values: uint64(k)},
		}
		i := rng.Intn(3)
		shares[i] = append(shares[i], r)
		if k%10 == 0 {
			shares[(i+1)%3] = append(shares[(i+1)%3], r)
		}
	}
	out := make([]Shard, 3)
	for i, share := range shares {
		recs := snapshotOf(share)
		out[i] = Shard{Replica: fmt.Sprintf("authz-%d", i), Written: t0, Records: recs, Callees: calleesOf(b, recs)}
	}
	return out
}

func BenchmarkShardEncode(b *testing.B) {
	shards := benchShards(b)
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		size = 0
		for _, s := range shards {
			size += len(Encode(s))
		}
	}
	b.ReportMetric(float64(size), "shard_bytes")
}

func BenchmarkShardDecode(b *testing.B) {
	shards := benchShards(b)
	data := make([][]byte, len(shards))
	for i, s := range shards {
		data[i] = Encode(s)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, d := range data {
			if _, err := Decode(d, shards[i].Replica, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkShardMerge(b *testing.B) {
	shards := benchShards(b)
	b.ReportAllocs()
	for b.Loop() {
		if recs, _ := Merge(shards); len(recs) != 100_000 {
			b.Fatal(len(recs))
		}
	}
}
