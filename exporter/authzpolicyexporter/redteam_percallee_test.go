package authzpolicyexporter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// atErr is rollout.at for flushes that may fail: it returns the flush's
// error instead of failing the test.
func (r *rollout) atErr(d time.Duration, tds ...ptrace.Traces) error {
	r.t.Helper()
	r.clock = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC).Add(d)
	for _, td := range tds {
		stampAt(td, r.clock)
		require.NoError(r.t, r.e.consumeTraces(context.Background(), td))
	}
	return r.e.flush(context.Background())
}

// A destination whose one path segment is longer than a file name may be
// (a valid SPIFFE ID: only its whole length is capped) could never be
// written on a file output; had the publisher stopped at it, no callee
// sorted after it would get a newer bundle, and balances' own bundle
// would keep the grant that expired from the full bundle. It is refused,
// and the others are written.
func TestRedteamPerCalleeUnwritableCalleeFreezesNoOther(t *testing.T) {
	r := newRollout(t, func(c *Config) {
		c.Output.PerCallee = true
		c.Window = 2 * time.Hour
	})
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}
	r.at(0, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	r.at(61*time.Minute, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	own, _ := calleeBundle(t, r.dir, balances)
	require.True(t, own.Allowed(seen))

	// Anyone whose spans reach the collector can name such a destination.
	hostile := "spiffe://example.org/" + strings.Repeat("a", 300)
	// Every flush fails from now on, the final one at shutdown too.
	t.Cleanup(func() {
		_ = r.e.shutdown(context.Background())
		r.e = nil
	})
	for _, d := range []time.Duration{62 * time.Minute, 4 * time.Hour} {
		_ = r.atErr(d, calleeSpans(hostile, frontend, "", "/x"), calleeSpans(ledger, payments, "", "/entries"))
	}
	full := readBundle(t, r.dir)
	require.False(t, full.Allowed(seen), "balances' grant expired in the full bundle")
	own, _ = calleeBundle(t, r.dir, balances)
	assert.False(t, own.Allowed(seen), "balances' own bundle still allows what the full bundle denies: one unwritable callee blocks every later one")
}

// A callee that leaves the full bundle (here: one past max_entries, so
// never tracked by the lifecycle, whose records then expire) must not keep
// its own bundle with its old grants, nor the discovery bundle point its
// sidecar at it, while the full bundle treats it as unseen and denies.
func TestRedteamPerCalleeDroppedCalleeLosesOwnBundle(t *testing.T) {
	r := newRollout(t, func(c *Config) {
		c.Output.PerCallee = true
		c.Window = 2 * time.Hour
		c.MaxEntries = 2
		c.MaxEntriesPerCaller = 2
		c.MaxEntriesPerSource = 2
	})
	third := "spiffe://example.org/ns/bank/sa/cards"
	toThird := opatest.Request{Destination: third, Source: frontend, Method: "GET", Path: "/c"}
	r.at(0, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	// Both expire; the lifecycle still holds both callees, its limit.
	_ = r.atErr(3 * time.Hour)
	r.at(3*time.Hour+time.Minute, calleeSpans(third, frontend, "", "/c"))
	own, _ := calleeBundle(t, r.dir, third)
	require.True(t, own.Allowed(toThird))
	readDiscovery := func() string {
		_, files := opatest.Untar(t, mustRead(t, filepath.Join(r.dir, publish.DiscoveryName)))
		return string(files["/data.json"])
	}
	require.Contains(t, readDiscovery(), `"example.org/ns/bank/sa/cards":true`)

	// cards' access expires; something else is learned so that the full
	// bundle is rendered and published again.
	_ = r.atErr(6*time.Hour, calleeSpans(balances, frontend, "", "/seen"))
	full := readBundle(t, r.dir)
	require.False(t, full.Allowed(toThird), "the full bundle no longer allows cards' expired access")
	own, _ = calleeBundle(t, r.dir, third)
	assert.False(t, own.Allowed(toThird), "cards' own bundle keeps the expired grant")
	assert.NotContains(t, readDiscovery(), `"example.org/ns/bank/sa/cards":true`, "the discovery bundle still points cards' sidecar at its stale bundle")
}

// After a restart that lost the state, a callee the bundle in place
// audited is no longer known; the full bundle takes it for unseen (denied
// with unseen_callees: deny), and so must its own bundle, found in place,
// or a sidecar polling it (per-callee.yaml) would allow everything.
func TestRedteamPerCalleeRestartReplacesAuditedBundle(t *testing.T) {
	r := newRollout(t, func(c *Config) {
		c.Output.PerCallee = true
		c.Window = 2 * time.Hour
		c.UnseenCallees = "deny"
	})
	stranger := opatest.Request{NoHeader: true, DestinationPrincipal: balances, SourcePrincipal: payments, Method: "DELETE", Path: "/anything"}
	r.at(0, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	own, _ := calleeBundle(t, r.dir, balances)
	require.True(t, own.Allowed(stranger), "balances is learning")

	r.restart(true)
	// A window later, so that the shrink guard lets the bundle go.
	r.at(10*time.Minute, calleeSpans(ledger, payments, "", "/entries"))
	r.at(3*time.Hour, calleeSpans(ledger, payments, "", "/entries"))
	full := readBundle(t, r.dir)
	require.False(t, full.Allowed(stranger), "the full bundle no longer audits balances")
	own, _ = calleeBundle(t, r.dir, balances)
	assert.False(t, own.Allowed(stranger), "balances' own bundle still audits, allowing everything")
}

// An object removed or replaced out of band is written again: the
// "already written" map is trusted over the store for a few flushes only.
func TestRedteamPerCalleeDeletedObjectRestored(t *testing.T) {
	r := newRollout(t, func(c *Config) { c.Output.PerCallee = true })
	r.at(0, calleeSpans(balances, frontend, "", "/seen"))
	key, err := publish.CalleeKey(balances)
	require.NoError(t, err)
	name := filepath.Join(r.dir, filepath.FromSlash(key))
	require.NoError(t, os.Remove(name))
	for i := range 20 {
		r.at(time.Duration(i+1)*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	}
	_, err = os.Stat(name)
	assert.NoError(t, err, "balances' bundle is written again")
}

// The full bundle that added a deny rule is in place, but writing the
// callees' bundles failed (a store hiccup on one object). The next
// flushes, after a restart that lost the state, are held back by the
// shrink guard; had a held-back flush not brought the callees' bundles in
// line with the bundle in place, balances' own bundle would keep allowing
// what the deny rule, in force in the full bundle, forbids, for as long as
// the guard holds (up to a window).
func TestRedteamPerCalleeHeldBackFlushRetries(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	r := newRollout(t, func(c *Config) {
		c.Output.PerCallee = true
		c.LearningPeriod = 0
		c.Window = 2 * time.Hour
		c.OverridesFile = file
	})
	accounts := "spiffe://example.org/ns/bank/sa/accounts"
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}
	spans := []ptrace.Traces{calleeSpans(accounts, frontend, "", "/x"), calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries")}
	r.at(0, spans...)
	own, _ := calleeBundle(t, r.dir, balances)
	require.True(t, own.Allowed(seen))

	require.NoError(t, os.WriteFile(file, []byte(`deny:
  - callee: `+balances+`
    caller: "*"
    methods: ["*"]
    routes: ["/seen"]
`), 0o600))
	// accounts' object cannot be replaced for now.
	key, err := publish.CalleeKey(accounts)
	require.NoError(t, err)
	blocked := filepath.Join(r.dir, filepath.FromSlash(key))
	require.NoError(t, os.Remove(blocked))
	require.NoError(t, os.MkdirAll(filepath.Join(blocked, "x"), 0o755))
	_ = r.atErr(time.Minute, spans...)
	require.Error(t, r.atErr(2*time.Minute, spans...))
	require.False(t, readBundle(t, r.dir).Allowed(seen), "the deny rule is in the full bundle")

	// The exporter restarts (the final flush fails too: the object is
	// still blocked) and its state is lost; the store then recovers.
	r.e.shutdown(context.Background()) //nolint:errcheck
	r.e = nil
	r.restart(true)
	require.NoError(t, os.RemoveAll(blocked))
	fresh := "spiffe://example.org/ns/bank/sa/zeta"
	for _, d := range []time.Duration{3 * time.Minute, 30 * time.Minute} {
		require.NoError(t, r.atErr(d, calleeSpans(fresh, frontend, "", "/z")))
		require.False(t, readBundle(t, r.dir).Allowed(seen))
		own, _ = calleeBundle(t, r.dir, balances)
		assert.False(t, own.Allowed(seen), "at %v balances' own bundle still ignores the deny rule", d)
	}
}
