package render

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The mesh of these tests: the bank namespace is enforced, the shop
// namespace still learns (audit).
const (
	vault  = "spiffe://example.org/ns/bank/sa/vault" // enforced, its grants all gone
	web    = "spiffe://example.org/ns/shop/sa/web"
	cart   = "spiffe://example.org/ns/shop/sa/cart"
	legacy = "spiffe://example.org/ns/shop/sa/legacy" // audited, its grants all gone
	fresh  = "spiffe://example.org/ns/shop/sa/fresh"  // deployed since the last render
	ops    = "spiffe://example.org/ns/ops/sa/prober"
	alien  = "spiffe://other.org/ns/shop/sa/fresh"
)

const meshRules = `
allow:
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: spiffe://example.org/ns/bank/sa/frontend
    methods: [GET]
    routes: ["/healthz", "/balances/{id:int}/statement"]
  - callee: "spiffe://example.org/ns/*/sa/*"
    caller: "spiffe://example.org/ns/ops/**"
    methods: [GET]
    routes: ["/metrics", "/debug/{name}/**"]
  - callee: spiffe://example.org/ns/shop/sa/fresh
    caller: "*"
    methods: [GET]
    routes: ["/public/**"]
  - callee: spiffe://example.org/ns/shop/sa/cart
    caller: spiffe://example.org/ns/shop/sa/web
    methods: [GET]
    routes: ["/cart/0", "/admin/panel", "/cart/{id}/panel"]
deny:
  - callee: "spiffe://example.org/ns/bank/sa/*"
    caller: "*"
    methods: [DELETE]
    routes: ["/**"]
  - callee: spiffe://example.org/ns/bank/sa/balances
    caller: "*"
    methods: ["*"]
    routes: ["/balances/0"]
  - callee: spiffe://example.org/ns/shop/sa/cart
    caller: "*"
    methods: ["*"]
    routes: ["/cart/0"]
  - callee: "*"
    caller: "*"
    methods: ["*"]
    routes: ["/admin/**"]
`

func parseRules(t testing.TB, yaml string) *overrides.Set {
	t.Helper()
	s, err := overrides.Parse("rules.yaml", []byte(yaml))
	require.NoError(t, err)
	return s
}

func meshRecords() []aggregate.Record {
	return []aggregate.Record{
		rec(balances, frontend, "GET", "/balances/{int}"),
		rec(balances, frontend, "GET", "/balances/summary"),
		rec(balances, frontend, "GET", "/balances/0"), // denied entirely
		rec(payments, frontend, "POST", "/payments"),
		rec(payments, frontend, "DELETE", "/payments/{uuid}"), // denied entirely
		rec(cart, web, "GET", "/cart/{int}"),
		rec(cart, web, "POST", "/cart/{int}/items"),
	}
}

func meshOptions(t testing.TB) Options {
	return Options{
		CardinalityThreshold: 10,
		Callees: map[string]lifecycle.Mode{
			balances: lifecycle.Enforce, payments: lifecycle.Enforce, vault: lifecycle.Enforce,
			cart: lifecycle.Audit, legacy: lifecycle.Audit,
		},
		UnseenCallees: UnseenAudit,
		ModeRules: []lifecycle.Rule{
			{Callees: []spiffeid.Pattern{mustParsePattern(t, "spiffe://example.org/ns/shop/sa/locked")}, Mode: lifecycle.Enforce},
		},
		TrustDomains: []string{"example.org"},
		Overrides:    parseRules(t, meshRules),
	}
}

func mustParsePattern(t testing.TB, s string) spiffeid.Pattern {
	t.Helper()
	p, err := spiffeid.ParsePattern(s)
	require.NoError(t, err)
	return p
}

func renderOpts(t testing.TB, records []aggregate.Record, opts Options) *Bundle {
	t.Helper()
	b, err := Render(context.Background(), records, opts)
	require.NoError(t, err)
	return b
}

// outcome is what OPA-Envoy does with a request.
type outcome string

