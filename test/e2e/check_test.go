//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// meshCallees is the size of the measured mesh: each callee has 5 callers
// with 10 routes each (5 literal, 5 with numeric IDs).
const meshCallees = 1000

// The mesh's bundles are rendered once per test binary, by the meshbundle
// command (render is internal to the exporter), into a directory TestMain
// removes.
var (
	meshOnce sync.Once
	meshDir  string
	meshErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if meshDir != "" {
		os.RemoveAll(meshDir)
	}
	os.Exit(code)
}

func meshBundles(tb testing.TB) string {
	tb.Helper()
	meshOnce.Do(func() {
		if meshDir, meshErr = os.MkdirTemp("", "authz-mesh-"); meshErr != nil {
			return
		}
		cmd := exec.Command("go", "run", "./exporter/authzpolicyexporter/internal/meshbundle",
			"-callees", strconv.Itoa(meshCallees), "-out", meshDir)
		cmd.Dir = repoRoot(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			meshErr = fmt.Errorf("meshbundle: %w\n%s", err, out)
		}
	})
	require.NoError(tb, meshErr)
	return meshDir
}

// meshCheck is one entry of meshbundle's checks.json.
type meshCheck struct {
	Name    string          `json:"name"`
	Request opatest.Request `json:"request"`
	Learned bool            `json:"learned"`
	Trivial bool            `json:"trivial"`
}

// sidecar is an opa-envoy-plugin process enforcing one bundle. It loads
// the bundle from a local file with --bundle, which activates it as a
// bundle service's download would; the download itself is not measured.
type sidecar struct {
	name    string
	trivial bool // decides as the one-comparison baseline
	proc    *process
	rest    string
	client  authv3.AuthorizationClient
	latency []time.Duration
	loaded  memory
}

func startSidecar(tb testing.TB, name, bundleFile string, trivial bool) *sidecar {
	tb.Helper()
	bin := binary(tb, "OTELCOL_AUTHZ_OPA_ENVOY")
	s := &sidecar{name: name, trivial: trivial, rest: freePort(tb)}
	grpcAddr := freePort(tb)
	s.proc = startProcess(tb, "opa-envoy-plugin ("+name+")", nil, bin, "run", "--server", "--addr", s.rest,
		"--set", "plugins.envoy_ext_authz_grpc.addr="+grpcAddr, "--bundle", bundleFile)
	waitHTTP(tb, "http://"+s.rest+"/health", http.StatusOK)
	waitTCP(tb, grpcAddr)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(tb, err)
	tb.Cleanup(func() { conn.Close() })
	s.client = authv3.NewAuthorizationClient(conn)
	return s
}

// memory is a sidecar's in bytes: resident set now and at its peak (from
// /proc), and Go heap in use (from its Prometheus /metrics).
type memory struct{ rss, hwm, heap float64 }

func (s *sidecar) memory(tb testing.TB) memory {
	tb.Helper()
	var m memory
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.cmd.Process.Pid))
	require.NoError(tb, err)
	for line := range strings.Lines(string(status)) {
		if name, kb, ok := strings.Cut(line, ":"); ok && (name == "VmRSS" || name == "VmHWM") {
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 64)
			require.NoError(tb, err, "%s", line)
			if name == "VmRSS" {
				m.rss = v * 1024
			} else {
				m.hwm = v * 1024
			}
		}
	}
	resp, err := http.Get("http://" + s.rest + "/metrics")
	require.NoError(tb, err)
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			m.heap, err = strconv.ParseFloat(v, 64)
			require.NoError(tb, err)
		}
	}
	require.NotZero(tb, m.rss, "no VmRSS in /proc status")
	require.NotZero(tb, m.heap, "no go_memstats_heap_inuse_bytes in /metrics")
	return m
}

// checkRun is three sidecars of one callee in a mesh of meshCallees: one
// holding the whole mesh's learned bundle, one the callee's own, one the
// one-comparison baseline. Each round sends the same request to all three,
// in a rotating order, one request at a time: on a shared machine only the
// ratios between them are stable.
type checkRun struct {
	sidecars []*sidecar
	checks   []meshCheck
	requests []*authv3.CheckRequest
}

func startCheckRun(tb testing.TB) *checkRun {
	tb.Helper()
	dir := meshBundles(tb)
	raw, err := os.ReadFile(filepath.Join(dir, "checks.json"))
	require.NoError(tb, err)
	r := &checkRun{}
	require.NoError(tb, json.Unmarshal(raw, &r.checks))
	for _, c := range r.checks {
		r.requests = append(r.requests, checkRequest(c.Request))
	}
	for _, s := range []struct {
		name, file string
		trivial    bool
	}{{"full", "full.tar.gz", false}, {"callee", "callee.tar.gz", false}, {"trivial", "trivial.tar.gz", true}} {
		r.sidecars = append(r.sidecars, startSidecar(tb, s.name, filepath.Join(dir, s.file), s.trivial))
	}
	for _, s := range r.sidecars {
		s.loaded = s.memory(tb)
	}
	return r
}

