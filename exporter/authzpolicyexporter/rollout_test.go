package authzpolicyexporter

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadatatest"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const ledger = "spiffe://example.org/ns/bank/sa/ledger"

// calleeSpans are SERVER spans of caller calling callee on paths, from a
// workload announcing version (none when empty).
func calleeSpans(callee, caller, version string, paths ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	if version != "" {
		rs.Resource().Attributes().PutStr("service.version", version)
	}
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for _, p := range paths {
		s := spans.AppendEmpty()
		s.SetKind(ptrace.SpanKindServer)
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By="+callee+";URI="+caller)
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", p)
		s.Attributes().PutInt("http.response.status_code", 200)
	}
	return td
}

// rollout is an exporter with storage whose clock and restarts the test
// drives.
type rollout struct {
	t     *testing.T
	cfg   *Config
	host  hostWithExtensions
	dir   string
	clock time.Time
	e     *authzExporter
	logs  *observer.ObservedLogs
	tel   *componenttest.Telemetry
}

func newRollout(t *testing.T, mutate func(*Config)) *rollout {
	storeID := component.MustNewID("file_storage")
	r := &rollout{t: t, dir: t.TempDir(), clock: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	r.host = hostWithExtensions{ext: map[component.ID]component.Component{storeID: &memStorage{data: map[string][]byte{}}}}
	r.cfg = createDefaultConfig().(*Config)
	r.cfg.Output.URL = "file://" + r.dir
	r.cfg.Storage = &storeID
	r.cfg.LearningPeriod = time.Hour
	if mutate != nil {
		mutate(r.cfg)
	}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *rollout) start() {
	core, logs := observer.New(zapcore.InfoLevel)
	r.logs, r.tel = logs, componenttest.NewTelemetry()
	set := metadatatest.NewSettings(r.tel)
	set.Logger = zap.New(core)
	e, err := newExporter(r.cfg, set)
	require.NoError(r.t, err)
	e.now = func() time.Time { return r.clock }
	require.NoError(r.t, e.start(context.Background(), r.host))
	r.e = e
}

func (r *rollout) stop() {
	if r.e != nil {
		require.NoError(r.t, r.e.shutdown(context.Background()))
		r.e = nil
	}
}

func (r *rollout) restart(wipe bool) {
	r.stop()
	if wipe {
		for id := range r.host.ext {
			r.host.ext[id] = &memStorage{data: map[string][]byte{}}
		}
	}
	r.start()
}

// at moves the clock, feeds the spans (stamped now) and flushes.
func (r *rollout) at(d time.Duration, tds ...ptrace.Traces) *opatest.Policy {
	r.t.Helper()
	r.clock = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC).Add(d)
	for _, td := range tds {
		stampAt(td, r.clock)
		require.NoError(r.t, r.e.consumeTraces(context.Background(), td))
	}
	require.NoError(r.t, r.e.flush(context.Background()))
	return readBundle(r.t, r.dir)
}

func stampAt(td ptrace.Traces, at time.Time) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				sss.At(j).Spans().At(k).SetEndTimestamp(pcommon.NewTimestampFromTime(at))
			}
		}
	}
}

func modesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	p, err := render.Read(raw)
	require.NoError(t, err)
	out := map[string]string{}
	for id, m := range p.Modes {
		out[id] = string(m)
	}
	return out
}

func wouldDeny(p *opatest.Policy, r opatest.Request) bool {
	h, _ := p.Decision(r)["response_headers_to_add"].(map[string]any)
	return h["x-authz-policy"] == "would-deny"
}

// A callee first seen after another's learning period ended learns for its
// own period, in audit mode, while the first is enforced; a restart in the
// middle of its period goes on where it was.
func TestLearningPeriodPerCallee(t *testing.T) {
	r := newRollout(t, nil)
	seenBalances := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}
	strangerBalances := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/seen"}
	strangerLedger := opatest.Request{Destination: ledger, Source: payments, Method: "GET", Path: "/other"}

	p := r.at(0, calleeSpans(balances, frontend, "", "/seen"))
	assert.True(t, p.Allowed(strangerBalances), "balances learns")
	assert.True(t, wouldDeny(p, strangerBalances))

	p = r.at(61*time.Minute, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, frontend, "", "/entries"))
	assert.Equal(t, map[string]string{balances: "enforce", ledger: "audit"}, modesOf(t, r.dir))
	assert.True(t, p.Allowed(seenBalances))
	assert.False(t, p.Allowed(strangerBalances), "balances is enforced")
	assert.True(t, p.Allowed(strangerLedger), "ledger, first seen an hour later, learns")
	assert.True(t, wouldDeny(p, strangerLedger))

	r.restart(false)
	p = r.at(100*time.Minute, calleeSpans(ledger, frontend, "", "/entries"))
	assert.True(t, p.Allowed(strangerLedger), "a restart neither ends nor reopens a period")
	assert.False(t, p.Allowed(strangerBalances))

	p = r.at(122*time.Minute, calleeSpans(ledger, frontend, "", "/entries"))
	assert.Equal(t, map[string]string{balances: "enforce", ledger: "enforce"}, modesOf(t, r.dir))
	left := r.logs.FilterMessage("A callee left its learning period and is now enforced").All()
	require.Len(t, left, 1)
	assert.Equal(t, ledger, left[0].ContextMap()["callee"])
	metadatatest.AssertEqualAuthzPolicyCallees(t, r.tel, []metricdata.DataPoint[int64]{
		{Value: 0, Attributes: attribute.NewSet(attribute.String("mode", "audit"))},
		{Value: 2, Attributes: attribute.NewSet(attribute.String("mode", "enforce"))},
	}, metricdatatest.IgnoreTimestamp())
	assert.False(t, p.Allowed(strangerLedger))
	assert.True(t, p.Allowed(opatest.Request{Destination: ledger, Source: frontend, Method: "GET", Path: "/entries"}))
}

