package authzctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

type req = opatest.Request

func mtls(dst, src, method, path string) req {
	return req{NoHeader: true, DestinationPrincipal: dst, SourcePrincipal: src, Method: method, Path: path}
}

func xfcc(dst, src, method, path string) req {
	return req{Destination: dst, Source: src, Method: method, Path: path}
}

func grpc(dst, src, path string) req {
	r := xfcc(dst, src, "POST", path)
	r.Headers = map[string]string{"content-type": "application/grpc"}
	return r
}

// opaDecision is what OPA itself decides for r, through the test helpers
// every decision test uses.
func opaDecision(t *testing.T, p *opatest.Policy, r req) string {
	t.Helper()
	d := p.Decision(r)
	allowed := p.Allowed(r)
	require.Equal(t, allowed, d["allowed"])
	switch {
	case !allowed:
		return decisionDeny
	case d["response_headers_to_add"] != nil:
		return decisionWouldDeny
	}
	return decisionAllow
}

func kinds(x explanation) []string {
	var out []string
	for _, r := range x.Reasons {
		out = append(out, r.Kind)
	}
	return out
}

// Each near miss of the decision tests: explain prints OPA's decision,
// exits by it, and names the reason a person would look for first.
func TestExplainAgreesWithOPA(t *testing.T) {
	b := renderBundle(t, meshRecords(), meshOptions(t))
	file := writeBundle(t, b)
	policy := opatest.Load(t, b.Tarball)
	tests := []struct {
		name string
		req  req
		kind string // the first reason's kind
	}{
		{"learned literal", mtls(balances, frontend, "GET", "/balances/summary"), kindMatched},
		{"learned root", mtls(balances, frontend, "GET", "/"), kindMatched},
		{"learned wildcard", mtls(balances, frontend, "GET", "/balances/42"), kindMatched},
		{"learned wildcard, xfcc", xfcc(balances, frontend, "GET", "/balances/42"), kindMatched},
		{"query ignored", mtls(balances, frontend, "GET", "/balances/42?limit=1"), kindMatched},
		{"uuid wildcard", mtls(payments, frontend, "GET", "/payments/0b5e2c3a-1d4f-4e6a-9b8c-7d6e5f4a3b2c"), kindMatched},
		{"nested callee", mtls(ledger+"/replica", payments, "GET", "/ledger/accounts/7"), kindMatched},
		{"gRPC method", grpc(ledger, payments, "/bank.Ledger/Transfer"), kindMatched},
		{"operator allow", mtls(balances, frontend, "GET", "/healthz"), kindMatched},
		{"operator allow, pattern", mtls(payments, ops, "GET", "/debug/pprof/heap"), kindMatched},
		{"audited, learned", mtls(cart, web, "GET", "/cart/7"), kindMatched},

		{"other caller", mtls(balances, payments, "GET", "/balances/summary"), kindCallerUnknown},
		{"other callee", mtls(payments, frontend, "GET", "/balances/summary"), kindRouteUnmatched},
		{"callee without grants", mtls(vault, frontend, "GET", "/"), kindCallerUnknown},
		{"other method", mtls(balances, frontend, "PUT", "/balances/summary"), kindMethodUnknown},
		{"lower-case method", mtls(balances, frontend, "get", "/balances/summary"), kindMethodUnknown},
		{"sibling literal", mtls(balances, frontend, "GET", "/balances/balance_10"), kindRouteUnmatched},
		{"longer literal", mtls(balances, frontend, "GET", "/balances/balance_1/x"), kindRouteUnmatched},
		{"trailing slash", mtls(balances, frontend, "GET", "/balances/summary/"), kindRouteUnmatched},
		{"longer wildcard", mtls(balances, frontend, "GET", "/balances/42/admin"), kindRouteUnmatched},
		{"wrong wildcard type", mtls(balances, frontend, "GET", "/balances/admin"), kindWildcardType},
		{"encoded dot-dot", mtls(balances, frontend, "GET", "/balances/%2e%2e"), kindWildcardType},
		{"dot-dot in a wildcard slot", mtls(payments, frontend, "GET", "/payments/../status"), kindWildcardType},
		{"raw fragment", mtls(balances, frontend, "GET", "/balances/summary#x"), kindRouteUnmatched},
		{"no leading slash", mtls(balances, frontend, "GET", "balances/summary"), kindRouteUnmatched},
		{"empty path", mtls(balances, frontend, "GET", ""), kindRouteUnmatched},
		{"gRPC, other method", grpc(ledger, payments, "/bank.Ledger/Delete"), kindRouteUnmatched},
		{"gRPC, query", grpc(ledger, payments, "/bank.Ledger/Transfer?x=1"), kindRouteUnmatched},
		{"foreign trust domain caller", mtls(balances, evil, "GET", "/balances/summary"), kindCallerUnknown},
		{"foreign trust domain callee", mtls("spiffe://evil.org/ns/bank/sa/balances", frontend, "GET", "/balances/summary"), kindCalleeUnknown},
		{"spoofed header with principals", req{Destination: balances, Source: frontend, SourcePrincipal: payments, DestinationPrincipal: balances, Method: "GET", Path: "/balances/summary"}, kindCallerUnknown},
		{"source principal only", req{Destination: balances, Source: frontend, SourcePrincipal: frontend, Method: "GET", Path: "/balances/summary"}, kindCalleeIdentity},
		{"no identity", req{NoHeader: true, Method: "GET", Path: "/balances/summary"}, kindCalleeIdentity},
		{"malformed header", req{Header: "By=" + balances + ";URI=\"" + frontend, Method: "GET", Path: "/balances/summary"}, kindCalleeIdentity},
		{"ambiguous caller", req{Header: "By=" + balances + ";URI=" + frontend + ";URI=" + payments, Method: "GET", Path: "/balances/summary"}, kindCallerIdentity},
		{"callers key as identity", xfcc(balances+"/@callers", frontend, "GET", "/balances/summary"), kindCalleeUnknown},

		{"deny inside a learned wildcard", mtls(balances, frontend, "GET", "/balances/0"), kindDeniedByRule},
		{"deny of any path", mtls(payments, frontend, "DELETE", "/payments"), kindMethodUnknown},
		{"deny, audited", mtls(cart, web, "GET", "/cart/0"), kindDeniedByRule},
		{"operator allow, wrong type", mtls(balances, frontend, "GET", "/balances/abc/statement"), kindRouteUnmatched},

		{"audited, unlearned path", mtls(cart, web, "GET", "/cart/7/secret"), kindRouteUnmatched},
		{"audited, other caller", mtls(cart, frontend, "GET", "/cart/7"), kindCallerUnknown},
		{"unseen, principal", mtls(fresh, web, "GET", "/x"), kindCalleeUnknown},
		{"unseen, xfcc only", xfcc(fresh, web, "GET", "/x"), kindCalleeUnknown},
		{"unseen, modes rule enforces", mtls("spiffe://example.org/ns/shop/sa/locked", web, "GET", "/x"), kindCalleeUnknown},
		{"unseen, foreign trust domain", mtls("spiffe://other.org/ns/shop/sa/fresh", web, "GET", "/x"), kindCalleeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := opaDecision(t, policy, tt.req)
			in := writeInput(t, tt.req.Input())

			r := run(t, "", "explain", "--bundle", file, "--input", in)
			assert.Equal(t, want, r.firstLine(), "%s", r.stdout)
			assert.Equal(t, map[string]int{decisionAllow: 0, decisionWouldDeny: 0, decisionDeny: 1}[want], r.code, "%s", r.stderr)
			assert.Empty(t, r.stderr)

			r = run(t, "", "explain", "--bundle", file, "--input", in, "--json")
			var x explanation
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &x), "%s", r.stdout)
			assert.Equal(t, want, x.Decision)
			require.NotEmpty(t, x.Reasons)
			assert.Equal(t, tt.kind, x.Reasons[0].Kind, "%s", r.stdout)
			assert.Equal(t, kindMode, x.Reasons[len(x.Reasons)-1].Kind, "the callee's mode comes last")
			if want == decisionAllow {
				// Never a missing reason for what OPA allows.
				assert.Equal(t, []string{kindMatched, kindMode}, kinds(x))
			} else {
				assert.NotContains(t, kinds(x), kindMatched)
			}
		})
	}
}

