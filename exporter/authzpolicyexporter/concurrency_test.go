package authzpolicyexporter

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// word spells n in the letters g..z: a path segment the heuristics always
// keep literal (no digits, not hex), so every n is a route of its own.
func word(n int) string {
	b := []byte{'w'}
	for {
		b = append(b, byte('g'+n%20))
		n /= 20
		if n == 0 {
			return string(b)
		}
	}
}

// loadBatch builds n spans for goroutine g, batch b. Valid spans carry a
// new path or a new caller; every other span is one that must be skipped
// (traversal, no identity, refused, malformed header, bad method): half of
// them. It
// returns the requests the valid spans teach.
func loadBatch(g, b, n int, end pcommon.Timestamp) (ptrace.Traces, []opatest.Request) {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	spans.EnsureCapacity(n)
	var learnedReqs []opatest.Request
	for i := 0; i < n; i++ {
		seq := b*n + i
		dst := fmt.Sprintf("spiffe://example.org/ns/load/sa/svc-%d", seq%7)
		src := fmt.Sprintf("spiffe://example.org/ns/load/sa/client-%d-%s", g, word(seq/3))
		path := fmt.Sprintf("/g%d/%s/items", g, word(seq))
		header := "By=" + dst + ";Hash=0a1b2c;Subject=\"\";URI=" + src
		method := "GET"
		s := spans.AppendEmpty()
		s.SetEndTimestamp(end)
		a := s.Attributes()
		a.EnsureCapacity(4)
		switch i % 10 {
		case 1:
			path = "/g/../" + word(seq)
		case 3:
			header = ""
		case 5:
			a.PutInt("http.response.status_code", 403)
		case 7:
			header = "By=" + dst + ";URI=\"" + src
		case 9:
			method = "get"
		default:
			learnedReqs = append(learnedReqs, opatest.Request{Destination: dst, Source: src, Method: method, Path: path})
		}
		if header != "" {
			a.PutStr("http.request.header.x-forwarded-client-cert", header)
		}
		a.PutStr("http.request.method", method)
		a.PutStr("url.path", path)
	}
	return td, learnedReqs
}

