package render

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// BenchmarkRender renders, compiles and serializes aggregates of 1k, 10k
// and 100k rules (callees x 5 callers x 5 routes), and reports the CPU
// time of one render beside its wall time: the collector's other
// goroutines share the cores. changed=one renders the same aggregate
// with per-callee bundles again after one callee gained a route, which
// redoes that callee alone.
func BenchmarkRender(b *testing.B) {
	for _, rules := range []int{1000, 10000, 100000} {
		recs := syntheticRecords(rules / 25)
		b.Run("rules="+strconv.Itoa(rules)+"/changed=all", func(b *testing.B) {
			benchCPU(b, func() {
				if _, err := Render(context.Background(), recs, Options{CardinalityThreshold: 10}); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run("rules="+strconv.Itoa(rules)+"/changed=one", func(b *testing.B) {
			cache := NewCache()
			opts := Options{CardinalityThreshold: 10, PerCallee: true, Cache: cache}
			if _, err := Render(context.Background(), recs, opts); err != nil {
				b.Fatal(err)
			}
			extra := rec(recs[0].Destination, recs[0].Source, "DELETE", "/api/v1/items/{int}")
			next := append(slices.Clone(recs), extra)
			i := 0
			benchCPU(b, func() {
				// Alternate between the two aggregates: each render
				// finds one callee changed.
				in := recs
				if i%2 == 0 {
					in = next
				}
				i++
				if _, err := Render(context.Background(), in, opts); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// benchCPU runs f b.N times and reports the process's CPU time per run.
func benchCPU(b *testing.B, f func()) {
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

func syntheticRecords(callees int) []aggregate.Record {
	var recs []aggregate.Record
	for d := 0; d < callees; d++ {
		dst := fmt.Sprintf("spiffe://example.org/ns/shop/sa/svc-%d", d)
		for s := 0; s < 5; s++ {
			src := fmt.Sprintf("spiffe://example.org/ns/shop/sa/client-%d", (d+s)%callees)
			for r, route := range []string{"/api/v1/items", "/api/v1/items/{int}", "/api/v1/items/{int}/detail", "/healthz", "/api/v1/orders/{uuid}"} {
				method := "GET"
				if r == 0 {
					method = "POST"
				}
				recs = append(recs, rec(dst, src, method, route))
			}
		}
	}
	return recs
}
