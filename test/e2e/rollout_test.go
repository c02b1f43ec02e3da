//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// waitFor bounds every wait of these tests: generous for a busy two-core
// machine, far below the test timeout.
const waitFor = 30 * time.Second

// writeCollectorConfig writes a collector configuration with a health
// check, a file_storage extension and the OTLP gRPC receiver feeding the
// exporter directly, whose settings are exporter plus storage, a 1s flush
// and output::url naming c.outDir. It fills in c's addresses and returns
// the file and the health check's address.
func writeCollectorConfig(t *testing.T, c *collector, exporter map[string]any) (file, health string) {
	t.Helper()
	c.otlp, c.outDir, health = freePort(t), t.TempDir(), freePort(t)
	settings := map[string]any{"storage": "file_storage", "flush_interval": "1s"}
	maps.Copy(settings, exporter)
	output := map[string]any{"url": "file://" + c.outDir}
	if o, ok := exporter["output"].(map[string]any); ok {
		maps.Copy(output, o)
	}
	settings["output"] = output
	cfg, err := yaml.Marshal(map[string]any{
		"extensions": map[string]any{
			"health_check": map[string]any{"endpoint": health},
			"file_storage": map[string]any{"directory": t.TempDir(), "create_directory": true},
		},
		"receivers": map[string]any{"otlp": map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": c.otlp}}}},
		"exporters": map[string]any{"authz_policy": settings},
		"service": map[string]any{
			"extensions": []string{"health_check", "file_storage"},
			"telemetry":  map[string]any{"metrics": map[string]any{"level": "none"}},
			"pipelines":  map[string]any{"traces": map[string]any{"receivers": []string{"otlp"}, "exporters": []string{"authz_policy"}}},
		},
	})
	require.NoError(t, err)
	file = filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, cfg, 0o600))
	return file, health
}

// startConfigured runs the distribution with a configuration of
// writeCollectorConfig and waits until it is healthy.
func startConfigured(t *testing.T, exporter map[string]any) *collector {
	t.Helper()
	bin := binary(t, "OTELCOL_AUTHZ_BIN")
	c := &collector{}
	file, health := writeCollectorConfig(t, c, exporter)
	c.process = startProcess(t, "collector", nil, bin, "--config", file)
	waitHTTP(t, "http://"+health+"/", 200)
	return c
}

// access is one request a callee answered with 200.
type access struct{ callee, caller, method, path string }

// sendAccesses sends one SERVER span per access over OTLP gRPC, ending now
// (a callee's learning period starts at its first span), with the
// semantic-conventions attributes and the Istio-style XFCC header the
// sample spans carry; each callee's spans under a resource whose
// service.name is the callee's service account, as Pixie's script names
// the server's service (what the first tier routes by).
func sendAccesses(t *testing.T, endpoint string, accesses ...access) {
	t.Helper()
	td := ptrace.NewTraces()
	now := time.Now()
	byCallee := map[string]ptrace.SpanSlice{}
	for i, a := range accesses {
		spans, ok := byCallee[a.callee]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", a.callee[strings.LastIndex(a.callee, "/")+1:])
			spans = rs.ScopeSpans().AppendEmpty().Spans()
			byCallee[a.callee] = spans
		}
		s := spans.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{15: byte(i + 1), 0: 0xab})
		s.SetSpanID(pcommon.SpanID{7: byte(i + 1), 0: 0xcd})
		s.SetName(a.method + " " + a.path)
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		attrs := s.Attributes()
		attrs.PutStr("http.request.method", a.method)
		attrs.PutStr("url.path", a.path)
		attrs.PutInt("http.response.status_code", 200)
		attrs.PutEmptySlice("http.request.header.x-forwarded-client-cert").AppendEmpty().SetStr("By=" + a.callee + ";URI=" + a.caller)
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	require.NoError(t, err)
	require.Zero(t, resp.PartialSuccess().RejectedSpans(), "%s", resp.PartialSuccess().ErrorMessage())
}

// published is a bundle read from the output directory.
type published struct {
	raw    []byte
	bundle bundle.Bundle
	policy *opatest.Policy
}