const (
	allowed   outcome = "allow"
	wouldDeny outcome = "would-deny" // allowed, marked by audit mode
	denied    outcome = "deny"
)

// outcomeOf evaluates both decisions and checks that they agree.
func outcomeOf(t *testing.T, p *opatest.Policy, r request) outcome {
	t.Helper()
	d := p.Decision(r)
	allow := p.Allowed(r)
	require.Equal(t, allow, d["allowed"], "boolean and object decisions differ")
	headers, marked := d["response_headers_to_add"]
	switch {
	case !allow:
		require.False(t, marked, "a denied request is marked: %v", d)
		return denied
	case marked:
		require.Equal(t, map[string]any{"x-authz-policy": "would-deny"}, headers)
		return wouldDeny
	}
	return allowed
}

// mtls is a request whose both sides Envoy names from the handshake.
func mtls(dst, src, method, path string) request {
	return request{NoHeader: true, DestinationPrincipal: dst, SourcePrincipal: src, Method: method, Path: path}
}

type modeCase struct {
	name string
	req  request
	want outcome
}

func checkOutcomes(t *testing.T, p *opatest.Policy, tests []modeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, outcomeOf(t, p, tt.req))
		})
	}
}

func TestModesMesh(t *testing.T) {
	checkOutcomes(t, opatest.Load(t, renderOpts(t, meshRecords(), meshOptions(t)).Tarball), meshCases())
}

// noSource is a request to dst whose caller has no identity.
func noSource(dst, method, path string) request {
	return request{NoHeader: true, DestinationPrincipal: dst, Method: method, Path: path}
}

