package serve

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tinyBundle(t *testing.T, revision string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"/.manifest": `{"revision":"` + revision + `","roots":["x"]}`,
		"/data.json": `{"x":{}}`,
	} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

// opaRequests runs OPA's own bundle downloader against the server for d
// with long_polling_timeout_seconds set to wait, and counts its requests.
func opaRequests(t *testing.T, wait int64, d time.Duration) int64 {
	t.Helper()
	s := New(10, time.Second)
	var n atomic.Int64
	s.Observe = func(Outcome) { n.Add(1) }
	s.Set("bundle.tar.gz", "r1", tinyBundle(t, "r1"))
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close()
	client, err := rest.New([]byte(`{"url":"`+hs.URL+`"}`), nil)
	require.NoError(t, err)
	min, max := int64(60), int64(120)
	cfg := download.Config{Polling: download.PollingConfig{MinDelaySeconds: &min, MaxDelaySeconds: &max, LongPollingTimeoutSeconds: &wait}}
	require.NoError(t, cfg.ValidateAndInjectDefaults())
	dl := download.New(cfg, client, "/bundle.tar.gz").WithCallback(func(context.Context, download.Update) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	dl.Start(ctx)
	time.Sleep(d)
	cancel()
	dl.Stop(context.Background())
	return n.Load()
}

// OPA's real downloader: with long_polling_timeout_seconds: 30 it asks
// twice in a second (the download, then one held request); so it does with
// a value OPA accepts beyond uint32 seconds, which the server once read as
// "no wait" and answered at once, again and again.
func TestRedteamOPADoesNotBusyLoopOnHugeWait(t *testing.T) {
	normal := opaRequests(t, 30, time.Second)
	assert.LessOrEqual(t, normal, int64(3), "long polling as it should be")
	huge := opaRequests(t, 1<<32, time.Second)
	t.Logf("OPA requests in one second: wait=30: %d, wait=2^32: %d", normal, huge)
	assert.LessOrEqual(t, huge, int64(3), "OPA busy-loops: each long-poll request is answered 304 at once")
}
