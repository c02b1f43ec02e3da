package authzpolicyexporter

import (
	"context"
	"io"
	"net"
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

// loopbackPort is a port nothing listens on now.
func loopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// The bundle server hands out exactly what the output holds, under the
// same names, and stops with the exporter.
func TestServeWhatIsPublished(t *testing.T) {
	addr := loopbackPort(t)
	e, dir := newTestExporter(t, func(c *Config) {
		c.Output.PerCallee = true
		c.Serve.NetAddr.Endpoint = addr
	})
	status, _ := httpGet(t, "http://"+addr+"/bundle.tar.gz")
	assert.Equal(t, http.StatusNotFound, status, "nothing is published yet")

	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	calleeKey, err := publish.CalleeKey(balances)
	require.NoError(t, err)
	for _, name := range []string{publish.BundleName, calleeKey, publish.UnseenName, publish.DiscoveryName} {
		status, body := httpGet(t, "http://"+addr+"/"+name)
		require.Equal(t, http.StatusOK, status, name)
		onDisk, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		require.NoError(t, err)
		assert.Equal(t, onDisk, body, name)
	}

	require.NoError(t, e.shutdown(context.Background()))
	_, err = http.Get("http://" + addr + "/bundle.tar.gz")
	assert.Error(t, err, "the server stops with the exporter")
}

// A bundle server that cannot listen fails the start, naming itself.
func TestServeEndpointInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + t.TempDir()
	cfg.Serve.NetAddr.Endpoint = l.Addr().String()
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	err = e.start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "serve:")
	require.NoError(t, e.shutdown(context.Background()))
}