// revision is the bundle's manifest revision.
func (p published) revision() string { return p.bundle.Manifest.Revision }

// mode is data.envoy.authz.callees[callee].mode, "" for a callee the
// bundle does not know.
func (p published) mode(callee string) string {
	m, _ := dataAt(p.bundle.Data, "envoy", "authz", "callees", callee, "mode").(string)
	return m
}

func dataAt(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// waitForPublished polls dir/bundle.tar.gz until the bundle there satisfies
// ok, and returns it; what says what the test waited for.
func waitForPublished(t *testing.T, dir, what string, ok func(published) bool) published {
	t.Helper()
	var p published
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(filepath.Join(dir, "bundle.tar.gz"))
		if err != nil || bytes.Equal(raw, p.raw) {
			return false
		}
		b, err := bundle.NewReader(bytes.NewReader(raw)).Read()
		if err != nil {
			return false
		}
		p = published{raw: raw, bundle: b, policy: opatest.LoadBundle(t, &b)}
		return ok(p)
	}, waitFor, 100*time.Millisecond, "no bundle %s", what)
	return p
}

// wouldDeny reports whether the object decision marks r as a request the
// learned policy would deny.
func wouldDeny(t *testing.T, p *opatest.Policy, r opatest.Request) bool {
	t.Helper()
	h, _ := p.Decision(r)["response_headers_to_add"].(map[string]any)
	return h["x-authz-policy"] == "would-deny"
}

// Each callee learns in audit mode for learning_period from its own first
// span: a callee seen later is audited while the first is already
// enforced, and is enforced once its own period is over.
func TestE2ERolloutPerCalleeLearning(t *testing.T) {
	const period = 4 * time.Second
	c := startConfigured(t, map[string]any{"learning_period": period.String()})

	learnedA := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"}
	unseenA := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/summary"}
	learnedB := opatest.Request{Destination: payments, Source: frontend, Method: "POST", Path: "/payments"}
	unseenB := opatest.Request{Destination: payments, Source: balances, Method: "POST", Path: "/payments"}

	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/summary"})
	p := waitForPublished(t, c.outDir, "auditing balances", func(p published) bool { return p.mode(balances) == "audit" })
	assert.True(t, p.policy.Allowed(unseenA), "an audited callee denied")
	assert.True(t, wouldDeny(t, p.policy, unseenA), "an audited request the policy would deny is not marked")
	assert.False(t, wouldDeny(t, p.policy, learnedA), "a learned request is marked")

	p = waitForPublished(t, c.outDir, "enforcing balances", func(p published) bool { return p.mode(balances) == "enforce" })
	assert.Equal(t, "", p.mode(payments))

	// payments is seen for the first time now: its own period starts.
	sentB := time.Now()
	sendAccesses(t, c.otlp, access{payments, frontend, "POST", "/payments"})
	p = waitForPublished(t, c.outDir, "auditing payments", func(p published) bool { return p.mode(payments) == "audit" })
	assert.Equal(t, "enforce", p.mode(balances), "balances went back to audit")
	assert.True(t, p.policy.Allowed(learnedA))
	assert.False(t, p.policy.Allowed(unseenA), "an enforced callee allowed a caller never seen")
	assert.True(t, p.policy.Allowed(learnedB))
	assert.False(t, wouldDeny(t, p.policy, learnedB))
	assert.True(t, p.policy.Allowed(unseenB), "an audited callee denied")
	assert.True(t, wouldDeny(t, p.policy, unseenB), "an audited request the policy would deny is not marked")

	p = waitForPublished(t, c.outDir, "enforcing payments", func(p published) bool { return p.mode(payments) == "enforce" })
	// Its span ended just before sentB; a flush may come up to a flush
	// interval early relative to the test's clock, never a period early.
	assert.GreaterOrEqual(t, time.Since(sentB), period-time.Second, "payments was enforced before its own learning period ended")
	assert.Equal(t, "enforce", p.mode(balances))
	assert.True(t, p.policy.Allowed(learnedA))
	assert.False(t, p.policy.Allowed(unseenA))
	assert.True(t, p.policy.Allowed(learnedB))
	assert.False(t, p.policy.Allowed(unseenB), "an enforced callee allowed a caller never seen")
	assert.Equal(t, 2, strings.Count(c.log.String(), "A callee left its learning period and is now enforced"), "one log line per callee")
}

