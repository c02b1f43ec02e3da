package authzpolicyexporter

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Benchmark batches: what Pixie and instrumented services send, 1000 spans.
const benchSpans = 1000

// Callees and callers of the benchmark batches: each callee has four
// callers, and each call one of benchRoutes with fresh identifiers, so
// that once the batch was seen, every span's key is in the aggregate.
const (
	benchCallees = 10
	benchCallers = 4
)

var benchRoutes = []struct {
	method, path string // %d: an identifier
}{
	{"GET", "/api/v1/accounts/%d"},
	{"GET", "/api/v1/accounts/%d/transactions"},
	{"POST", "/api/v1/payments/%d/capture"},
	{"GET", "/balances/%d"},
	{"GET", "/healthz"},
}

// hostile are the spans of a batch that must be skipped, one in ten, each
// with the reason it is counted under. Each rewrites a span's attributes
// after it was built.
var hostile = []struct {
	why   reason
	spoil func(shape int, span, res pcommon.Map)
}{
	{reasonMalformedXFCC, func(shape int, span, res pcommon.Map) {
		// An unterminated quote; in the PxL shape's By/URI pair, an
		// identity that is not one.
		setXFCC(shape, span, res, `By=spiffe://cluster.local/ns/bank/sa/ledger;Subject="CN=frontend;URI=spiffe://cluster.local/ns/bank/sa/frontend`)
	}},
	{reasonPathTooLong, func(shape int, span, _ pcommon.Map) {
		setPath(shape, span, "/api/v1/"+strings.Repeat("a", 3000))
	}},
	{reasonPathTooLong, func(shape int, span, _ pcommon.Map) {
		setPath(shape, span, strings.Repeat("/x", 40))
	}},
	{reasonInvalidPath, func(shape int, span, _ pcommon.Map) {
		// Pixie sends text that is not UTF-8 as bytes.
		span.PutEmptyBytes(pathAttr[shape]).FromRaw([]byte("/api/v1/accounts/\xff\xfe"))
	}},
	{reasonPathTraversal, func(shape int, span, _ pcommon.Map) {
		setPath(shape, span, "/api/v1/accounts/%2e%2e/admin")
	}},
	{reasonNoIdentity, func(shape int, span, res pcommon.Map) {
		switch shape {
		case shapePxL:
			span.PutStr("http.xfcc_uri", "")
		case shapeHTTPSpans:
			span.PutStr("http.req_headers", `{"host":"ledger:8080","user-agent":"curl/8.5.0","accept":"*/*"}`)
		case shapeSemconv:
			span.Remove("http.request.header.x-forwarded-client-cert")
		}
	}},
	{reasonNoMethod, func(shape int, span, _ pcommon.Map) {
		span.Remove("http.method")
		span.Remove("http.request.method")
	}},
}

// The three span shapes (README, "What the exporter reads").
const (
	shapePxL       = iota // the demo PxL script: identities in http.xfcc_by / http.xfcc_uri
	shapeHTTPSpans        // Pixie's HTTP Spans: XFCC inside the http.req_headers JSON
	shapeSemconv          // semantic conventions: XFCC as a string array
	numShapes
)

var pathAttr = [numShapes]string{shapePxL: "http.target", shapeHTTPSpans: "http.target", shapeSemconv: "url.path"}

func setPath(shape int, span pcommon.Map, path string) {
	span.PutStr(pathAttr[shape], path)
}

func setXFCC(shape int, span, res pcommon.Map, header string) {
	switch shape {
	case shapePxL:
		by, uri, _ := strings.Cut(header, ";Subject=")
		res.PutStr("http.xfcc_by", by)
		span.PutStr("http.xfcc_uri", "URI="+uri)
	case shapeHTTPSpans:
		span.PutStr("http.req_headers", pixieHeaders(header, "0"))
	case shapeSemconv:
		span.PutEmptySlice("http.request.header.x-forwarded-client-cert").AppendEmpty().SetStr(header)
	}
}

