package authzpolicyexporter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
)

// A large mesh: every callee has five callers, each calling ten routes of
// it, 200,000 routes in all. The callers are callees too.
const (
	meshCallees = 4000
	meshCallers = 5
	meshRoutes  = 10
	meshKeys    = meshCallees * meshCallers * meshRoutes
	meshSpans   = 1_300_000
)

// meshNouns name the resources of the mesh's APIs; neighbouring callees
// share some, as services of one company do.
var meshNouns = []string{
	"accounts", "orders", "payments", "invoices", "customers", "products", "carts", "shipments",
	"refunds", "users", "sessions", "tokens", "reports", "ledgers", "balances", "transfers",
	"prices", "coupons", "reviews", "stores", "warehouses", "suppliers", "contracts", "tickets",
	"messages", "notifications", "subscriptions", "plans", "devices", "locations",
}

// meshKey is key k of the mesh, with path holding identifier id.
func meshKey(k, id int) (dst, src, method, path string) {
	callee := k / (meshCallers * meshRoutes)
	caller := (callee + 1 + k/meshRoutes%meshCallers*797) % meshCallees
	noun := meshNouns[(callee+k%meshRoutes/2)%len(meshNouns)]
	dst = "spiffe://cluster.local/ns/team-" + strconv.Itoa(callee%40) + "/sa/service-" + strconv.Itoa(callee)
	src = "spiffe://cluster.local/ns/team-" + strconv.Itoa(caller%40) + "/sa/service-" + strconv.Itoa(caller)
	method = "GET"
	switch k % meshRoutes {
	case 0:
		path = "/healthz"
	case 1:
		path = "/api/v1/" + noun
	case 2:
		method, path = "POST", "/api/v1/"+noun
	case 3:
		path = "/api/v1/" + noun + "/" + strconv.Itoa(id)
	case 4:
		method, path = "PUT", "/api/v1/"+noun+"/"+strconv.Itoa(id)
	case 5:
		method, path = "DELETE", "/api/v1/"+noun+"/"+strconv.Itoa(id)
	case 6:
		path = "/api/v1/" + noun + "/" + strconv.Itoa(id) + "/history"
	case 7:
		path = "/api/v2/" + noun + "/search"
	case 8:
		path = fmt.Sprintf("/api/v1/%s/%08x-7b4d-4e2a-9c1f-%012x", noun, id, id)
	case 9:
		method, path = "POST", "/api/v1/"+noun+"/"+strconv.Itoa(id)+"/events"
	}
	return dst, src, method, path
}

// meshBatch is spans first to first+n of the mesh, in the semantic
// conventions' shape, with a fresh identifier in every path.
func meshBatch(first, n int, end pcommon.Timestamp) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	spans.EnsureCapacity(n)
	for i := first; i < first+n; i++ {
		dst, src, method, path := meshKey(i%meshKeys, 100000+i%900000)
		s := spans.AppendEmpty()
		s.SetKind(ptrace.SpanKindServer)
		s.SetEndTimestamp(end)
		a := s.Attributes()
		a.EnsureCapacity(4)
		a.PutStr("http.request.header.x-forwarded-client-cert", "By="+dst+`;Hash=48510d1ade00230f882206de5c687a6bd7ab0cf519bc890be022a48df669f0bb;Subject="";URI=`+src)
		a.PutStr("http.request.method", method)
		a.PutStr("url.path", path)
		a.PutInt("http.response.status_code", 200)
	}
	return td
}

// fileStorage is a storage extension that keeps each value in a file, as
// file_storage does, so that a saved state is not held on the heap.
type fileStorage struct {
	component.StartFunc
	component.ShutdownFunc
	dir string
}

func (f *fileStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return fileClient{dir: f.dir}, nil
}

type fileClient struct {
	storage.Client // only Get, Set and Close are used
	dir            string
}

func (c fileClient) Get(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, key))
	if os.IsNotExist(err) {
		return nil, nil
	}
	return b, err
}

func (c fileClient) Set(_ context.Context, key string, value []byte) error {
	return os.WriteFile(filepath.Join(c.dir, key), value, 0o600)
}

func (fileClient) Close(context.Context) error { return nil }