// writeAtomically replaces file with data in one rename, as a config map
// update or a careful editor does, so that the collector never reads a
// half-written file.
func writeAtomically(t *testing.T, file, data string) {
	t.Helper()
	tmp := file + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(data), 0o600))
	require.NoError(t, os.Rename(tmp, file))
}

// overridesV1 allows payments one route of balances that is never seen,
// and denies everyone one value of a learned wildcard.
const overridesV1 = `allow:
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: spiffe://example.org/ns/bank/sa/payments
    methods: [GET]
    routes: ["/balances/audit/{id:int}"]
deny:
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: "*"
    methods: ["*"]
    routes: ["/balances/0"]
`

// overridesV2 is overridesV1 without its allow rule.
const overridesV2 = `deny:
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: "*"
    methods: ["*"]
    routes: ["/balances/0"]
`

// overridesBad has a key no rule has, on line 5.
const overridesBad = `allow:
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: spiffe://example.org/ns/bank/sa/payments
    methods: [GET]
    route: ["/balances/audit/{id:int}"]
`

// The operator's allow and deny rules are applied to the learned policy,
// a bad new version of the file keeps the last good rules in force, and a
// good one replaces them at the next flush.
func TestE2EOverridesFile(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "overrides.yaml")
	writeAtomically(t, rules, overridesV1)
	c := startConfigured(t, map[string]any{
		"overrides_file": rules,
		"routes":         map[string]any{"cardinality_threshold": 3},
	})

	sendAccesses(t, c.otlp,
		access{balances, frontend, "GET", "/balances/12"},
		access{balances, frontend, "GET", "/balances/13"},
		access{balances, frontend, "GET", "/balances/14"})
	any7 := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/7"}
	zero := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/0"}
	pinned := opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/audit/5"}
	p := waitForPublished(t, c.outDir, "with a wildcard", func(p published) bool { return p.policy.Allowed(any7) })
	assert.Equal(t, "enforce", p.mode(balances))
	checkV1 := func(p published) {
		t.Helper()
		assert.True(t, p.policy.Allowed(any7), "the learned wildcard is gone")
		assert.True(t, p.policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}))
		assert.False(t, p.policy.Allowed(zero), "the deny rule does not cut its value out of the wildcard")
		assert.False(t, p.policy.Allowed(opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/0"}))
		assert.True(t, p.policy.Allowed(pinned), "the allow rule does not grant its route")
		assert.False(t, p.policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/audit/5"}),
			"the allow rule grants another caller")
		assert.False(t, p.policy.Allowed(opatest.Request{Destination: balances, Source: payments, Method: "POST", Path: "/balances/audit/5"}),
			"the allow rule grants another method")
	}
	checkV1(p)

	// A bad version: logged with the file and line, the collector keeps
	// running and publishing with the rules read before.
	writeAtomically(t, rules, overridesBad)
	require.Eventually(t, func() bool { return strings.Contains(c.log.String(), "The overrides file cannot be used") }, waitFor, 100*time.Millisecond,
		"the bad overrides file was not reported")
	assert.Contains(t, c.log.String(), rules+":5:")
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/summary"})
	summary := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"}
	p = waitForPublished(t, c.outDir, "with new access after the bad file", func(p published) bool { return p.policy.Allowed(summary) })
	checkV1(p)
	select {
	case err := <-c.exited:
		t.Fatalf("the collector exited after a bad overrides file: %v", err)
	default:
	}
	// The good version back, then the same bad one again: a new edit,
	// reported again.
	// Two publications of new access: the second flush began after the
	// first, whose spans came after the write, so it read the file.
	writeAtomically(t, rules, overridesV1)
	for _, path := range []string{"/balances/history", "/balances/limits"} {
		sendAccesses(t, c.otlp, access{balances, frontend, "GET", path})
		r := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: path}
		checkV1(waitForPublished(t, c.outDir, "allowing "+path, func(p published) bool { return p.policy.Allowed(r) }))
	}
	writeAtomically(t, rules, overridesBad)
	require.Eventually(t, func() bool { return strings.Count(c.log.String(), "The overrides file cannot be used") == 2 }, waitFor, 100*time.Millisecond,
		"a bad version that came back was not reported")

	// A good version without the allow rule: the next bundle drops it.
	writeAtomically(t, rules, overridesV2)
	p = waitForPublished(t, c.outDir, "without the allow rule", func(p published) bool { return !p.policy.Allowed(pinned) })
	assert.True(t, p.policy.Allowed(any7))
	assert.True(t, p.policy.Allowed(summary))
	assert.False(t, p.policy.Allowed(zero))
	assert.Contains(t, c.log.String(), "Read the changed overrides file")
}

