package authzpolicyexporter

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// benchTraces is a batch of n spans in the given shape, each with a fresh
// identifier in its path, from 20 callers to 10 callees.
func benchTraces(n int, shape string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	end := pcommon.NewTimestampFromTime(time.Now())
	for i := 0; i < n; i++ {
		s := spans.AppendEmpty()
		s.SetEndTimestamp(end)
		dst := fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/svc-%d", i%10)
		src := fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/client-%d", i%20)
		header := "By=" + dst + ";Hash=5f4dcc3b5aa765d61d8327deb882cf99;Subject=\"\";URI=" + src
		a := s.Attributes()
		switch shape {
		case "semconv":
			a.PutEmptySlice("http.request.header.x-forwarded-client-cert").AppendEmpty().SetStr(header)
			a.PutStr("http.request.method", "GET")
			a.PutStr("url.path", fmt.Sprintf("/api/v1/orders/%d/items", 100000+i))
			a.PutInt("http.response.status_code", 200)
		case "pixie":
			a.PutStr("http.req_headers", `{"host":"svc:8080","user-agent":"curl/8.5.0","x-forwarded-client-cert":"`+
				"By="+dst+";Hash=5f4dcc3b5aa765d61d8327deb882cf99;Subject=\\\"\\\";URI="+src+`"}`)
			a.PutStr("http.method", "GET")
			a.PutStr("http.target", fmt.Sprintf("/api/v1/orders/%d/items?expand=true", 100000+i))
			a.PutInt("http.status_code", 200)
		}
	}
	return td
}

// BenchmarkConsumeTraces measures ingest: ns/span and allocs/span.
func BenchmarkConsumeTraces(b *testing.B) {
	for _, shape := range []string{"semconv", "pixie"} {
		b.Run(shape, func(b *testing.B) {
			const n = 1000
			e, _ := newTestExporter(b, nil)
			td := benchTraces(n, shape)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.consumeTraces(context.Background(), td); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			if e.agg.Len() != 20 {
				b.Fatalf("aggregate has %d entries, want 20", e.agg.Len())
			}
			spans := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/spans, "allocs/span")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/spans, "B/span")
			b.ReportMetric(0, "ns/op")
		})
	}
}