// round sends the i-th round's request to every sidecar, times each Check
// and fails on a wrong decision.
func (r *checkRun) round(tb testing.TB, ctx context.Context, i int, timed bool) {
	c, req := r.checks[i%len(r.checks)], r.requests[i%len(r.checks)]
	for j := range r.sidecars {
		s := r.sidecars[(i+j)%len(r.sidecars)]
		start := time.Now()
		resp, err := s.client.Check(ctx, req)
		took := time.Since(start)
		if err != nil {
			tb.Fatalf("%s: Check %s: %v", s.name, c.Name, err)
		}
		want := c.Learned
		if s.trivial {
			want = c.Trivial
		}
		if got := codes.Code(resp.GetStatus().GetCode()) == codes.OK; got != want {
			tb.Fatalf("%s: %s: allowed %v, want %v", s.name, c.Name, got, want)
		}
		if timed {
			s.latency = append(s.latency, took)
		}
	}
}

// warmRounds untimed rounds come first: connections, OPA's caches.
const warmRounds = 200

func (r *checkRun) warm(tb testing.TB, ctx context.Context) {
	for i := range warmRounds {
		r.round(tb, ctx, i, false)
	}
}

// figure is one measured value in a Go benchmark unit: <sidecar>-<what>.
type figure struct {
	unit  string
	value float64
}

// figures are the latency percentiles of the timed rounds and each
// sidecar's memory after loading and now.
func (r *checkRun) figures(tb testing.TB) []figure {
	tb.Helper()
	var out []figure
	for _, s := range r.sidecars {
		slices.Sort(s.latency)
		for _, p := range []int{50, 90, 99} {
			out = append(out, figure{fmt.Sprintf("%s-p%d-ns", s.name, p), float64(s.latency[len(s.latency)*p/100].Nanoseconds())})
		}
		now := s.memory(tb)
		out = append(out,
			figure{s.name + "-load-rss-bytes", s.loaded.rss},
			figure{s.name + "-rss-bytes", now.rss},
			figure{s.name + "-hwm-bytes", now.hwm},
			figure{s.name + "-heap-bytes", now.heap})
	}
	return out
}

// Through opa-envoy-plugin, Check as Envoy sends it, on one callee of a
// 1000-callee mesh: the learned bundles decide every request right. The
// latency and memory it logs are measurements, not assertions; `make bench`
// runs the same as BenchmarkCheck, longer.
func TestE2ECheckThroughOPAEnvoy(t *testing.T) {
	r := startCheckRun(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.warm(t, ctx)
	for i := range 40 * len(r.checks) {
		r.round(t, ctx, i, true)
	}
	values := map[string]float64{}
	for _, f := range r.figures(t) {
		values[f.unit] = f.value
	}
	t.Logf("%d Checks per sidecar, %d callees; ratios to the one-comparison policy", len(r.sidecars[0].latency), meshCallees)
	for _, s := range r.sidecars {
		p50 := values[s.name+"-p50-ns"]
		rss := values[s.name+"-rss-bytes"]
		t.Logf("%-8s Check p50 %.2f ms (%.2fx), p90 %.2f ms, p99 %.2f ms; RSS %.0f MiB loaded, %.0f MiB after (%.2fx), peak %.0f MiB; Go heap %.0f MiB",
			s.name, p50/1e6, p50/values["trivial-p50-ns"], values[s.name+"-p90-ns"]/1e6, values[s.name+"-p99-ns"]/1e6,
			values[s.name+"-load-rss-bytes"]/(1<<20), rss/(1<<20), rss/values["trivial-rss-bytes"],
			values[s.name+"-hwm-bytes"]/(1<<20), values[s.name+"-heap-bytes"]/(1<<20))
	}
}

// BenchmarkCheck is the same measurement for `make bench`: b.N rounds,
// reported as percentiles and memory per sidecar; run it with -benchtime
// Nx for a fixed count.
func BenchmarkCheck(b *testing.B) {
	r := startCheckRun(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r.warm(b, ctx)
	i := 0
	for b.Loop() {
		r.round(b, ctx, i, true)
		i++
	}
	for _, f := range r.figures(b) {
		b.ReportMetric(f.value, f.unit)
	}
}
