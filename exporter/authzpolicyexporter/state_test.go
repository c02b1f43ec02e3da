package authzpolicyexporter

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
)

// memStorage is an in-memory storage extension for unit tests; the
// end-to-end test uses the distribution's real file_storage.
type memStorage struct {
	component.StartFunc
	component.ShutdownFunc
	mu   sync.Mutex
	data map[string][]byte
}

func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return &memClient{m: m}, nil
}

type memClient struct {
	storage.Client // only Get, Set and Close are used
	m              *memStorage
}

func (c *memClient) Get(_ context.Context, key string) ([]byte, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return c.m.data[key], nil
}

func (c *memClient) Set(_ context.Context, key string, value []byte) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.m.data[key] = value
	return nil
}

func (*memClient) Close(context.Context) error { return nil }

type hostWithExtensions struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h hostWithExtensions) GetExtensions() map[component.ID]component.Component { return h.ext }

// A restarted exporter with the same storage publishes the same bundle
// without any new traffic.
func TestRestartRestoresTheAggregate(t *testing.T) {
	dir := t.TempDir()
	storeID := component.MustNewID("file_storage")
	host := hostWithExtensions{ext: map[component.ID]component.Component{storeID: &memStorage{data: map[string][]byte{}}}}
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	cfg.Storage = &storeID

	td, now := loadSpans(t, "semconv.json")
	first, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	first.now = func() time.Time { return now }
	require.NoError(t, first.start(context.Background(), host))
	require.NoError(t, first.consumeTraces(context.Background(), td))
	require.NoError(t, first.shutdown(context.Background()))
	published, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)

	require.NoError(t, os.Remove(filepath.Join(dir, publish.BundleName)))
	second, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	second.now = func() time.Time { return now.Add(time.Minute) }
	require.NoError(t, second.start(context.Background(), host))
	assert.Equal(t, first.agg.Snapshot(), second.agg.Snapshot())
	require.NoError(t, second.flush(context.Background()))
	again, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	assert.Equal(t, published, again, "same aggregate, same bundle")
	require.NoError(t, second.shutdown(context.Background()))
}

func TestStorageMustBeAStorageExtension(t *testing.T) {
	id := component.MustNewID("not_storage")
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + t.TempDir()
	cfg.Storage = &id
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	err = e.start(context.Background(), hostWithExtensions{ext: map[component.ID]component.Component{}})
	assert.ErrorContains(t, err, `storage: extension "not_storage" is not configured`)
	err = e.start(context.Background(), hostWithExtensions{ext: map[component.ID]component.Component{id: struct {
		component.StartFunc
		component.ShutdownFunc
	}{}}})
	assert.ErrorContains(t, err, "is not a storage extension")
}

// An unreadable saved aggregate is kept aside, not overwritten, and a
// narrowed trust_domains applies to what is restored.
func TestRestoreKeepsUnreadableStateAndAppliesTrustDomains(t *testing.T) {
	storeID := component.MustNewID("file_storage")
	store := &memStorage{data: map[string][]byte{stateKey: []byte(`{"version":99}`)}}
	host := hostWithExtensions{ext: map[component.ID]component.Component{storeID: store}}
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + t.TempDir()
	cfg.Storage = &storeID
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), host))
	require.NoError(t, e.shutdown(context.Background()))
	assert.Equal(t, `{"version":99}`, string(store.data[stateKey+".unreadable"]))

	// Learn two trust domains, then restart allowing only one.
	store.data = map[string][]byte{}
	learn, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, learn.start(context.Background(), host))
	td := spansFor("/a")
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By=spiffe://other.org/b;URI=spiffe://other.org/a")
	s.Attributes().PutStr("http.request.method", "GET")
	s.Attributes().PutStr("url.path", "/a")
	require.NoError(t, learn.consumeTraces(context.Background(), td))
	require.NoError(t, learn.shutdown(context.Background()))

	narrowed := *cfg
	narrowed.TrustDomains = []string{"example.org"}
	again, err := newExporter(&narrowed, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, again.start(context.Background(), host))
	assert.Equal(t, 1, again.agg.Len())
	require.NoError(t, again.shutdown(context.Background()))
}