// meshCases are decisions of the mesh's bundle.
func meshCases() []modeCase {
	return []modeCase{
		// Enforced: only what was learned or granted.
		{"enforced, learned literal", mtls(balances, frontend, "GET", "/balances/summary"), allowed},
		{"enforced, learned wildcard", mtls(balances, frontend, "GET", "/balances/42"), allowed},
		{"enforced, learned, xfcc", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/42"}, allowed},
		{"enforced, other caller", mtls(balances, web, "GET", "/balances/42"), denied},
		{"enforced, other method", mtls(balances, frontend, "PUT", "/balances/42"), denied},
		{"enforced, unlearned path", mtls(balances, frontend, "GET", "/balances/42/x"), denied},

		// Audited: everything allowed, marked where enforcing would deny.
		{"audited, learned", mtls(cart, web, "GET", "/cart/7"), allowed},
		{"audited, learned, xfcc", request{Destination: cart, Source: web, Method: "POST", Path: "/cart/7/items"}, allowed},
		{"audited, unlearned path", mtls(cart, web, "GET", "/cart/7/secret"), wouldDeny},
		{"audited, other caller", mtls(cart, frontend, "GET", "/cart/7"), wouldDeny},
		{"audited, no caller identity", noSource(cart, "GET", "/cart/7"), wouldDeny},

		// Known callees whose grants are all gone are not unseen.
		{"enforced without grants", mtls(vault, frontend, "GET", "/"), denied},
		{"audited without grants", mtls(legacy, web, "GET", "/"), wouldDeny},

		// Deny rules win in both modes, inside learned wildcards too.
		{"deny inside learned wildcard, enforced", mtls(balances, frontend, "GET", "/balances/0"), denied},
		{"deny neighbour of the denied literal", mtls(balances, frontend, "GET", "/balances/1"), allowed},
		{"deny inside learned wildcard, audited", mtls(cart, web, "GET", "/cart/0"), denied},
		{"deny, audited, other method", mtls(cart, web, "POST", "/cart/0"), denied},
		{"deny, audited, no caller identity", noSource(cart, "GET", "/cart/0"), denied},
		{"deny, audited, caller by xfcc", request{Destination: cart, Source: web, Method: "GET", Path: "/cart/0"}, denied},
		{"deny, audited, longer path", mtls(cart, web, "GET", "/cart/0/items"), wouldDeny},
		{"deny any callee, audited", mtls(cart, web, "GET", "/admin"), denied},
		{"deny any callee, audited, deeper", mtls(cart, web, "GET", "/admin/users/1"), denied},
		{"deny any callee, unseen", mtls(fresh, web, "GET", "/admin/x"), denied},
		{"deny any callee, unseen, no caller", noSource(fresh, "GET", "/admin/x"), denied},
		{"deny any callee, only its prefix", mtls(balances, ops, "GET", "/debug/admin"), allowed},
		{"deny beats operator allow, audited", mtls(cart, web, "GET", "/admin/panel"), denied},
		{"operator allow next to the deny", mtls(cart, web, "GET", "/cart/1/panel"), allowed},

		// DELETE /** on every bank callee, learned or operator-allowed.
		{"delete denied, learned route", mtls(payments, frontend, "DELETE", "/payments/0b5e2c3a-1d4f-4e6a-9b8c-7d6e5f4a3b2c"), denied},
		{"delete denied, root", mtls(payments, frontend, "DELETE", "/"), denied},
		{"delete denied, callee without grants", mtls(vault, frontend, "DELETE", "/x"), denied},
		{"delete denied, unknown bank callee", mtls("spiffe://example.org/ns/bank/sa/new", frontend, "DELETE", "/x"), denied},
		{"delete in shop is audited", mtls(cart, web, "DELETE", "/cart/1"), wouldDeny},
		{"post next to the delete", mtls(payments, frontend, "POST", "/payments"), allowed},

		// Operator allow: routes never observed.
		{"allow, never observed", mtls(balances, frontend, "GET", "/healthz"), allowed},
		{"allow, typed parameter", mtls(balances, frontend, "GET", "/balances/12/statement"), allowed},
		{"allow, typed parameter, wrong type", mtls(balances, frontend, "GET", "/balances/abc/statement"), denied},
		{"allow, other caller", mtls(balances, payments, "GET", "/healthz"), denied},
		{"allow, other method", mtls(balances, frontend, "POST", "/healthz"), denied},
		{"allow, sibling path", mtls(balances, frontend, "GET", "/healthy"), denied},
		{"allow, longer path", mtls(balances, frontend, "GET", "/healthz/x"), denied},
		{"allow, trailing slash", mtls(balances, frontend, "GET", "/healthz/"), denied},
		{"allow, other callee", mtls(payments, frontend, "GET", "/healthz"), denied},
		{"allow, no caller identity", noSource(balances, "GET", "/healthz"), denied},

		// Operator allow with pattern callee and caller.
		{"allow pattern, enforced callee", mtls(payments, ops, "GET", "/metrics"), allowed},
		{"allow pattern, audited callee, not marked", mtls(cart, ops, "GET", "/metrics"), allowed},
		{"allow pattern, untyped parameter", mtls(payments, ops, "GET", "/debug/pprof"), allowed},
		{"allow pattern, rest", mtls(payments, ops, "GET", "/debug/pprof/heap/1"), allowed},
		{"allow pattern, empty parameter", mtls(payments, ops, "GET", "/debug//heap"), denied},
		{"allow pattern, caller outside", mtls(payments, "spiffe://example.org/ns/opsx/sa/prober", "GET", "/metrics"), denied},
		{"allow pattern, caller deeper", mtls(payments, ops+"/replica", "GET", "/metrics"), allowed},
		{"allow pattern, callee too deep", mtls(payments+"/x", ops, "GET", "/metrics"), wouldDeny}, // unseen, audited
		{"allow pattern, delete still denied", mtls(payments, ops, "DELETE", "/metrics"), denied},

		// Unseen callees: audited only when Envoy names them, in a trust
		// domain the bundle trusts.
		{"unseen, principal", mtls(fresh, web, "GET", "/anything"), wouldDeny},
		{"unseen, principal, no caller", noSource(fresh, "GET", "/anything"), wouldDeny},
		{"unseen, operator allow for anyone", mtls(fresh, web, "GET", "/public/logo.png"), allowed},
		{"unseen, operator allow for anyone needs an identity", noSource(fresh, "GET", "/public/logo.png"), wouldDeny},
		{"unseen, xfcc only", request{Destination: fresh, Source: web, Method: "GET", Path: "/anything"}, denied},
		{"unseen, xfcc only, operator allow", request{Destination: fresh, Source: web, Method: "GET", Path: "/public/x"}, allowed},
		{"unseen, xfcc naming it under a known enforced principal", request{Destination: fresh, Source: web, DestinationPrincipal: balances, Method: "GET", Path: "/anything"}, denied},
		{"unseen, xfcc naming it under known principals", request{Destination: fresh, Source: web, DestinationPrincipal: balances, SourcePrincipal: frontend, Method: "GET", Path: "/anything"}, denied},
		{"unseen, xfcc naming it with a source principal", request{Destination: fresh, Source: web, SourcePrincipal: frontend, Method: "GET", Path: "/anything"}, denied},
		{"unseen, foreign trust domain", mtls(alien, web, "GET", "/anything"), denied},
		{"unseen, modes rule says enforce", mtls("spiffe://example.org/ns/shop/sa/locked", web, "GET", "/anything"), denied},
		{"unseen, not a SPIFFE ID", mtls("fresh", web, "GET", "/anything"), denied},
		{"unseen, trust domain only", mtls("spiffe://example.org", web, "GET", "/anything"), wouldDeny},
		{"unseen, not canonical", mtls(fresh+"/", web, "GET", "/anything"), denied},
		{"unseen, dot segment", mtls("spiffe://example.org/ns/shop/sa/..", web, "GET", "/anything"), denied},
		{"unseen, upper-case trust domain", mtls("spiffe://Example.org/ns/shop/sa/fresh", web, "GET", "/anything"), denied},
		{"unseen, not canonical, operator allow for anyone", mtls(fresh+"/", web, "GET", "/public/x"), denied},
		{"operator allow, caller not canonical", mtls(payments, ops+"/", "GET", "/metrics"), denied},
		{"operator allow, caller with dot segment", mtls(payments, ops+"/..", "GET", "/metrics"), denied},
		{"deny, caller not canonical", mtls(cart, web+"/", "GET", "/cart/0"), denied},
	}
}

// What unseen callees get without trust domains, with unseen callees
// denied, and with modes rules in their order.
func TestModesUnseenCallees(t *testing.T) {
	staging := "spiffe://example.org/ns/staging/sa/api"
	rules := []lifecycle.Rule{
		{Callees: []spiffeid.Pattern{mustParsePattern(t, staging)}, Mode: lifecycle.Enforce},
		{Callees: []spiffeid.Pattern{mustParsePattern(t, "spiffe://example.org/ns/staging/**"), mustParsePattern(t, "spiffe://other.org/**")}, Mode: lifecycle.Audit},
	}
	tests := []struct {
		name   string
		unseen string
		tds    []string
		cases  []modeCase
	}{
		{"deny by default", "", nil, []modeCase{
			{"unseen", mtls(fresh, web, "GET", "/"), denied},
			{"modes rule says audit", mtls("spiffe://example.org/ns/staging/sa/web", web, "GET", "/"), wouldDeny},
			{"modes rule says audit, xfcc only", request{Destination: "spiffe://example.org/ns/staging/sa/web", Source: web, Method: "GET", Path: "/"}, denied},
			{"first modes rule wins", mtls(staging, web, "GET", "/"), denied},
			{"second pattern of a rule", mtls(alien, web, "GET", "/"), wouldDeny},
			{"known callee keeps its mode", mtls(balances, web, "GET", "/"), denied},
		}},
		{"audit, any trust domain", UnseenAudit, nil, []modeCase{
			{"unseen", mtls(fresh, web, "GET", "/"), wouldDeny},
			{"unseen, other trust domain", mtls("spiffe://third.org/x", web, "GET", "/"), wouldDeny},
			{"first modes rule wins", mtls(staging, web, "GET", "/"), denied},
			{"unseen, xfcc only", request{Destination: fresh, Source: web, Method: "GET", Path: "/"}, denied},
		}},
		{"audit, trusted domains", UnseenAudit, []string{"example.org", "other.org"}, []modeCase{
			{"unseen", mtls(fresh, web, "GET", "/"), wouldDeny},
			{"unseen, second trust domain", mtls(alien, web, "GET", "/"), wouldDeny},
			{"unseen, untrusted domain", mtls("spiffe://third.org/x", web, "GET", "/"), denied},
			{"unseen, suffix of a trusted domain", mtls("spiffe://example.org.evil/x", web, "GET", "/"), denied},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := renderOpts(t, []aggregate.Record{rec(balances, frontend, "GET", "/")}, Options{
				Callees:       map[string]lifecycle.Mode{balances: lifecycle.Enforce},
				UnseenCallees: tt.unseen, ModeRules: rules, TrustDomains: tt.tds,
			})
			checkOutcomes(t, opatest.Load(t, b.Tarball), tt.cases)
		})
	}
}

// Learned routes a deny covers entirely never reach the bundle; those it
// covers in part stay and are checked at each decision.
func TestRenderLeavesOutDenied(t *testing.T) {
	b := renderOpts(t, meshRecords(), meshOptions(t))
	keys := func(rs []Rule) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Key()
		}
		slices.Sort(out)
		return out
	}
	assert.Equal(t, []string{
		balances + " " + frontend + " GET /balances/0",
		payments + " " + frontend + " DELETE /payments/{uuid}",
	}, keys(b.Denied))
	assert.Equal(t, []string{
		balances + " " + frontend + " GET /balances/summary",
		balances + " " + frontend + " GET /balances/{int}",
		payments + " " + frontend + " POST /payments",
		cart + " " + web + " GET /cart/{int}",
		cart + " " + web + " POST /cart/{int}/items",
	}, keys(b.Rules))
	assert.Len(t, b.Evidence, len(b.Rules))
	published, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	assert.Equal(t, keys(b.Rules), keys(published))
}