// The details a person reads next: who did call, with which methods,
// the nearest routes, the deny rule, and where identities came from.
func TestExplainDetails(t *testing.T) {
	file := writeBundle(t, renderBundle(t, meshRecords(), meshOptions(t)))
	explain := func(t *testing.T, args ...string) (result, explanation) {
		t.Helper()
		r := run(t, "", append([]string{"explain", "--bundle", file}, args...)...)
		var x explanation
		require.NoError(t, json.Unmarshal([]byte(run(t, "", append([]string{"explain", "--json", "--bundle", file}, args...)...).stdout), &x))
		return r, x
	}

	r, x := explain(t, "--callee", balances, "--caller", payments, "--path", "/balances/1")
	assert.Equal(t, []string{frontend}, x.Reasons[0].Callers)
	assert.Contains(t, r.stdout, "callers seen: "+frontend)

	r, x = explain(t, "--callee", balances, "--caller", frontend, "--method", "POST", "--path", "/balances/1")
	assert.Equal(t, []string{"GET"}, x.Reasons[0].Methods)
	assert.Contains(t, r.stdout, "methods seen: GET")

	_, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/balances/balance_10")
	require.NotEmpty(t, x.Reasons[0].Nearest)
	assert.Equal(t, nearRoute{Route: "/balances/balance_1", Segments: 2, Segment: 2, Want: "balance_1", Got: "balance_10",
		Note: `segment 2 is "balance_10", the route has "balance_1"`}, x.Reasons[0].Nearest[0])

	r, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/balances/abc")
	assert.Equal(t, &wildcardMiss{Route: "/balances/{int}", Segment: 2, Type: "{int}", Value: "abc"}, x.Reasons[0].Wildcard)
	assert.Contains(t, r.stdout, `wildcard_type: {int} of /balances/{int} refused "abc" (segment 2)`)

	_, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/balances/42/admin")
	assert.Equal(t, "/balances/{int}", x.Reasons[0].Nearest[0].Route)
	assert.Equal(t, "the path has 3 segments, the route 2", x.Reasons[0].Nearest[0].Note)

	r, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/balances/0")
	assert.Equal(t, &operatorRule{Kind: "deny", Index: 1, Callee: balances, Caller: "*", Methods: []string{"*"}, Routes: []string{"/balances/0"}}, x.Reasons[0].Operator)
	assert.Contains(t, r.stdout, "denied_by_rule: operator deny rule #2: callee "+balances+", caller *, methods [*], routes [/balances/0]")

	_, x = explain(t, "--callee", payments, "--caller", frontend, "--method", "DELETE", "--path", "/payments")
	assert.Equal(t, []string{kindMethodUnknown, kindDeniedByRule, kindMode}, kinds(x))
	assert.Equal(t, []string{"/**"}, x.Reasons[1].Operator.Routes)

	r, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/healthz")
	assert.Equal(t, "allow", x.Reasons[0].Operator.Kind)
	assert.Equal(t, []string{"/healthz", "/balances/{int}/statement"}, x.Reasons[0].Operator.Routes)
	assert.Contains(t, r.stdout, "origin operator")

	r, x = explain(t, "--callee", fresh, "--caller", web, "--path", "/x")
	assert.Equal(t, decisionWouldDeny, x.Decision)
	assert.Equal(t, "audit", x.Mode)
	assert.Contains(t, r.stdout, "unseen callees: audit")
	assert.Equal(t, 0, r.code, "an audited request passes")

	r, x = explain(t, "--callee", fresh, "--caller", web, "--path", "/x", "--xfcc")
	assert.Equal(t, decisionDeny, x.Decision)
	assert.Equal(t, "xfcc", x.Identities)
	assert.Contains(t, r.stdout, "audited only when Envoy names it")

	r, x = explain(t, "--callee", ledger, "--caller", payments, "--method", "POST", "--path", "/bank.Ledger/Transfer?x=1", "--header", "content-type=application/grpc")
	assert.Equal(t, decisionDeny, x.Decision)
	r2, _ := explain(t, "--callee", ledger, "--caller", payments, "--method", "POST", "--path", "/bank.Ledger/Transfer?x=1")
	assert.Equal(t, decisionAllow, r2.firstLine(), "without the gRPC content type the query is no part of the route")

	r, x = explain(t, "--callee", balances, "--caller", frontend, "--path", "/balances/1")
	assert.Equal(t, "principals", x.Identities)
	assert.Equal(t, "enforce", x.Mode)
	assert.Equal(t, &ruleInfo{Callee: balances, Caller: frontend, Method: "GET", Route: "/balances/{int}", Origin: "learned"}, x.Reasons[0].Rule)
	assert.Equal(t, strings.Join([]string{
		"ALLOW",
		"callee   " + balances + "  (mode enforce)",
		"caller   " + frontend,
		"request  GET /balances/1",
		"identity from Envoy's principals (x-forwarded-client-cert is not read)",
		"revision " + x.Revision,
		"matched: GET /balances/{int} from " + frontend,
		"    origin learned (--review DIR shows its evidence)",
		"mode: enforce: only what was learned or an allow rule grants passes",
		"",
	}, "\n"), r.stdout)
}