// Losing the state after a callee's period ended never puts it back in
// audit mode: the bundle in place says it is enforced.
func TestLostStateNeverReopensAudit(t *testing.T) {
	r := newRollout(t, nil)
	evil := opatest.Request{Destination: balances, Source: "spiffe://evil.org/x", Method: "DELETE", Path: "/everything"}
	r.at(0, calleeSpans(balances, frontend, "", "/seen"))
	p := r.at(61*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	require.False(t, p.Allowed(evil))

	r.restart(true)
	p = r.at(62*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	assert.False(t, p.Allowed(evil), "wiped storage must not reopen audit mode")
	assert.Equal(t, "enforce", modesOf(t, r.dir)[balances])

	// Nor does a clock stepped back into the old period.
	p = r.at(10*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	assert.False(t, p.Allowed(evil))
}

// A saved callee state that cannot be read ends the periods of the callees
// restored with the aggregate.
func TestUnreadableCalleeStateEndsPeriods(t *testing.T) {
	r := newRollout(t, nil)
	stranger := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/seen"}
	require.True(t, r.at(0, calleeSpans(balances, frontend, "", "/seen")).Allowed(stranger))
	r.stop()
	store := r.host.ext[component.MustNewID("file_storage")].(*memStorage)
	store.data[calleesKey] = []byte("{not json")
	r.start()
	p := r.at(time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	assert.False(t, p.Allowed(stranger))
	assert.Equal(t, []byte("{not json"), store.data[calleesKey+".unreadable"], "kept aside")
}

// modes rules win over the learning period, either way.
func TestModesRules(t *testing.T) {
	r := newRollout(t, func(c *Config) {
		c.Modes = []ModeConfig{
			{Callees: []string{"spiffe://example.org/ns/bank/sa/ledger"}, Mode: "enforce"},
			{Callees: []string{"spiffe://example.org/ns/bank/**"}, Mode: "audit"},
		}
	})
	p := r.at(0, calleeSpans(balances, frontend, "", "/seen"), calleeSpans(ledger, frontend, "", "/entries"))
	assert.False(t, p.Allowed(opatest.Request{Destination: ledger, Source: payments, Method: "GET", Path: "/entries"}), "enforced from the first publication")
	p = r.at(5*time.Hour, calleeSpans(balances, frontend, "", "/seen"))
	assert.True(t, p.Allowed(opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/x"}), "audited past its period")
	assert.Equal(t, map[string]string{balances: "audit", ledger: "enforce"}, modesOf(t, r.dir))
}

// A new workload version puts an enforced callee back in audit mode for
// relearn_period; the first version ever seen does not.
func TestNewVersionRelearns(t *testing.T) {
	r := newRollout(t, func(c *Config) { c.RelearnPeriod = 30 * time.Minute })
	stranger := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/new"}
	r.at(0, calleeSpans(balances, frontend, "v1", "/seen"))
	assert.False(t, r.at(61*time.Minute, calleeSpans(balances, frontend, "v1", "/seen")).Allowed(stranger))
	p := r.at(70*time.Minute, calleeSpans(balances, frontend, "v2", "/seen", "/new"))
	assert.True(t, p.Allowed(stranger), "relearning")
	metadatatest.AssertEqualAuthzPolicyRelearns(t, r.tel, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	p = r.at(101*time.Minute, calleeSpans(balances, frontend, "v2", "/seen"))
	assert.False(t, p.Allowed(stranger), "enforced again")
	assert.True(t, p.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/new"}), "what the release added was learned")
}

// Operator rules: an allow for a route never seen, a deny inside a learned
// wildcard; a bad new version of the file keeps the last good rules.
func TestOverridesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	good := `allow:
  - callee: ` + balances + `
    caller: ` + frontend + `
    methods: [GET]
    routes: ["/healthz"]
deny:
  - callee: ` + balances + `
    caller: "*"
    methods: ["*"]
    routes: ["/balances/0"]
`
	require.NoError(t, os.WriteFile(file, []byte(good), 0o600))
	unpacked := t.TempDir()
	e, dir := newTestExporter(t, func(c *Config) {
		c.OverridesFile = file
		c.Routes.Templates = []string{"/balances/{id:int}"}
		c.Output.UnpackedDir = unpacked
	})
	require.NoError(t, e.consumeTraces(context.Background(), stamped(calleeSpans(balances, frontend, "", "/balances/12", "/balances/0"))))
	require.NoError(t, e.flush(context.Background()))
	p := readBundle(t, dir)
	get := func(src, path string) opatest.Request {
		return opatest.Request{Destination: balances, Source: src, Method: "GET", Path: path}
	}
	assert.True(t, p.Allowed(get(frontend, "/balances/7")))
	assert.False(t, p.Allowed(get(frontend, "/balances/0")), "deny wins inside the learned wildcard")
	assert.True(t, p.Allowed(get(frontend, "/healthz")), "pinned though never seen")
	assert.False(t, p.Allowed(get(payments, "/healthz")))

	var changes struct {
		Added []struct{ Route, Origin string } `json:"added"`
	}
	raw, err := os.ReadFile(filepath.Join(unpacked, review.ChangesFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &changes))
	assert.Contains(t, changes.Added, struct{ Route, Origin string }{"/healthz", "operator"})
	assert.FileExists(t, filepath.Join(unpacked, render.CalleeDir(balances), review.EvidenceFile))
	opatest.ReadDir(t, unpacked) // still exactly a bundle

	// A new content is taken up when two flushes in a row read it.
	require.NoError(t, os.WriteFile(file, []byte("deny:\n  - callee: x\n"), 0o600))
	require.NoError(t, e.flush(context.Background()))
	require.NoError(t, e.flush(context.Background()))
	p = readBundle(t, dir)
	assert.True(t, p.Allowed(get(frontend, "/healthz")), "a bad file keeps the last good rules")
	assert.False(t, p.Allowed(get(frontend, "/balances/0")))

	require.NoError(t, os.WriteFile(file, []byte("deny: []\n"), 0o600))
	require.NoError(t, e.flush(context.Background()))
	assert.True(t, readBundle(t, dir).Allowed(get(frontend, "/healthz")), "not settled yet")
	require.NoError(t, e.flush(context.Background()))
	p = readBundle(t, dir)
	assert.False(t, p.Allowed(get(frontend, "/healthz")), "the allow rule is gone")
	assert.True(t, p.Allowed(get(frontend, "/balances/0")))
}

func TestBadOverridesFileStopsTheStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("allow:\n  - callee: "+balances+"\n    methods: [get]\n"), 0o600))
	cfg := createDefaultConfig().(*Config)
	cfg.OverridesFile = file
	_, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.Error(t, err)
	assert.Contains(t, err.Error(), file+":")
}

func stamped(td ptrace.Traces) ptrace.Traces {
	stampAt(td, time.Now())
	return td
}

// hookStorage runs a function when a key is first saved.
type hookStorage struct {
	memStorage
	onSet func(key string)
}

func (h *hookStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return &hookClient{memClient: memClient{m: &h.memStorage}, h: h}, nil
}

type hookClient struct {
	memClient
	h *hookStorage
}

func (c *hookClient) Set(ctx context.Context, key string, value []byte) error {
	if f := c.h.onSet; f != nil {
		c.h.onSet = nil
		f(key)
	}
	return c.memClient.Set(ctx, key, value)
}

// A span learned while a flush saves its state must not make that flush
// publish the empty aggregate it took before.
func TestSpanLearnedDuringAFlushNeverPublishesAnEmptyBundle(t *testing.T) {
	storeID := component.MustNewID("file_storage")
	store := &hookStorage{memStorage: memStorage{data: map[string][]byte{}}}
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + dir
	cfg.Storage = &storeID
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), hostWithExtensions{ext: map[component.ID]component.Component{storeID: store}}))
	store.onSet = func(string) {
		require.NoError(t, e.consumeTraces(context.Background(), stamped(calleeSpans(balances, frontend, "", "/seen"))))
	}
	require.NoError(t, e.flush(context.Background()))
	if _, err := os.Stat(filepath.Join(dir, publish.BundleName)); err == nil {
		assert.True(t, readBundle(t, dir).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}), "an empty bundle was published")
	}
	require.NoError(t, e.shutdown(context.Background()))
	assert.True(t, readBundle(t, dir).Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/seen"}))
}
