//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// served is one response of the bundle server.
type served struct {
	status      int
	etag, ctype string
	body        []byte
}

// fetch sends a GET as OPA does, with If-None-Match and Prefer when set.
func fetch(t *testing.T, url, etag, prefer string) served {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return served{resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Content-Type"), body}
}

// revisionOf is a bundle's manifest revision.
func revisionOf(t *testing.T, tarball []byte) string {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	require.NoError(t, err)
	return b.Manifest.Revision
}

// The bundle server end to end: OPA-Envoy configured with
// deploy/opa-envoy/serve.yaml polls the collector itself, with long
// polling and a polling delay of a minute, and enforces each new revision
// within seconds of its flush; a plain HTTP client sees the protocol
// (ETag, 304, the limit on held requests); after a restart the server
// hands out the bundle in place before the first flush.
func TestE2EServeBundles(t *testing.T) {
	dir := t.TempDir()
	serveAddr := freePort(t)
	settings := map[string]any{
		"output": map[string]any{"url": "file://" + dir, "per_callee": true},
		"serve":  map[string]any{"endpoint": serveAddr, "max_waiting": 3},
	}
	c := startConfigured(t, settings)
	base := "http://" + serveAddr
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/12"})
	require.Eventually(t, func() bool { return fetch(t, base+"/bundle.tar.gz", "", "").status == http.StatusOK }, waitFor, 100*time.Millisecond,
		"the bundle server never served a bundle")

	opaEnvoy, rest, grpcAddr := startOPAEnvoyProcess(t, "serve.yaml", nil, "services.collector.url="+base,
		"bundles.authz.polling.min_delay_seconds=60", "bundles.authz.polling.max_delay_seconds=120")
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}
	require.Eventually(t, func() bool { return opaAllows(t, rest, seen) }, waitFor, 100*time.Millisecond, "OPA-Envoy never loaded the served bundle")
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()

	// Each new revision reaches the sidecar through its held request: its
	// polling delay alone would take a minute.
	for _, path := range []string{"/balances/export", "/balances/audit"} {
		before := fetch(t, base+"/bundle.tar.gz", "", "").etag
		next := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: path}
		assert.Equal(t, codes.PermissionDenied, checkDecision(t, conn, next))
		sendAccesses(t, c.otlp, access{balances, frontend, "GET", path})
		require.Eventually(t, func() bool { return fetch(t, base+"/bundle.tar.gz", "", "").etag != before }, waitFor, 20*time.Millisecond)
		published := time.Now()
		require.Eventually(t, func() bool { return checkDecision(t, conn, next) == codes.OK }, 5*time.Second, 20*time.Millisecond,
			"OPA-Envoy did not enforce the new revision within seconds of its publication")
		t.Logf("%s: enforced through Check %v after the new revision was served", path, time.Since(published).Round(time.Millisecond))
	}
	assert.Equal(t, codes.OK, checkDecision(t, conn, seen))
	assert.Equal(t, codes.PermissionDenied, checkDecision(t, conn, opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/12"}))

	// The protocol, as a plain client sees it.
	full := fetch(t, base+"/bundle.tar.gz", "", "")
	assert.Equal(t, `"`+revisionOf(t, full.body)+`"`, full.etag, "the ETag is the revision")
	assert.Equal(t, "application/vnd.openpolicyagent.bundles", full.ctype)
	onDisk := waitForBundle(t, dir)
	assert.True(t, bytes.Equal(onDisk, full.body), "the server hands out what the output holds")
	assert.Equal(t, http.StatusNotModified, fetch(t, base+"/bundle.tar.gz", full.etag, "").status)
	assert.Equal(t, http.StatusOK, fetch(t, base+"/bundle.tar.gz", `"an older revision"`, "").status)
	own := fetch(t, base+"/callees/example.org/ns/bank/sa/balances/bundle.tar.gz", "", "")
	require.Equal(t, http.StatusOK, own.status, "a callee's own bundle is served under its name")
	assert.Equal(t, `"`+revisionOf(t, own.body)+`"`, own.etag)
	for path, status := range map[string]int{
		"/discovery.tar.gz": 200, "/unseen.tar.gz": 200,
		"/": 404, "/callees/": 404, "/state": 404, "/callees/example.org/ns/bank/sa/nobody/bundle.tar.gz": 404,
		"/callees/../bundle.tar.gz": 403, "/%2e%2e/%2e%2e/etc/passwd": 403,
	} {
		assert.Equal(t, status, fetch(t, base+path, "", "").status, path)
	}
	req, err := http.NewRequest(http.MethodPut, base+"/bundle.tar.gz", bytes.NewReader([]byte("x")))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// The limit on held requests (max_waiting: 3), with the sidecar gone:
	// three are held, a fourth is sent the bundle at once as a plain
	// download (which sends OPA back to its polling delay), and a new
	// revision releases the three.
	opaEnvoy.kill()
	current := fetch(t, base+"/bundle.tar.gz", "", "").etag
	held := make(chan served, 3)
	for range 3 {
		go func() { held <- fetch(t, base+"/bundle.tar.gz", current, "modes=snapshot,delta;wait=30") }()
	}
	select {
	case r := <-held:
		t.Fatalf("a request within the limit was not held: %d", r.status)
	case <-time.After(time.Second):
	}
	beyond := fetch(t, base+"/bundle.tar.gz", current, "modes=snapshot,delta;wait=30")
	assert.Equal(t, http.StatusOK, beyond.status)
	assert.Equal(t, "application/gzip", beyond.ctype)
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/limits"})
	for range 3 {
		select {
		case r := <-held:
			assert.Equal(t, http.StatusOK, r.status)
			assert.NotEqual(t, current, r.etag)
		case <-time.After(waitFor):
			t.Fatal("a held request was not released by the new revision")
		}
	}

	// Restarted, with nothing flushed for an hour: it serves the bundle
	// and the callees' objects in place at once.
	c.stop(t)
	settings["flush_interval"] = "1h"
	startConfigured(t, settings)
	again := fetch(t, base+"/bundle.tar.gz", "", "")
	require.Equal(t, http.StatusOK, again.status, "nothing served before the first flush")
	assert.True(t, bytes.Equal(waitForBundle(t, dir), again.body), "the bundle in place")
	ownInPlace, err := os.ReadFile(filepath.Join(dir, "callees", "example.org", "ns", "bank", "sa", "balances", "bundle.tar.gz"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return bytes.Equal(fetch(t, base+"/callees/example.org/ns/bank/sa/balances/bundle.tar.gz", "", "").body, ownInPlace)
	}, 10*time.Second, 50*time.Millisecond, "the callee's object in place is not served before the first flush")
}
