//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

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

// istioSidecarConfig writes the OPA configuration of the OPA-Envoy sidecar
// in deploy/istio/workload.yaml (its ConfigMap) to a file, as the pod
// mounts it.
func istioSidecarConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "istio", "workload.yaml"))
	require.NoError(t, err)
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var cm corev1.ConfigMap
		require.NoError(t, yaml.Unmarshal([]byte(doc), &cm))
		if cm.Kind == "ConfigMap" {
			file := filepath.Join(t.TempDir(), "istio-discovery.yaml")
			require.NoError(t, os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600))
			return file
		}
	}
	t.Fatal("deploy/istio/workload.yaml has no ConfigMap")
	return ""
}

// The Istio sidecar's own OPA configuration against the collector's bundle
// server, per callee: through the discovery bundle a sidecar holds its
// callee's bundle, long-polled, so a new revision is enforced within
// seconds although the polling delay is a minute; the sidecar of a callee
// not seen yet is audited through the unseen bundle, and switches to its
// own bundle within seconds of its first publication.
func TestE2EServeIstioSidecar(t *testing.T) {
	serveAddr := freePort(t)
	c := startConfigured(t, map[string]any{
		"output":         map[string]any{"per_callee": true},
		"serve":          map[string]any{"endpoint": serveAddr},
		"unseen_callees": "audit",
	})
	base := "http://" + serveAddr
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/12"})
	require.Eventually(t, func() bool { return fetch(t, base+"/discovery.tar.gz", "", "").status == http.StatusOK }, waitFor, 100*time.Millisecond)

	config := istioSidecarConfig(t)
	sidecar := func(account string) (rest string, conn *grpc.ClientConn) {
		rest, grpcAddr := startOPAEnvoy(t, config, []string{"TRUST_DOMAIN=example.org", "POD_NAMESPACE=bank", "POD_SERVICE_ACCOUNT=" + account},
			"services.otelcol-authz.url="+base, "discovery.polling.min_delay_seconds=60", "discovery.polling.max_delay_seconds=120")
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return rest, conn
	}
	rest, conn := sidecar("balances")
	require.Eventually(t, func() bool { return slices.Equal(calleesLoaded(t, rest), []string{balances}) }, waitFor, 100*time.Millisecond,
		"the sidecar never loaded its own bundle")
	seen := opatest.Request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: balances, Method: "GET", Path: "/balances/12"}
	require.Eventually(t, func() bool { return checkDecision(t, conn, seen) == codes.OK }, waitFor, 100*time.Millisecond)
	next := opatest.Request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: balances, Method: "GET", Path: "/balances/export"}
	assert.Equal(t, codes.PermissionDenied, checkDecision(t, conn, next))
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/export"})
	require.Eventually(t, func() bool { return checkDecision(t, conn, next) == codes.OK }, 8*time.Second, 20*time.Millisecond,
		"the callee's next revision did not reach its sidecar within seconds")

	freshID := "spiffe://example.org/ns/bank/sa/fresh"
	freshRest, freshConn := sidecar("fresh")
	first := opatest.Request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: freshID, Method: "GET", Path: "/fresh/1"}
	require.Eventually(t, func() bool { return checkDecision(t, freshConn, first) == codes.OK }, waitFor, 100*time.Millisecond,
		"a callee not seen yet is audited, so that its access can be learned")
	sendAccesses(t, c.otlp, access{freshID, frontend, "GET", "/fresh/1"})
	require.Eventually(t, func() bool { return slices.Equal(calleesLoaded(t, freshRest), []string{freshID}) }, 8*time.Second, 20*time.Millisecond,
		"the new callee's sidecar did not switch to its own bundle within seconds")
	assert.Equal(t, codes.OK, checkDecision(t, freshConn, first))
	assert.Equal(t, codes.PermissionDenied, checkDecision(t, freshConn, opatest.Request{NoHeader: true, SourcePrincipal: payments, DestinationPrincipal: freshID, Method: "GET", Path: "/fresh/1"}))
}
