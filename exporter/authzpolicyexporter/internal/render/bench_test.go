package render

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// BenchmarkRender renders, compiles and serializes aggregates of growing
// size: n callees, 5 callers each, 5 routes per caller.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{10, 400} {
		recs := syntheticRecords(n)
		b.Run("entries="+strconv.Itoa(len(recs)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Render(context.Background(), recs, Options{CardinalityThreshold: 10}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