// With the review directory, an allowed request's rule comes with its
// evidence, and a denied one with the removal that explains it. The
// directory is the unpacked bundle itself.
func TestExplainReview(t *testing.T) {
	opts := meshOptions(t)
	before := renderBundle(t, meshRecords(), opts)
	records := slices.DeleteFunc(meshRecords(), func(r aggregate.Record) bool { return r.Route == "/balances/summary" })
	next := renderBundle(t, records, opts)

	rules := review.Rules(next, opts.Overrides, opts.Callees)
	var prev []review.Rule
	for _, r := range before.Rules {
		prev = append(prev, review.Rule{Callee: r.Destination, Caller: r.Source, Method: r.Method, Route: r.Route.String()})
	}
	changes, _ := review.Changes(review.Input{Revision: next.Revision, PreviousRevision: before.Revision, Previous: prev, Next: rules,
		Reasons: review.Reasons{Expired: func(string, string, string) bool { return true }}})
	files := map[string][]byte{"changes.json": changes}
	for name, content := range next.Files {
		files[name] = content
	}
	for callee, evidence := range review.Evidence(rules) {
		files[render.CalleeDir(callee)+"/evidence.json"] = evidence
	}
	dir := writeUnpacked(t, files)

	r := run(t, "", "explain", "--review", dir, "--callee", balances, "--caller", frontend, "--path", "/balances/7", "--json")
	require.Equal(t, 0, r.code, "%s", r.stderr)
	var x explanation
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &x))
	assert.Equal(t, next.Revision, x.Revision, "the review directory is the bundle")
	assert.Equal(t, &ruleInfo{Callee: balances, Caller: frontend, Method: "GET", Route: "/balances/{int}", Origin: "learned",
		FirstSeen: "2026-11-01T09:30:00Z", LastSeen: "2026-11-01T10:30:00Z", Count: 3}, x.Reasons[0].Rule)
	r = run(t, "", "explain", "--review", dir, "--bundle", writeBundle(t, next), "--callee", balances, "--caller", frontend, "--path", "/balances/7")
	assert.Contains(t, r.stdout, "origin learned, first seen 2026-11-01T09:30:00Z, last seen 2026-11-01T10:30:00Z, seen 3 times")

	r = run(t, "", "explain", "--review", dir, "--callee", balances, "--caller", frontend, "--path", "/balances/summary", "--json")
	require.Equal(t, 1, r.code, "%s", r.stderr)
	x = explanation{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &x))
	assert.Equal(t, []string{kindWildcardType, kindRemoved, kindMode}, kinds(x), "{int} refused summary; the literal was removed")
	assert.Equal(t, "expired", x.Reasons[1].Reason)
	assert.Contains(t, x.Reasons[1].Message, "revision "+next.Revision+" removed GET /balances/summary from "+frontend)
}