// pixieHeaders is an http.req_headers value as Pixie writes it for a
// request from an Istio sidecar to its application.
func pixieHeaders(xfcc, requestID string) string {
	b, _ := json.Marshal(map[string]string{
		"host":                    "ledger:8080",
		"user-agent":              "bank-frontend/1.4.2",
		"accept":                  "application/json",
		"x-forwarded-proto":       "http",
		"x-request-id":            requestID,
		"x-envoy-attempt-count":   "1",
		"x-b3-traceid":            "463ac35c9f6413ad48485a3953bb6124",
		"x-b3-spanid":             "a2fb4a1d1a96d312",
		"x-b3-sampled":            "0",
		"x-forwarded-client-cert": xfcc,
	})
	return string(b)
}

// istioXFCC is the header an Istio sidecar hands its application: Hash is
// that of the caller's certificate.
func istioXFCC(dst, src string) string {
	return fmt.Sprintf(`By=%s;Hash=%x;Subject="";URI=%s`, dst, sha256.Sum256([]byte(src)), src)
}

func benchID(kind string, i int) string {
	return "spiffe://cluster.local/ns/bank/sa/" + kind + "-" + fmt.Sprint(i)
}

// mixedBatch is n spans in all three shapes, one in ten hostile (see
// hostile): the PxL shape one resource per span, the others one resource
// per callee, as Pixie groups them. It returns the reasons the spans are
// counted under.
func mixedBatch(n int, end time.Time) (ptrace.Traces, [numReasons]int64) {
	rnd := rand.New(rand.NewPCG(1, 2))
	td := ptrace.NewTraces()
	var counts [numReasons]int64
	var grouped [numShapes][benchCallees]ptrace.SpanSlice
	for i := 0; i < n; i++ {
		shape := i % numShapes
		callee := i / numShapes % benchCallees
		dst := benchID("svc", callee)
		src := benchID("client", (callee*3+i/(numShapes*benchCallees))%(benchCallees*2))
		rt := benchRoutes[i/7%len(benchRoutes)]
		id := 100000 + rnd.IntN(900000)
		path := strings.ReplaceAll(rt.path, "%d", fmt.Sprint(id))
		if shape == shapePxL {
			// The PxL script replaces runs of six hex digits or more.
			path = strings.ReplaceAll(rt.path, "%d", "<id>")
		}

		var spans ptrace.SpanSlice
		var res pcommon.Map
		if shape == shapePxL {
			rs := td.ResourceSpans().AppendEmpty()
			res = rs.Resource().Attributes()
			res.PutStr("service.name", fmt.Sprint("svc-", callee))
			res.PutStr("server.k8s.pod.name", fmt.Sprintf("svc-%d-5f6b9c7d8-9tqlm", callee))
			res.PutStr("server.k8s.deployment.name", fmt.Sprint("svc-", callee))
			res.PutStr("server.k8s.namespace.name", "bank")
			res.PutStr("server.k8s.node.name", "bank-pool-1-node-c")
			res.PutStr("http.xfcc_by", "By="+dst)
			res.PutStr("k8s.cluster.name", "demo-bank")
			res.PutStr("px.cluster.id", "6a1f0c2e-4b8d-4d7a-9e3c-5f2b1a0d9c8e")
			res.PutStr("instrumentation.provider", "pixie")
			spans = rs.ScopeSpans().AppendEmpty().Spans()
		} else {
			if grouped[shape][callee] == (ptrace.SpanSlice{}) {
				rs := td.ResourceSpans().AppendEmpty()
				a := rs.Resource().Attributes()
				a.PutStr("service.name", fmt.Sprint("svc-", callee))
				a.PutStr("k8s.namespace.name", "bank")
				a.PutStr("k8s.pod.name", fmt.Sprintf("svc-%d-5f6b9c7d8-9tqlm", callee))
				a.PutStr("k8s.node.name", "bank-pool-1-node-c")
				a.PutStr("k8s.cluster.name", "demo-bank")
				if shape == shapeHTTPSpans {
					a.PutStr("px.cluster.id", "6a1f0c2e-4b8d-4d7a-9e3c-5f2b1a0d9c8e")
					a.PutStr("instrumentation.provider", "pixie")
				} else {
					a.PutStr("service.version", "1.4.2")
					a.PutStr("telemetry.sdk.language", "go")
					a.PutStr("telemetry.sdk.name", "opentelemetry")
				}
				grouped[shape][callee] = rs.ScopeSpans().AppendEmpty().Spans()
			}
			spans = grouped[shape][callee]
			res = pcommon.NewMap() // these shapes' spans carry their identities
		}

		s := spans.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		for j := range tid {
			tid[j] = byte(rnd.Uint32())
		}
		for j := range sid {
			sid[j] = byte(rnd.Uint32())
		}
		s.SetTraceID(tid)
		s.SetSpanID(sid)
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-40 * time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		a := s.Attributes()
		url := "http://svc-" + fmt.Sprint(callee) + ":8080" + path
		switch shape {
		case shapePxL:
			s.SetName(path)
			a.PutStr("http.xfcc_uri", "URI="+src)
			a.PutStr("http.method", rt.method)
			a.PutStr("http.url", url)
			a.PutStr("http.target", path)
			a.PutStr("http.host", fmt.Sprintf("svc-%d:8080", callee))
			a.PutInt("http.status_code", 200)
			a.PutStr("client.service.name", fmt.Sprint("client-", callee))
			a.PutStr("client.k8s.pod.name", "client-84c7d9b5f-zq4mw")
			a.PutStr("client.k8s.namespace.name", "bank")
		case shapeHTTPSpans:
			s.SetName("HTTP " + rt.method)
			a.PutStr("http.method", rt.method)
			a.PutStr("http.target", path+"?expand=true")
			a.PutStr("http.url", url+"?expand=true")
			a.PutInt("http.status_code", 200)
			a.PutStr("http.req_headers", pixieHeaders(istioXFCC(dst, src), fmt.Sprintf("%08x-f20b-4de2-ac35-bb06a6b2d887", rnd.Uint32())))
		case shapeSemconv:
			s.SetName(rt.method)
			a.PutStr("http.request.method", rt.method)
			a.PutStr("url.scheme", "http")
			a.PutStr("url.path", path)
			a.PutStr("url.query", "include=pending")
			a.PutStr("url.full", url+"?include=pending")
			a.PutStr("server.address", fmt.Sprint("svc-", callee))
			a.PutInt("server.port", 8080)
			a.PutInt("http.response.status_code", 200)
			a.PutStr("network.protocol.version", "1.1")
			a.PutStr("user_agent.original", "Go-http-client/1.1")
			a.PutEmptySlice("http.request.header.x-forwarded-client-cert").AppendEmpty().SetStr(istioXFCC(dst, src))
		}
		why := learned
		if i%10 == 9 {
			h := hostile[i/10%len(hostile)]
			h.spoil(shape, a, res)
			why = h.why
			if why == reasonMalformedXFCC && shape == shapePxL {
				why = reasonInvalidIdentity
			}
		}
		counts[why]++
	}
	return td, counts
}