// meshExporter is an exporter configured for the mesh, publishing to out
// and keeping its state in the files of state.
func meshExporter(b testing.TB, out, state string) (*authzExporter, component.Host) {
	id := component.MustNewID("file_storage")
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + out
	cfg.Storage = &id
	cfg.MaxEntries = 4 * meshKeys
	cfg.FlushInterval = time.Hour
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	if err != nil {
		b.Fatal(err)
	}
	return e, hostWithExtensions{ext: map[component.ID]component.Component{id: &fileStorage{dir: state}}}
}

// peakMemory measures f: the growth of the resident set (its high-water
// mark, which the kernel resets on request) and the largest growth of the
// live heap, sampled every millisecond, over what the process held before.
func peakMemory(b testing.TB, f func()) (rss, heap uint64) {
	debug.FreeOSMemory()
	startRSS := procStatus(b, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the resident set's high-water mark: %v", err)
	}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	startHeap := sample[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return procStatus(b, "VmHWM") - startRSS, peak.Load() - startHeap
}

// procStatus reads a size from /proc/self/status, in bytes.
func procStatus(b testing.TB, field string) uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func reportPerRoute(b *testing.B, rss, heap uint64) {
	b.ReportMetric(float64(rss)/meshKeys, "B/route")
	b.ReportMetric(float64(heap)/meshKeys, "heap-B/route")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRouteMemory measures the collector's memory per learned route
// for the mesh (4000 callees x 5 callers x 10 routes): learning it from
// 1.3 million spans and publishing it (phase=learn), and starting again
// with its bundle and saved state in place (phase=restart), until the
// exporter is ready for spans. B/route is the resident set's growth,
// heap-B/route the live heap's; each iteration is one whole run.
func BenchmarkRouteMemory(b *testing.B) {
	ctx := context.Background()
	b.Run("phase=learn", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out, state := b.TempDir(), b.TempDir()
			e, host := meshExporter(b, out, state)
			end := pcommon.NewTimestampFromTime(time.Now())
			rss, heap := peakMemory(b, func() {
				if err := e.start(ctx, host); err != nil {
					b.Fatal(err)
				}
				const batch = 1000
				for first := 0; first < meshSpans; first += batch {
					if err := e.consumeTraces(ctx, meshBatch(first, batch, end)); err != nil {
						b.Fatal(err)
					}
				}
				if err := e.flush(ctx); err != nil {
					b.Fatal(err)
				}
			})
			if e.agg.Len() != meshKeys || e.lastRevision == "" {
				b.Fatalf("%d keys learned, want %d; published %q", e.agg.Len(), meshKeys, e.lastRevision)
			}
			if err := e.shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			reportPerRoute(b, rss, heap)
		}
	})
	b.Run("phase=restart", func(b *testing.B) {
		out, state := b.TempDir(), b.TempDir()
		// The mesh's bundle and saved state, written by an exporter that
		// learned it.
		e, host := meshExporter(b, out, state)
		if err := e.start(ctx, host); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		recs := make([]aggregate.Record, meshKeys)
		for k := range recs {
			dst, src, method, path := meshKey(k, 4711)
			rt, err := e.extract.learner.Learn(path, "")
			if err != nil {
				b.Fatal(err)
			}
			recs[k] = aggregate.Record{
				Key:   aggregate.Key{Destination: dst, Source: src, Method: method, Route: rt.String()},
				Stats: aggregate.Stats{Count: 6, FirstSeen: now, LastSeen: now, Buckets: 1, Values: 1},
			}
		}
		e.agg.Observe(recs)
		e.learnedAny.Store(true)
		recs = nil
		if err := e.shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		e = nil
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			again, host := meshExporter(b, out, state)
			rss, heap := peakMemory(b, func() {
				if err := again.start(ctx, host); err != nil {
					b.Fatal(err)
				}
			})
			if again.agg.Len() != meshKeys || len(again.guard.published) != meshKeys {
				b.Fatalf("restored %d keys and %d published rules, want %d", again.agg.Len(), len(again.guard.published), meshKeys)
			}
			b.StopTimer()
			if err := again.shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			reportPerRoute(b, rss, heap)
		}
	})
}