// Bad input exits 2 with one line on stderr.
func TestExplainBadInput(t *testing.T) {
	file := writeBundle(t, renderBundle(t, bank(), render.Options{}))
	garbage := filepath.Join(t.TempDir(), "garbage.tar.gz")
	require.NoError(t, os.WriteFile(garbage, []byte("not a bundle"), 0o644))
	malformed := filepath.Join(t.TempDir(), "input.json")
	require.NoError(t, os.WriteFile(malformed, []byte(`{"attributes": {"request": {"http": {"method": "GET"`), 0o644))
	noPath := writeInput(t, map[string]any{"attributes": map[string]any{"request": map[string]any{"http": map[string]any{"method": "GET"}}}})
	ok := []string{"--callee", balances, "--caller", frontend, "--path", "/"}
	for name, args := range map[string][]string{
		"no bundle":              ok,
		"missing bundle":         append([]string{"--bundle", filepath.Join(t.TempDir(), "none")}, ok...),
		"not a bundle":           append([]string{"--bundle", garbage}, ok...),
		"invalid callee":         {"--bundle", file, "--callee", "spiffe://Example.org/x", "--caller", frontend, "--path", "/"},
		"invalid caller":         {"--bundle", file, "--callee", balances, "--caller", "frontend", "--path", "/"},
		"no path":                {"--bundle", file, "--callee", balances, "--caller", frontend},
		"no caller":              {"--bundle", file, "--callee", balances, "--path", "/"},
		"unknown flag":           append([]string{"--bundle", file, "--nope"}, ok...),
		"bad header flag":        append([]string{"--bundle", file, "--header", "nonsense"}, ok...),
		"extra argument":         append([]string{"--bundle", file, "extra"}, ok...),
		"input and flags":        append([]string{"--bundle", file, "--input", noPath}, ok...),
		"malformed input":        {"--bundle", file, "--input", malformed},
		"input without path":     {"--bundle", file, "--input", noPath},
		"missing input":          {"--bundle", file, "--input", filepath.Join(t.TempDir(), "none.json")},
		"missing review":         append([]string{"--bundle", file, "--review", filepath.Join(t.TempDir(), "none")}, ok...),
		"missing verification":   append([]string{"--bundle", file, "--verification-key", filepath.Join(t.TempDir(), "none")}, ok...),
		"unverifiable unsigned":  append([]string{"--bundle", file, "--verification-key", garbage}, ok...),
		"bundle server is down":  append([]string{"--bundle", "http://127.0.0.1:1/"}, ok...),
		"output URL has no blob": append([]string{"--bundle", "file://" + t.TempDir()}, ok...),
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, "", append([]string{"explain"}, args...)...)
			assert.Equal(t, 2, r.code, "%s", r.stdout)
			assert.Empty(t, r.stdout)
			assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		})
	}
	r := run(t, `{"attributes": []}`, "explain", "--bundle", file, "--input", "-")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "attributes.request.http")
}

// The input document from stdin.
func TestExplainInputFromStdin(t *testing.T) {
	file := writeBundle(t, renderBundle(t, bank(), render.Options{}))
	data, err := json.Marshal(xfcc(balances, frontend, "GET", "/balances/summary").Input())
	require.NoError(t, err)
	r := run(t, string(data), "explain", "--bundle", file, "--input", "-")
	assert.Equal(t, 0, r.code, "%s", r.stderr)
	assert.Equal(t, decisionAllow, r.firstLine())
	assert.Contains(t, r.stdout, "identity from x-forwarded-client-cert")
}