// The same records, modes and rules in any order give the same bytes.
func TestModesRenderIsDeterministic(t *testing.T) {
	want := renderOpts(t, meshRecords(), meshOptions(t))
	for range 5 {
		records := meshRecords()
		rand.Shuffle(len(records), func(i, j int) { records[i], records[j] = records[j], records[i] })
		opts := meshOptions(t)
		opts.TrustDomains = []string{"example.org", "example.org"}
		got := renderOpts(t, records, opts)
		assert.Equal(t, want.Revision, got.Revision)
		assert.Equal(t, string(want.Files[Root+"/data.json"]), string(got.Files[Root+"/data.json"]))
		assert.Equal(t, want.Tarball, got.Tarball)
	}
	changed := meshOptions(t)
	changed.Callees[legacy] = lifecycle.Enforce
	assert.NotEqual(t, want.Revision, renderOpts(t, meshRecords(), changed).Revision)
}

// A callee with learned routes that Options.Callees leaves out (one past
// the lifecycle's limit) is known to the bundle and enforced, never
// audited as an unseen one; so is one whose routes a deny all covers.
func TestLearnedCalleeWithoutModeIsEnforced(t *testing.T) {
	opts := meshOptions(t)
	delete(opts.Callees, balances)
	delete(opts.Callees, payments)
	records := append(meshRecords(), rec(vault, frontend, "DELETE", "/keys/{int}"))
	delete(opts.Callees, vault)
	p := opatest.Load(t, renderOpts(t, records, opts).Tarball)
	checkOutcomes(t, p, []modeCase{
		{"learned", mtls(balances, frontend, "GET", "/balances/summary"), allowed},
		{"not learned", mtls(balances, web, "GET", "/balances/summary"), denied},
		{"operator allow", mtls(balances, frontend, "GET", "/healthz"), allowed},
		{"deny", mtls(balances, frontend, "GET", "/balances/0"), denied},
		{"routes all denied", mtls(vault, frontend, "GET", "/keys/1"), denied},
		{"audited callee keeps its mode", mtls(cart, frontend, "GET", "/"), wouldDeny},
	})
}
