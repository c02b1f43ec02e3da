package authzpolicyexporter

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// A caller that floods one callee with distinct paths used to fill
// max_entries for everyone: once it was reached no other caller was learned.
// Each caller of a callee now has max_entries_per_caller keys: the flood
// fills its own share, is counted as caller_full, and every other caller is
// still learned and allowed, before and after the flood.
func TestFloodFromOneCallerNeverStopsAnother(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		maxEntries, perCaller int
		flood                 int
	}{
		{"defaults", 100_000, 1000, 120_000},
		{"small", 50, 10, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, dir := newTestExporter(t, func(c *Config) {
				c.FlushInterval = time.Hour
				c.MaxEntries, c.MaxEntriesPerCaller = tc.maxEntries, tc.perCaller
			})
			ctx := context.Background()
			end := pcommon.NewTimestampFromTime(time.Now())
			span := func(spans ptrace.SpanSlice, dst, src, path string) {
				s := spans.AppendEmpty()
				s.SetKind(ptrace.SpanKindServer)
				s.SetEndTimestamp(end)
				s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", istio(dst, src))
				s.Attributes().PutStr("http.request.method", "GET")
				s.Attributes().PutStr("url.path", path)
			}
			batch := func(f func(ptrace.SpanSlice)) {
				td := ptrace.NewTraces()
				f(td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans())
				require.NoError(t, e.consumeTraces(ctx, td))
			}

			batch(func(s ptrace.SpanSlice) { span(s, advVictim, advCaller, "/before") })
			batch(func(s ptrace.SpanSlice) {
				for i := 0; i < tc.flood; i++ {
					span(s, advVictim, advAttacker, "/flood/w"+strconv.Itoa(i))
				}
			})
			batch(func(s ptrace.SpanSlice) {
				span(s, advVictim, advAdmin, "/after")
				span(s, advDst("other"), advAttacker, "/elsewhere") // the flooder's share is per callee
			})

			assert.Equal(t, int64(tc.flood-tc.perCaller), e.skipped[reasonCallerFull].Load(), "flood beyond the caller's share")
			assert.Zero(t, e.skipped[reasonAggregateFull].Load(), "nobody else was crowded out")
			assert.Equal(t, tc.perCaller+3, e.agg.Len())
			held := 0
			for _, r := range e.agg.Snapshot() {
				if r.Destination == advVictim && r.Source == advAttacker {
					held++
				}
			}
			assert.Equal(t, tc.perCaller, held, "the flooder's keys for the victim")

			require.NoError(t, e.flush(ctx))
			policy := readBundle(t, dir)
			assert.True(t, policy.Allowed(get(advVictim, advCaller, "/before")))
			assert.True(t, policy.Allowed(get(advVictim, advAdmin, "/after")))
			assert.True(t, policy.Allowed(get(advDst("other"), advAttacker, "/elsewhere")))
			assert.False(t, policy.Allowed(get(advVictim, advAdmin, "/before")), "another caller's route")
			assert.False(t, policy.Allowed(opatest.Request{Destination: advVictim, Source: advCaller, Method: "POST", Path: "/before"}))
		})
	}
}

// Reaching many callees does not help: one caller holds at most
// max_entries_per_source keys in all, so it cannot fill max_entries for the
// others by spreading its flood (a red-team review did so with one identity
// and five callees).
func TestFloodAcrossCalleesNeverStopsAnother(t *testing.T) {
	e, dir := newTestExporter(t, func(c *Config) {
		c.FlushInterval = time.Hour
		c.MaxEntries, c.MaxEntriesPerCaller, c.MaxEntriesPerSource = 50, 10, 30
	})
	ctx := context.Background()
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	add := func(dst, src, path string) {
		s := spans.AppendEmpty()
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", istio(dst, src))
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", path)
	}
	for d := 0; d < 10; d++ {
		for i := 0; i < 10; i++ {
			add(advDst("many-"+strconv.Itoa(d)), advAttacker, "/f"+strconv.Itoa(i))
		}
	}
	add(advVictim, advCaller, "/ok")
	require.NoError(t, e.consumeTraces(ctx, td))
	assert.Equal(t, int64(70), e.skipped[reasonCallerFull].Load())
	assert.Zero(t, e.skipped[reasonAggregateFull].Load())
	require.NoError(t, e.flush(ctx))
	assert.True(t, readBundle(t, dir).Allowed(ok(advVictim, advCaller)))
}
