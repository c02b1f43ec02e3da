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
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	*process
	otlp   string
	outDir string
}

func freePort(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		// Below the kernel's ephemeral range (32768 and up on Linux), so
		// that no outgoing connection takes the port between this check
		// and the server binding it; and never twice to this process.
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		if handedOut.addrs[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		handedOut.addrs[addr] = true
		return addr
	}
	t.Fatal("no free port on 127.0.0.1")
	return ""
}

var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// binary returns the path in an environment variable that `make e2e` sets.
func binary(t testing.TB, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; run `make e2e`", env)
		}
		t.Skipf("%s is not set; run `make e2e`", env)
	}
	return p
}

// process is a server the test started; it is killed when the test ends
// and its output is shown if the test failed.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan error
	stopped bool
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startProcess(t testing.TB, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	require.NoError(t, p.cmd.Start(), "starting %s", name)
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.log.String())
		}
	})
	return p
}

func (p *process) kill() {
	if !p.stopped {
		p.stopped = true
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		p.stopped = true
		require.NoError(t, err, "%s did not exit cleanly", p.name)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s", p.name)
	}
}

// waitHTTP waits until url answers with status want.
func waitHTTP(t testing.TB, url string, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	}, 60*time.Second, 100*time.Millisecond, "%s did not answer %d", url, want)
}

// waitTCP waits until something listens on addr.
func waitTCP(t testing.TB, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "nothing listens on %s", addr)
}

// startCollector runs the distribution with deploy/collector-config.yaml,
// publishing to outputURL (a local directory when empty).
func startCollector(t *testing.T, outputURL string, env ...string) *collector {
	t.Helper()
	return startCollectorWith(t, outputURL, nil, env...)
}

// startCollectorWith is startCollector with further config files merged
// over the drop-in config, as the collector merges its --config flags.
func startCollectorWith(t *testing.T, outputURL string, overlays []string, env ...string) *collector {
	t.Helper()
	bin := binary(t, "OTELCOL_AUTHZ_BIN")
	c := &collector{otlp: freePort(t)}
	if outputURL == "" {
		c.outDir = t.TempDir()
		outputURL = "file://" + c.outDir
	}
	health := freePort(t)
	metricsHost, metricsPort, _ := net.SplitHostPort(freePort(t))
	env = append([]string{
		"OTLP_GRPC_ENDPOINT=" + c.otlp,
		"OTLP_HTTP_ENDPOINT=" + freePort(t),
		"HEALTH_CHECK_ENDPOINT=" + health,
		"METRICS_HOST=" + metricsHost,
		"METRICS_PORT=" + metricsPort,
		"AUTHZ_FLUSH_INTERVAL=1s",
		"AUTHZ_OUTPUT_URL=" + outputURL,
		"AUTHZ_STATE_DIR=" + t.TempDir(),
		"AUTHZ_SERVE_ENDPOINT=" + freePort(t),
	}, env...)
	args := []string{"--config", filepath.Join(repoRoot(t), "deploy", "collector-config.yaml")}
	for _, o := range overlays {
		args = append(args, "--config", o)
	}
	c.process = startProcess(t, "collector", env, bin, args...)
	waitHTTP(t, "http://"+health+"/", http.StatusOK)
	return c
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
	c := startCollector(t, "")
	replay(t, c.otlp)
	raw := waitForBundle(t, c.outDir)

	policy := opatest.Load(t, raw)
	for _, r := range []opatest.Request{
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/31337"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"},
		{Destination: payments, Source: frontend, Method: "POST", Path: "/payments"},
		{Destination: backend, Source: payments, Method: "POST", Path: "/ledger/entries"},
		{SourcePrincipal: frontend, DestinationPrincipal: backend, NoHeader: true, Method: "GET", Path: "/healthz"},
		{Destination: backend, Source: payments, Method: "POST", Path: "/bank.Ledger/Transfer"},
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
		{Destination: backend, Source: frontend, Method: "POST", Path: "/bank.Ledger/Transfer"}, // answered PERMISSION_DENIED
		{Destination: backend, Source: payments, Method: "POST", Path: "/bank.Ledger/Delete"},
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

// newAccessFile writes one semantic-conventions span in which frontend
// calls balances with GET path, an access the samples do not have.
func newAccessFile(t *testing.T, path string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "new-access.json")
	require.NoError(t, os.WriteFile(f, []byte(strings.ReplaceAll(newAccessSpans, "/balances/export", path)), 0o600))
	return f
}

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