// A collector whose overrides file is bad does not start, and says which
// file and line.
func TestE2EOverridesFileBadAtStart(t *testing.T) {
	bin := binary(t, "OTELCOL_AUTHZ_BIN")
	rules := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(overridesBad), 0o600))
	file, _ := writeCollectorConfig(t, &collector{}, map[string]any{"overrides_file": rules})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--config", file).CombinedOutput()
	require.NoError(t, ctx.Err(), "the collector kept running:\n%s", out)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.NotZero(t, exit.ExitCode())
	assert.Contains(t, string(out), rules+":5:", "%s", out)
}

// readJSON decodes file into v.
func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, v), "%s", file)
}

// waitForUnpacked waits until the unpacked directory's manifest names
// revision: its files are the bundle's then.
func waitForUnpacked(t *testing.T, dir, revision string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var m struct {
			Revision string `json:"revision"`
		}
		raw, err := os.ReadFile(filepath.Join(dir, ".manifest"))
		return err == nil && json.Unmarshal(raw, &m) == nil && m.Revision == revision
	}, waitFor, 100*time.Millisecond, "the unpacked directory never reached revision %s", revision)
}

type changes struct {
	Revision         string `json:"revision"`
	PreviousRevision string `json:"previous_revision"`
	Added            []struct {
		Callee, Caller, Method, Route, Origin string
	} `json:"added"`
}

// calleeDir is where the unpacked bundle keeps a callee's files.
func calleeDir(dir, callee string) string {
	return filepath.Join(dir, "envoy", "authz", "grants", filepath.FromSlash(strings.TrimPrefix(callee, "spiffe://")), "@callers")
}

