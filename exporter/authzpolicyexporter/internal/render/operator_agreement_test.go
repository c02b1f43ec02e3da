package render

import (
	"context"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// ruleCase is one operator rule, as its file states it, and one request
// whose sides Envoy names (an empty side has no identity).
type ruleCase struct {
	deny bool
	// listed puts the callee in the bundle's callees (when it is a valid
	// ID); otherwise it is unseen.
	listed                         bool
	callee, caller, methods, route string // methods comma-separated
	dst, src, method, path         string
}

// check evaluates the rule in a bundle with no learned grants: an allow
// rule for an enforced callee, where OPA allows iff the Go matcher
// matches; or a deny rule for an audited callee, where OPA denies iff it
// matches. A deny also matches a request with no caller identity when its
// caller is "*", and may match identities Go rejects as not canonical
// (failing closed); an allow never does.
func (c ruleCase) check(t *testing.T) {
	rule := map[string]any{
		"callee": c.callee, "caller": c.caller,
		"methods": strings.Split(c.methods, ","), "routes": []string{c.route},
	}
	kind := "allow"
	if c.deny {
		kind = "deny"
	}
	text, err := yaml.Marshal(map[string]any{kind: []any{rule}})
	if err != nil {
		t.Skip(err)
	}
	set, err := overrides.Parse("rules.yaml", text)
	if err != nil {
		return // not a rule; the parser's own fuzz target covers it
	}
	r := append(set.Allow, set.Deny...)[0]

	mode, unseen := lifecycle.Enforce, UnseenDeny
	if c.deny {
		mode, unseen = lifecycle.Audit, UnseenAudit
	}
	opts := Options{UnseenCallees: unseen, Overrides: set}
	if c.listed {
		opts.Callees = map[string]lifecycle.Mode{c.dst: mode}
	}
	b, err := Render(context.Background(), nil, opts)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	req := request{NoHeader: true, DestinationPrincipal: c.dst, SourcePrincipal: c.src, Method: c.method, Path: c.path}
	got := opatest.Load(t, b.Tarball).Allowed(req)

	path, _, _ := strings.Cut(c.path, "?")
	var segs []string
	if rest, ok := strings.CutPrefix(path, "/"); ok {
		segs = strings.Split(rest, "/")
	}
	if !c.deny {
		if want := r.Allows(c.dst, c.src, c.method, segs); got != want {
			t.Fatalf("allow rule %s: OPA allows %v, Go matches %v", text, got, want)
		}
		return
	}
	if spiffeid.Validate(c.dst) != nil {
		return // never audited: a deny is not observable
	}
	src := c.src
	if src == "" && r.Caller.String() == "*" {
		src = "spiffe://anyone" // "*" denies a request without identity too
	}
	want := r.Denies(c.dst, src, c.method, path)
	switch {
	case want && got:
		t.Fatalf("deny rule %s: OPA allows what Go matches", text)
	case !want && !got && (c.src == "" || spiffeid.Validate(c.src) == nil):
		t.Fatalf("deny rule %s: OPA denies what Go does not match", text)
	}
}

func operatorSeeds() []ruleCase {
	const bankAny = "spiffe://example.org/ns/bank/sa/*"
	return []ruleCase{
		{false, true, balances, frontend, "GET", "/healthz", balances, frontend, "GET", "/healthz"},
		{false, true, balances, frontend, "GET", "/healthz", balances, payments, "GET", "/healthz"},
		{false, true, balances, frontend, "GET", "/healthz", balances, frontend, "POST", "/healthz"},
		{false, true, balances, frontend, "GET", "/healthz", balances, frontend, "GET", "/healthz/x?y"},
		{false, false, bankAny, "spiffe://example.org/ns/ops/**", "GET,HEAD", "/debug/{name}/**", payments, "spiffe://example.org/ns/ops/sa/p", "HEAD", "/debug/pprof"},
		{false, false, bankAny, "*", "*", "/balances/{id:int}/statement", payments, frontend, "PATCH", "/balances/7/statement"},
		{false, false, bankAny, "*", "*", "/balances/{id:int}/statement", payments, "", "GET", "/balances/7/statement"},
		{false, false, bankAny, "*", "*", "/**", payments + "/", frontend, "GET", "x"},
		{false, true, "*", "*", "*", "/**", balances, "spiffe://example.org/ns/bank/sa/..", "GET", "/"},
		{false, true, "*", "spiffe://*/ns/bank/**", "*", "/{x}", balances, "spiffe://EXAMPLE.org/ns/bank", "GET", "/a"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/balances/0"},
		{true, true, balances, "*", "*", "/balances/0", balances, "", "GET", "/balances/0"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/balances/00"},
		{true, false, bankAny, "*", "DELETE", "/**", "spiffe://example.org/ns/bank/sa/new", "", "DELETE", ""},
		{true, false, bankAny, frontend, "DELETE", "/**", payments, payments, "DELETE", "/x"},
		{true, true, "*", "spiffe://example.org/**", "*", "/admin/{id:uuid}/**", balances, frontend + "/", "GET", "/admin/0b5e2c3a-1d4f-4e6a-9b8c-7d6e5f4a3b2c"},
		// Path parameters: dropped by some servers, never a detour.
		{false, true, "*", "*", "*", "/debug/{name}/**", balances, frontend, "GET", "/debug/..;/balances/1"},
		{false, true, "*", "*", "*", "/debug/{name}/**", balances, frontend, "GET", "/debug/pprof;x=1/heap"},
		{false, true, "*", "*", "*", "/debug/{name}/**", balances, frontend, "GET", "/debug/x/;"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/balances;v=1/0"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/balances/0;jsessionid=1"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/x/..;/balances/1"},
		{true, true, balances, "*", "*", "/balances/0", balances, frontend, "GET", "/balances/;/1"},
		// "+" in a path, and literals with escapes in any spelling.
		{true, true, balances, "*", "*", "/c++/admin", balances, frontend, "GET", "/c+%2B/admin"},
		{true, true, balances, "*", "*", "/caf%C3%A9", balances, frontend, "GET", "/caf%c3%a9"},
		{true, true, balances, "*", "*", "/a%2Bb/**", balances, frontend, "GET", "/a+b/x"},
		{true, true, balances, "*", "*", "/a%20b", balances, frontend, "GET", "/a+b"},
	}
}

// FuzzOperatorRuleAgreement checks that the policy applies an operator
// rule exactly where overrides.Rule.Match does.
func FuzzOperatorRuleAgreement(f *testing.F) {
	for _, c := range operatorSeeds() {
		f.Add(c.deny, c.listed, c.callee, c.caller, c.methods, c.route, c.dst, c.src, c.method, c.path)
	}
	f.Fuzz(func(t *testing.T, deny, listed bool, callee, caller, methods, route, dst, src, method, path string) {
		for _, s := range []string{callee, caller, methods, route, dst, src, method, path} {
			if len(s) > 256 {
				t.Skip("bounded: the matchers' limits have their own tests")
			}
		}
		clean := func(s string) string { return strings.ToValidUTF8(s, "") }
		ruleCase{
			deny, listed, clean(callee), clean(caller), clean(methods), clean(route),
			clean(dst), clean(src), clean(method), clean(path),
		}.check(t)
	})
}