// startOPAEnvoy runs opa-envoy-plugin with a config from deploy/opa-envoy
// (or at an absolute path),
// overriding only addresses, the polling delay and the given settings. It
// returns the REST and gRPC (ext_authz) addresses.
func startOPAEnvoy(t *testing.T, config string, env []string, set ...string) (rest, grpcAddr string) {
	t.Helper()
	_, rest, grpcAddr = startOPAEnvoyProcess(t, config, env, set...)
	return rest, grpcAddr
}

// startOPAEnvoyProcess is startOPAEnvoy, with the process.
func startOPAEnvoyProcess(t *testing.T, config string, env []string, set ...string) (p *process, rest, grpcAddr string) {
	t.Helper()
	bin := binary(t, "OTELCOL_AUTHZ_OPA_ENVOY")
	rest, grpcAddr = freePort(t), freePort(t)
	// A discovery configuration's bundle is polled as the discovery bundle
	// is; a bundle set here would win over the discovered one.
	file := config
	if !filepath.IsAbs(file) {
		file = filepath.Join(repoRoot(t), "deploy", "opa-envoy", config)
	}
	polled := "bundles.authz"
	if strings.Contains(config, "discovery") {
		polled = "discovery"
	}
	args := []string{"run", "--server", "--addr", rest,
		"--config-file", file,
		"--set", "plugins.envoy_ext_authz_grpc.addr=" + grpcAddr,
		"--set", polled + ".polling.min_delay_seconds=1",
		"--set", polled + ".polling.max_delay_seconds=2"}
	for _, kv := range set {
		args = append(args, "--set", kv)
	}
	p = startProcess(t, "opa-envoy-plugin", env, bin, args...)
	waitHTTP(t, "http://"+rest+"/health", http.StatusOK)
	return p, rest, grpcAddr
}

// OPA-Envoy, configured with deploy/opa-envoy/http.yaml, polls the
// published bundle over HTTP, enforces it, and picks up the next
// publication.
func TestE2EOPAPollsBundle(t *testing.T) {
	c := startCollector(t, "")
	bundles := httptest.NewServer(http.FileServer(http.Dir(c.outDir)))
	defer bundles.Close()
	addr, _ := startOPAEnvoy(t, "http.yaml", nil, "services.authz.url="+bundles.URL)

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
	replay(t, c.otlp, newAccessFile(t, "/balances/export"))
	export := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"}
	require.Eventually(t, func() bool { return opaAllows(t, addr, export) }, 30*time.Second, 200*time.Millisecond,
		"OPA never picked up the second publication")
	assert.True(t, opaAllows(t, addr, seen))
}

// A collector killed with SIGKILL and started again with the same config
// publishes the same policy without any new traffic: the aggregate comes
// back from the file_storage extension.
func TestE2ERestartAfterSIGKILL(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	c := startCollector(t, "file://"+dir, "AUTHZ_STATE_DIR="+state)
	replay(t, c.otlp)
	published := waitForBundle(t, dir)
	require.Eventually(t, func() bool { return strings.Contains(c.log.String(), "Published policy bundle") }, 10*time.Second, 100*time.Millisecond)
	c.kill()

	again := startCollector(t, "file://"+dir, "AUTHZ_STATE_DIR="+state)
	require.Eventually(t, func() bool { return strings.Contains(again.log.String(), "Restored the aggregate") }, 10*time.Second, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // a few flushes
	after, err := os.ReadFile(filepath.Join(dir, "bundle.tar.gz"))
	require.NoError(t, err)
	assert.Equal(t, published, after, "the restarted collector changed the policy")
	assert.NotContains(t, again.log.String(), "Published policy bundle")
	assert.True(t, opatest.Load(t, after).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}))
}