// TestConcurrentIngestFlushShutdown sends from 8 goroutines while another
// flushes and the periodic flush runs; halfway through, shutdown runs while
// the senders go on. Sending must keep returning nil, nothing may race or
// panic, and the bundle left on disk must allow what was learned before
// shutdown began.
func TestConcurrentIngestFlushShutdown(t *testing.T) {
	const (
		senders = 8
		batches = 20
		perB    = 150 // 3000 spans per sender
	)
	e, dir := newTestExporter(t, func(c *Config) { c.FlushInterval = 50 * time.Millisecond })
	ctx := context.Background()
	end := pcommon.NewTimestampFromTime(time.Now())

	var (
		sent, late, consumeErrs atomic.Int64
		shuttingDown            atomic.Bool
		mu                      sync.Mutex
		before                  []opatest.Request // learned before shutdown began
		senderWG                sync.WaitGroup
	)
	halfway := make(chan struct{})
	var halfOnce sync.Once
	for g := 0; g < senders; g++ {
		senderWG.Add(1)
		go func() {
			defer senderWG.Done()
			for b := 0; b < batches; b++ {
				td, reqs := loadBatch(g, b, perB, end)
				early := !shuttingDown.Load()
				if err := e.consumeTraces(ctx, td); err != nil {
					consumeErrs.Add(1)
				}
				if !early {
					late.Add(1)
				}
				if early && len(reqs) > 0 {
					mu.Lock()
					before = append(before, reqs[0], reqs[len(reqs)-1])
					mu.Unlock()
				}
				if sent.Add(int64(perB)) >= senders*batches*perB/2 {
					halfOnce.Do(func() { close(halfway) })
				}
			}
		}()
	}

	stopFlush := make(chan struct{})
	flushDone := make(chan struct{})
	var flushes, flushErrs atomic.Int64
	go func() {
		defer close(flushDone)
		for {
			select {
			case <-stopFlush:
				return
			default:
			}
			if err := e.flush(ctx); err != nil {
				flushErrs.Add(1)
				t.Errorf("flush: %v", err)
			}
			flushes.Add(1)
		}
	}()

	select {
	case <-halfway:
	case <-time.After(45 * time.Second):
		t.Fatal("senders did not get halfway")
	}
	shuttingDown.Store(true)
	require.NoError(t, e.shutdown(ctx))
	senderWG.Wait()
	close(stopFlush)
	<-flushDone

	assert.Zero(t, consumeErrs.Load(), "ConsumeTraces returned errors")
	assert.Zero(t, flushErrs.Load())
	assert.Equal(t, int64(senders*batches*perB), sent.Load())
	t.Logf("%d spans, %d keys, %d explicit flushes, %d batches sent once shutdown had begun, %d learned requests sampled before",
		sent.Load(), e.agg.Len(), flushes.Load(), late.Load(), len(before))

	// Every span was counted once: learned (a key each) or skipped.
	var skipped int64
	for r := learned + 1; r < numReasons; r++ {
		skipped += e.skipped[r].Load()
	}
	// Skip counters are reset by each flush's log line, so only a bound
	// holds here; the keys are exact.
	assert.LessOrEqual(t, skipped, int64(senders*batches*perB/2))
	assert.Equal(t, senders*batches*perB/2, e.agg.Len(), "one key per valid span")

	renderStart := time.Now()
	require.NoError(t, e.flush(ctx))
	t.Logf("one flush of %d keys: %v", e.agg.Len(), time.Since(renderStart).Round(time.Millisecond))

	policy := readBundle(t, dir)
	require.NotEmpty(t, before)
	for i, r := range before {
		if i%4 != 0 {
			continue
		}
		assert.True(t, policy.Allowed(r), "learned before shutdown, denied after: %s %s from %s to %s", r.Method, r.Path, r.Source, r.Destination)
		miss := r
		miss.Source += "x"
		assert.False(t, policy.Allowed(miss), "another caller allowed: %s", r.Path)
	}
}

// uniqueBatch builds n valid spans, each a key of its own: alternately a
// new path and a new caller.
func uniqueBatch(tag string, start, n int, end pcommon.Timestamp) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	spans.EnsureCapacity(n)
	for i := start; i < start+n; i++ {
		src, path := "spiffe://example.org/ns/cap/sa/client", "/cap/"+tag+"/"+word(i)
		if i%2 == 1 {
			src, path = "spiffe://example.org/ns/cap/sa/client-"+tag+"-"+word(i), "/cap/items"
		}
		s := spans.AppendEmpty()
		s.SetEndTimestamp(end)
		a := s.Attributes()
		a.EnsureCapacity(3)
		a.PutStr("http.request.header.x-forwarded-client-cert", "By=spiffe://example.org/ns/cap/sa/server;URI="+src)
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", path)
	}
	return td
}

