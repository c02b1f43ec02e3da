//go:build e2e

// Package e2e runs the built otelcol-authz distribution with the drop-in
// config from deploy/, replays the sample Pixie spans over OTLP gRPC and
// checks the published bundle with OPA. `make e2e` builds what it needs.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const (
	frontend = "spiffe://example.org/ns/bank/sa/frontend"
	backend  = "spiffe://example.org/ns/bank/sa/backend"
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
)

// collector is a running distribution.
type collector struct {
	cmd     *exec.Cmd
	log     *bytes.Buffer
	otlp    string
	outDir  string
	metrics string
	exited  chan error
	stopped bool
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	bin := os.Getenv("OTELCOL_AUTHZ_BIN")
	if bin == "" {
		t.Skip("OTELCOL_AUTHZ_BIN is not set; run `make e2e`")
	}
	c := &collector{log: &bytes.Buffer{}, otlp: freePort(t), outDir: t.TempDir(), exited: make(chan error, 1)}
	health := freePort(t)
	c.metrics = freePort(t)
	metricsHost, metricsPort, _ := net.SplitHostPort(c.metrics)
	c.cmd = exec.Command(bin, "--config", filepath.Join(repoRoot(t), "deploy", "collector-config.yaml"))
	c.cmd.Env = append(os.Environ(),
		"OTLP_GRPC_ENDPOINT="+c.otlp,
		"OTLP_HTTP_ENDPOINT="+freePort(t),
		"HEALTH_CHECK_ENDPOINT="+health,
		"METRICS_HOST="+metricsHost,
		"METRICS_PORT="+metricsPort,
		"AUTHZ_FLUSH_INTERVAL=1s",
		"AUTHZ_OUTPUT_URL=file://"+c.outDir,
	)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	require.NoError(t, c.cmd.Start())
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if !c.stopped {
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("collector log:\n%s", c.log.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + health + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "collector did not become healthy")
	return c
}

// stop sends SIGTERM and waits for a clean exit.
func (c *collector) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-c.exited:
		c.stopped = true
		require.NoError(t, err, "collector did not exit cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("collector did not stop within 30s")
	}
}

// replay sends span files (the samples by default) with the documented tool.
func replay(t *testing.T, endpoint string, files ...string) {
	t.Helper()
	root := repoRoot(t)
	if len(files) == 0 {
		var err error
		files, err = filepath.Glob(filepath.Join(root, "testdata", "spans", "*.json"))
		require.NoError(t, err)
	}
	cmd := exec.Command("go", append([]string{"run", "./cmd/sendspans", "-endpoint", endpoint}, files...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, len(files), strings.Count(string(out), "sent "), "%s", out)
}

func waitForBundle(t *testing.T, dir string) []byte {
	t.Helper()
	var raw []byte
	require.Eventually(t, func() bool {
		var err error
		raw, err = os.ReadFile(filepath.Join(dir, "bundle.tar.gz"))
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "no bundle published")
	return raw
}

func TestE2EPixieSpansToBundle(t *testing.T) {
	c := startCollector(t)
	replay(t, c.otlp)
	raw := waitForBundle(t, c.outDir)

	policy := opatest.Load(t, raw)
	for _, r := range []opatest.Request{
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/31337"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"},
		{Destination: payments, Source: frontend, Method: "POST", Path: "/payments"},
		{Destination: backend, Source: payments, Method: "POST", Path: "/ledger/entries"},
		{SourcePrincipal: frontend, DestinationPrincipal: backend, NoHeader: true, Method: "GET", Path: "/healthz"},
	} {
		assert.True(t, policy.Allowed(r), "denied: %+v", r)
	}
	for _, r := range []opatest.Request{
		{Destination: payments, Source: balances, Method: "POST", Path: "/payments"},
		{Destination: backend, Source: frontend, Method: "POST", Path: "/ledger/entries"},
		{Destination: backend, Source: frontend, Method: "DELETE", Path: "/ledger/accounts/4402918833"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/admin/export"},
		{Destination: balances, Source: "spiffe://evil.org/ns/bank/sa/frontend", Method: "GET", Path: "/balances/summary"},
		{Destination: balances, Source: frontend, SourcePrincipal: payments, DestinationPrincipal: balances, Method: "GET", Path: "/balances/summary"},
	} {
		assert.False(t, policy.Allowed(r), "allowed: %+v", r)
	}

	// The OPA CLI agrees: the published bundle passes strict checks.
	if opa := os.Getenv("OTELCOL_AUTHZ_OPA"); opa != "" {
		bundlePath := filepath.Join(c.outDir, "bundle.tar.gz")
		out, err := exec.Command(opa, "check", "--strict", "--bundle", bundlePath).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}

	// Shutdown flushes once more and exits cleanly; the bundle stays.
	c.stop(t)
	after, err := os.ReadFile(filepath.Join(c.outDir, "bundle.tar.gz"))
	require.NoError(t, err)
	assert.Equal(t, raw, after, "the same aggregate must give the same bytes")
	assert.Contains(t, c.log.String(), "Published policy bundle")
}

// A configuration error stops the collector at start with the key named.
func TestE2EUnknownKeyFailsAtStart(t *testing.T) {
	bin := os.Getenv("OTELCOL_AUTHZ_BIN")
	if bin == "" {
		t.Skip("OTELCOL_AUTHZ_BIN is not set; run `make e2e`")
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  authz_policy:
    flush_every: 10s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [authz_policy]
`), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--config", cfg).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "flush_every", fmt.Sprintf("%s", out))
}

// newAccessSpans is one semantic-conventions span for an access that the
// samples do not have.
const newAccessSpans = `{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{
  "traceId":"5b8aa5a2d2c872e8321cf37308d69df2","spanId":"051581bf3cb55c13","name":"GET /balances/export",
  "kind":2,"startTimeUnixNano":"1763800000000000000","endTimeUnixNano":"1763800000001000000",
  "attributes":[
    {"key":"http.request.method","value":{"stringValue":"GET"}},
    {"key":"url.path","value":{"stringValue":"/balances/export"}},
    {"key":"http.response.status_code","value":{"intValue":"200"}},
    {"key":"http.request.header.x-forwarded-client-cert","value":{"arrayValue":{"values":[
      {"stringValue":"By=spiffe://example.org/ns/bank/sa/balances;URI=spiffe://example.org/ns/bank/sa/frontend"}]}}}
  ]}]}]}]}`

// opaAllows asks a running OPA's REST API for the decision.
func opaAllows(t *testing.T, addr string, r opatest.Request) bool {
	t.Helper()
	body, err := json.Marshal(map[string]any{"input": r.Input()})
	require.NoError(t, err)
	resp, err := http.Post("http://"+addr+"/v1/data/envoy/authz/allow", "application/json", bytes.NewReader(body))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Result bool `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return false
	}
	return out.Result
}

