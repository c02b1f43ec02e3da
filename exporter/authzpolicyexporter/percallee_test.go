package authzpolicyexporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadatatest"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// calleeBundle reads a callee's own bundle from a file output.
func calleeBundle(t *testing.T, dir, id string) (*opatest.Policy, os.FileInfo) {
	t.Helper()
	key, err := publish.CalleeKey(id)
	require.NoError(t, err)
	name := filepath.Join(dir, filepath.FromSlash(key))
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	info, err := os.Stat(name)
	require.NoError(t, err)
	return opatest.Load(t, raw), info
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	return raw
}

func calleeBundleOutcomes(t *testing.T, published, unchanged int64) []metricdata.DataPoint[int64] {
	t.Helper()
	var points []metricdata.DataPoint[int64]
	if published > 0 {
		points = append(points, metricdata.DataPoint[int64]{Value: published, Attributes: attribute.NewSet(attribute.String("outcome", "published"))})
	}
	if unchanged > 0 {
		points = append(points, metricdata.DataPoint[int64]{Value: unchanged, Attributes: attribute.NewSet(attribute.String("outcome", "unchanged"))})
	}
	return points
}

// Each callee gets its own bundle, which follows its mode, holds nothing
// of the others, is written only when it changed, and denies once its
// grants expired instead of going stale.
func TestPerCalleeBundles(t *testing.T) {
	r := newRollout(t, func(c *Config) {
		c.Output.PerCallee = true
		c.Window = 2 * time.Hour
	})
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}
	stranger := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/seen"}
	toLedger := opatest.Request{Destination: ledger, Source: payments, Method: "GET", Path: "/entries"}

	r.at(0, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	own, _ := calleeBundle(t, r.dir, balances)
	assert.True(t, own.Allowed(stranger), "balances learns")
	assert.True(t, wouldDeny(own, stranger))

	full := r.at(61*time.Minute, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	own, first := calleeBundle(t, r.dir, balances)
	assert.True(t, own.Allowed(seen))
	assert.False(t, own.Allowed(stranger), "enforced in its own bundle as in the full one")
	assert.False(t, full.Allowed(stranger))
	assert.False(t, own.Allowed(toLedger), "balances' bundle knows nothing of ledger")
	others, _ := calleeBundle(t, r.dir, ledger)
	assert.True(t, others.Allowed(toLedger))
	assert.False(t, others.Allowed(seen))
	metadatatest.AssertEqualAuthzPolicyCalleeBundles(t, r.tel, calleeBundleOutcomes(t, 4, 0), metricdatatest.IgnoreTimestamp())

	// A callee without its own bundle yet learns from the unseen bundle,
	// which the discovery bundle points its sidecar at.
	raw, err := os.ReadFile(filepath.Join(r.dir, publish.UnseenName))
	require.NoError(t, err)
	unseen := opatest.Load(t, raw)
	fresh := opatest.Request{NoHeader: true, DestinationPrincipal: "spiffe://example.org/ns/bank/sa/fresh", SourcePrincipal: frontend, Method: "GET", Path: "/x"}
	assert.True(t, wouldDeny(unseen, fresh))
	assert.False(t, unseen.Allowed(seen), "the unseen bundle has no grants")
	_, files := opatest.Untar(t, mustRead(t, filepath.Join(r.dir, publish.DiscoveryName)))
	assert.Contains(t, string(files["/data.json"]), `"example.org/ns/bank/sa/balances":true`)

	// Nothing changed: nothing is written.
	r.at(62*time.Minute, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, payments, "", "/entries"))
	_, again := calleeBundle(t, r.dir, balances)
	assert.Equal(t, first.ModTime(), again.ModTime())
	metadatatest.AssertEqualAuthzPolicyCalleeBundles(t, r.tel, calleeBundleOutcomes(t, 4, 2), metricdatatest.IgnoreTimestamp())

	// balances goes unseen for a window: its own bundle denies what it
	// allowed, ledger's is not written again.
	r.at(4*time.Hour, calleeSpans(ledger, payments, "", "/entries"))
	own, _ = calleeBundle(t, r.dir, balances)
	assert.False(t, own.Allowed(seen), "expired grants are gone from the callee's own bundle")
	metadatatest.AssertEqualAuthzPolicyCalleeBundles(t, r.tel, calleeBundleOutcomes(t, 5, 3), metricdatatest.IgnoreTimestamp())
}

// A callee whose name is reserved gets no bundle of its own, which is
// counted and logged once; the others are published.
func TestPerCalleeReservedName(t *testing.T) {
	r := newRollout(t, func(c *Config) { c.Output.PerCallee = true })
	odd := balances + "/" + publish.BundleName
	r.at(0, calleeSpans(odd, frontend, "", "/x"), calleeSpans(balances, frontend, "", "/seen"))
	full := r.at(time.Minute, calleeSpans(odd, frontend, "", "/x"), calleeSpans(balances, frontend, "", "/seen"))
	assert.True(t, full.Allowed(opatest.Request{Destination: odd, Source: frontend, Method: "GET", Path: "/x"}), "the full bundle has it")
	own, _ := calleeBundle(t, r.dir, balances)
	assert.True(t, own.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}))
	info, err := os.Stat(filepath.Join(r.dir, "callees", "example.org", "ns", "bank", "sa", "balances", publish.BundleName))
	require.NoError(t, err)
	assert.True(t, info.Mode().IsRegular(), "the reserved callee's object never stands where balances' bundle is")
	assert.Len(t, r.logs.FilterMessageSnippet("is not published: its SPIFFE ID has a segment named").All(), 1)
	metadatatest.AssertEqualAuthzPolicyCalleeBundles(t, r.tel, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(attribute.String("outcome", "published"))},
		{Value: 1, Attributes: attribute.NewSet(attribute.String("outcome", "unchanged"))},
		{Value: 2, Attributes: attribute.NewSet(attribute.String("outcome", "refused"))},
	}, metricdatatest.IgnoreTimestamp())
}