// The unpacked review directory carries the change log of the bundle in
// place and each callee's evidence, and is itself a bundle that OPA reads
// and decides with exactly as with the tarball.
func TestE2EReviewDirectory(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "overrides.yaml")
	writeAtomically(t, rules, overridesV1)
	unpacked := filepath.Join(t.TempDir(), "review")
	c := startConfigured(t, map[string]any{
		"overrides_file": rules,
		"output":         map[string]any{"unpacked_dir": unpacked},
	})

	sendAccesses(t, c.otlp,
		access{balances, frontend, "GET", "/balances/summary"},
		access{payments, frontend, "POST", "/payments"},
		access{backend, payments, "POST", "/ledger/entries"})
	first := waitForPublished(t, c.outDir, "at all", func(published) bool { return true })
	waitForUnpacked(t, unpacked, first.revision())

	var log changes
	readJSON(t, filepath.Join(unpacked, "changes.json"), &log)
	assert.Equal(t, first.revision(), log.Revision)
	assert.Equal(t, "", log.PreviousRevision)
	origins := map[string]int{}
	for _, a := range log.Added {
		origins[a.Origin]++
	}
	assert.Equal(t, 1, origins["operator"], "the operator's allow rule: %+v", log.Added)
	assert.Len(t, log.Added, 4, "%+v", log.Added)

	for callee, callers := range map[string][]string{balances: {frontend, payments}, payments: {frontend}, backend: {payments}} {
		var evidence []struct {
			Caller, Method, Route, Origin string
			Count                         uint64
		}
		readJSON(t, filepath.Join(calleeDir(unpacked, callee), "evidence.json"), &evidence)
		var got []string
		for _, e := range evidence {
			got = append(got, e.Caller)
			assert.NotEmpty(t, e.Route, "%s: %+v", callee, e)
			if e.Origin != "operator" {
				assert.Equal(t, uint64(1), e.Count, "%s: %+v", callee, e)
			}
		}
		assert.ElementsMatch(t, callers, got, "evidence of %s", callee)
		assert.FileExists(t, filepath.Join(calleeDir(unpacked, callee), "data.json"))
	}

	sameDecisions(t, first, unpacked)

	// The next publication: the change log names both revisions and what
	// was added, and the directory still agrees with the tarball.
	sendAccesses(t, c.otlp, access{balances, backend, "GET", "/balances/summary"})
	newAccess := opatest.Request{Destination: balances, Source: backend, Method: "GET", Path: "/balances/summary"}
	second := waitForPublished(t, c.outDir, "with the new access", func(p published) bool { return p.policy.Allowed(newAccess) })
	waitForUnpacked(t, unpacked, second.revision())
	readJSON(t, filepath.Join(unpacked, "changes.json"), &log)
	assert.Equal(t, second.revision(), log.Revision)
	assert.Equal(t, first.revision(), log.PreviousRevision)
	if assert.Len(t, log.Added, 1) {
		assert.Equal(t, backend, log.Added[0].Caller)
		assert.Equal(t, balances, log.Added[0].Callee)
	}
	sameDecisions(t, second, unpacked)
}

// sameDecisions checks that the unpacked directory, read as a bundle the
// way `opa run -b DIR` reads it, decides like the tarball p.
func sameDecisions(t *testing.T, p published, dir string) {
	t.Helper()
	b, err := bundle.NewCustomReader(bundle.NewDirectoryLoader(dir)).Read()
	require.NoError(t, err, "the unpacked directory is not a bundle")
	assert.Equal(t, p.revision(), b.Manifest.Revision)
	fromDir := opatest.LoadBundle(t, &b)
	requests := []opatest.Request{
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"},
		{Destination: balances, Source: backend, Method: "GET", Path: "/balances/summary"},
		{Destination: balances, Source: payments, Method: "GET", Path: "/balances/audit/5"},
		{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/audit/5"},
		{Destination: balances, Source: payments, Method: "GET", Path: "/balances/0"},
		{Destination: payments, Source: frontend, Method: "POST", Path: "/payments"},
		{Destination: payments, Source: balances, Method: "POST", Path: "/payments"},
		{Destination: backend, Source: payments, Method: "POST", Path: "/ledger/entries"},
		{Destination: backend, Source: frontend, Method: "POST", Path: "/ledger/entries"},
	}
	allowed := 0
	for _, r := range requests {
		want := p.policy.Decision(r)
		assert.Equal(t, want, fromDir.Decision(r), "%+v", r)
		if want["allowed"] == true {
			allowed++
		}
	}
	// Neither all nor nothing: the comparison is not vacuous.
	assert.NotZero(t, allowed)
	assert.Less(t, allowed, len(requests))

	// The OPA CLI loads the directory as well.
	if opa := os.Getenv("OTELCOL_AUTHZ_OPA"); opa != "" {
		out, err := exec.Command(opa, "check", "--strict", "--bundle", dir).CombinedOutput()
		require.NoError(t, err, "%s", out)
		r := requests[0]
		in, err := json.Marshal(r.Input())
		require.NoError(t, err)
		cmd := exec.Command(opa, "eval", "--bundle", dir, "--stdin-input", "--format", "raw", opatest.Query)
		cmd.Stdin = bytes.NewReader(in)
		out, err = cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, fmt.Sprint(p.policy.Allowed(r)), strings.TrimSpace(string(out)))
	}
}