// TestAggregateCapUnderConcurrency fills a small aggregate from several
// goroutines with spans that are each a new key: it never holds more than
// max_entries keys, and every span beyond is counted as aggregate_full.
// Keys already held are still refreshed once it is full.
func TestAggregateCapUnderConcurrency(t *testing.T) {
	const (
		maxEntries = 500
		senders    = 4
		batches    = 10
		perB       = 100
	)
	e, dir := newTestExporter(t, func(c *Config) {
		c.MaxEntries = maxEntries
		c.MaxEntriesPerCaller, c.MaxEntriesPerSource = maxEntries, maxEntries // the global cap is under test
		c.FlushInterval = time.Hour                                           // the flush log line would reset the skip counters
	})
	ctx := context.Background()
	end := pcommon.NewTimestampFromTime(time.Now())

	stop := make(chan struct{})
	var peak atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			if n := int64(e.agg.Len()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				assert.NoError(t, e.consumeTraces(ctx, uniqueBatch("s"+word(g), b*perB, perB, end)))
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watchDone

	total := senders * batches * perB
	assert.LessOrEqual(t, peak.Load(), int64(maxEntries), "peak keys")
	assert.Equal(t, maxEntries, e.agg.Len())
	assert.Equal(t, int64(total-maxEntries), e.skipped[reasonAggregateFull].Load(), "dropped spans")
	for r := learned + 1; r < numReasons; r++ {
		if r != reasonAggregateFull {
			assert.Zero(t, e.skipped[r].Load(), "spans skipped as %s", r)
		}
	}

	// A held key is refreshed, not dropped, when the aggregate is full.
	held := e.agg.Snapshot()[0]
	td := ptrace.NewTraces()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetEndTimestamp(end)
	s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By="+held.Destination+";URI="+held.Source)
	s.Attributes().PutStr("http.request.method", held.Method)
	s.Attributes().PutStr("url.path", held.Route)
	require.NoError(t, e.consumeTraces(ctx, td))
	assert.Equal(t, int64(total-maxEntries), e.skipped[reasonAggregateFull].Load(), "a held key was dropped")
	assert.Equal(t, maxEntries, e.agg.Len())

	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	assert.True(t, policy.Allowed(opatest.Request{Destination: held.Destination, Source: held.Source, Method: held.Method, Path: held.Route}))
}

// TestLoadMemoryStaysWithinCap sends, for a bounded time and at full speed
// from two goroutines, batches in which every span is a new key, against
// max_entries = 50,000. The aggregate must stop at the cap and the heap
// must stay bounded; the figures are logged.
func TestLoadMemoryStaysWithinCap(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		maxEntries = 50_000
		senders    = 2
		perB       = 500
		duration   = 10 * time.Second
		heapBound  = 512 << 20
	)
	e, _ := newTestExporter(t, func(c *Config) {
		c.MaxEntries = maxEntries
		c.MaxEntriesPerCaller, c.MaxEntriesPerSource = maxEntries, maxEntries // the global cap is under test
		c.FlushInterval = time.Hour
	})
	ctx := context.Background()
	end := pcommon.NewTimestampFromTime(time.Now())

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	peak := baseline

	deadline := time.Now().Add(duration)
	var spans atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := "load" + word(g)
			for b := 0; time.Now().Before(deadline); b++ {
				if err := e.consumeTraces(ctx, uniqueBatch(tag, b*perB, perB, end)); err != nil {
					t.Errorf("consume: %v", err)
					return
				}
				spans.Add(perB)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	bound := time.NewTimer(duration + 30*time.Second)
	defer bound.Stop()
	var samples []string
sampling:
	for {
		select {
		case <-done:
			break sampling
		case <-tick.C:
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			samples = append(samples, fmt.Sprintf("%dMiB/%d", ms.HeapInuse>>20, e.agg.Len()))
		case <-bound.C:
			t.Fatal("senders did not stop")
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)

	n := spans.Load()
	entries := e.agg.Len()
	dropped := e.skipped[reasonAggregateFull].Load()
	t.Logf("%d spans in %v: %.0f spans/s; %d entries held (cap %d); %d dropped as aggregate_full",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), entries, maxEntries, dropped)
	t.Logf("HeapInuse: baseline %d MiB, peak %d MiB; per second (heap/entries): %v", baseline>>20, peak>>20, samples)

	assert.LessOrEqual(t, entries, maxEntries)
	if n > maxEntries {
		assert.Equal(t, maxEntries, entries, "the cap was reached")
		assert.Equal(t, n-int64(maxEntries), dropped, "every span beyond the cap is counted")
	}
	assert.Less(t, peak, uint64(heapBound), "peak HeapInuse")

	// Rendering the full aggregate is bounded too.
	renderStart := time.Now()
	require.NoError(t, e.flush(ctx))
	runtime.ReadMemStats(&ms)
	t.Logf("one flush of %d keys: %v, HeapInuse after %d MiB", entries, time.Since(renderStart).Round(time.Millisecond), ms.HeapInuse>>20)
}
