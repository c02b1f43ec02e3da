package authzpolicyexporter

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
)

// After a restart the server hands out what the output holds: the bundle
// at once, the callees' objects once the loop has made them again.
func TestRedteamHoldsServeAfterRestart(t *testing.T) {
	addr := loopbackPort(t)
	dir := t.TempDir()
	mk := func() *authzExporter {
		cfg := createDefaultConfig().(*Config)
		cfg.Output.URL = "file://" + dir
		cfg.Output.PerCallee = true
		cfg.Serve.NetAddr.Endpoint = addr
		e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
		require.NoError(t, err)
		require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
		return e
	}
	e := mk()
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	require.NoError(t, e.shutdown(context.Background()))

	e = mk()
	defer func() { assert.NoError(t, e.shutdown(context.Background())) }()
	calleeKey, err := publish.CalleeKey(balances)
	require.NoError(t, err)
	for _, name := range []string{publish.BundleName, calleeKey, publish.UnseenName, publish.DiscoveryName} {
		onDisk, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			status, body := httpGet(t, "http://"+addr+"/"+name)
			return status == http.StatusOK && string(body) == string(onDisk)
		}, 5*time.Second, 10*time.Millisecond, name)
	}
}

// The bundle in the output is replaced out of band (an operator copies
// revisions/<older>.tar.gz back, or restores a file output). The server
// keeps handing out what this collector last published, never what it
// did not publish; the next revision replaces both (README, "From the
// collector itself").
func TestRedteamServeKeepsWhatItPublished(t *testing.T) {
	addr := loopbackPort(t)
	e, dir := newTestExporter(t, func(c *Config) { c.Serve.NetAddr.Endpoint = addr })
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	published, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)

	older := []byte("an older bundle, rolled back by an operator")
	require.NoError(t, os.WriteFile(filepath.Join(dir, publish.BundleName), older, 0o600))
	require.NoError(t, e.flush(context.Background()))

	_, served := httpGet(t, "http://"+addr+"/"+publish.BundleName)
	assert.Equal(t, published, served)
}