// OPA, configured with deploy/opa-config.yaml, polls the published bundle
// over HTTP, enforces it, and picks up the next publication.
func TestE2EOPAPollsBundle(t *testing.T) {
	opa := os.Getenv("OTELCOL_AUTHZ_OPA")
	if opa == "" {
		t.Skip("OTELCOL_AUTHZ_OPA is not set; run `make e2e`")
	}
	c := startCollector(t)
	bundles := httptest.NewServer(http.FileServer(http.Dir(c.outDir)))
	defer bundles.Close()

	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opaLog bytes.Buffer
	cmd := exec.CommandContext(ctx, opa, "run", "--server", "--addr", addr,
		"--config-file", filepath.Join(repoRoot(t), "deploy", "opa-config.yaml"),
		"--set", "services.authz.url="+bundles.URL,
		"--set", "bundles.authz.polling.min_delay_seconds=1",
		"--set", "bundles.authz.polling.max_delay_seconds=2")
	cmd.Stdout, cmd.Stderr = &opaLog, &opaLog
	require.NoError(t, cmd.Start())
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("opa log:\n%s", opaLog.String())
		}
	}()

	replay(t, c.otlp)
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}
	require.Eventually(t, func() bool { return opaAllows(t, addr, seen) }, 30*time.Second, 200*time.Millisecond,
		"OPA never allowed an observed request")
	for _, r := range []opatest.Request{
		{Destination: balances, Source: payments, Method: "GET", Path: "/balances/12"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12/x"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"},
	} {
		assert.False(t, opaAllows(t, addr, r), "allowed: %+v", r)
	}

	// New traffic: the next flush publishes a new revision and OPA's next
	// poll enforces it.
	extra := filepath.Join(t.TempDir(), "new-access.json")
	require.NoError(t, os.WriteFile(extra, []byte(newAccessSpans), 0o600))
	replay(t, c.otlp, extra)
	export := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"}
	require.Eventually(t, func() bool { return opaAllows(t, addr, export) }, 30*time.Second, 200*time.Millisecond,
		"OPA never picked up the second publication")
	assert.True(t, opaAllows(t, addr, seen))
}