// perSpan reports what each call of f costs per span of a batch of n.
func perSpan(b *testing.B, n int, f func()) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	spans := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/spans, "allocs/span")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/spans, "B/span")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConsumeTraces measures ingest in the steady state: every span's
// identities and route are in the aggregate already, as they are once the
// mesh was seen for a while. Compare with BenchmarkDecodeOTLP, what the
// receiver paid for the same batch.
func BenchmarkConsumeTraces(b *testing.B) {
	b.Run("batch=mixed", func(b *testing.B) {
		e, _ := newTestExporter(b, nil)
		ctx := context.Background()
		td, want := mixedBatch(benchSpans, time.Now())
		if err := e.consumeTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		for r := learned + 1; r < numReasons; r++ {
			if got := e.skipped[r].Load(); got != want[r] {
				b.Fatalf("%d spans skipped as %s, want %d", got, r, want[r])
			}
		}
		keys := e.agg.Len()
		perSpan(b, benchSpans, func() {
			if err := e.consumeTraces(ctx, td); err != nil {
				b.Fatal(err)
			}
		})
		if e.agg.Len() != keys {
			b.Fatalf("the aggregate grew from %d to %d keys: not the steady state", keys, e.agg.Len())
		}
	})
}

// BenchmarkDecodeOTLP decodes the batch of BenchmarkConsumeTraces from the
// OTLP/protobuf request the receiver gets.
func BenchmarkDecodeOTLP(b *testing.B) {
	b.Run("batch=mixed", func(b *testing.B) {
		td, _ := mixedBatch(benchSpans, time.Now())
		raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		perSpan(b, benchSpans, func() {
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(raw); err != nil {
				b.Fatal(err)
			}
		})
	})
}
