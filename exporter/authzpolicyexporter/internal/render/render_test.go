package render

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	frontend = "spiffe://example.org/ns/bank/sa/frontend"
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
	ledger   = "spiffe://example.org/ns/bank/sa/ledger"
)

func rec(dst, src, method, rt string) aggregate.Record {
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return aggregate.Record{
		Key:   aggregate.Key{Destination: dst, Source: src, Method: method, Route: rt},
		Stats: aggregate.Stats{Count: 1, FirstSeen: t, LastSeen: t},
	}
}

// bank is a small aggregate exercising literals, typed wildcards and nesting.
func bank() []aggregate.Record {
	return []aggregate.Record{
		rec(balances, frontend, "GET", "/balances/{int}"),
		rec(balances, frontend, "GET", "/balances/summary"),
		rec(balances, frontend, "GET", "/balances/balance_1"),
		rec(balances, frontend, "GET", "/"),
		rec(payments, frontend, "POST", "/payments"),
		rec(payments, frontend, "GET", "/payments/{uuid}"),
		rec(payments, frontend, "GET", "/payments/{hex}/status"),
		rec(ledger, payments, "POST", "/ledger/entries"),
		rec(ledger, payments, "GET", "/ledger/accounts/{int}"),
		rec(ledger+"/replica", payments, "GET", "/ledger/accounts/{int}"),
	}
}

func mustRender(t testing.TB, records []aggregate.Record) *Bundle {
	t.Helper()
	b, err := Render(context.Background(), records, Options{CardinalityThreshold: 10})
	require.NoError(t, err)
	return b
}

func TestRenderIsDeterministic(t *testing.T) {
	want := mustRender(t, bank())
	for i := 0; i < 5; i++ {
		shuffled := slices.Clone(bank())
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := mustRender(t, shuffled)
		assert.Equal(t, want.Revision, got.Revision)
		assert.True(t, bytes.Equal(want.Tarball, got.Tarball), "tarball bytes differ")
		assert.Equal(t, want.Files, got.Files)
	}
	other := mustRender(t, append(bank(), rec(balances, payments, "GET", "/balances/summary")))
	assert.NotEqual(t, want.Revision, other.Revision)
}

// TestRenderGolden pins the unpacked bundle; run with -update after a
// deliberate change and review the diff.
func TestRenderGolden(t *testing.T) {
	b := mustRender(t, bank())
	dir := filepath.Join("..", "..", "..", "..", "testdata", "golden", "bank")
	if *update {
		require.NoError(t, os.RemoveAll(dir))
		for name, content := range b.Files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, content, 0o644))
		}
	}
	got := map[string]string{}
	for name, content := range b.Files {
		got[name] = string(content)
	}
	want := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		want[filepath.ToSlash(rel)] = string(content)
		return err
	}))
	assert.Equal(t, want, got)
	assert.Len(t, b.Rules, 10)
}

// The tarball and the unpacked files are the same bundle.
func TestTarballMatchesFiles(t *testing.T) {
	b := mustRender(t, bank())
	loaded, err := bundle.NewReader(bytes.NewReader(b.Tarball)).Read()
	require.NoError(t, err)
	assert.Equal(t, b.Revision, loaded.Manifest.Revision)
	assert.Equal(t, []string{Root}, *loaded.Manifest.Roots)
	require.Len(t, loaded.Modules, 1)
	assert.Equal(t, string(Policy), string(loaded.Modules[0].Raw))
}

func TestRenderSkipsInvalidRecords(t *testing.T) {
	b := mustRender(t, append(bank(),
		rec("spiffe://Example.org/x", frontend, "GET", "/a"),
		rec(balances, "not-spiffe", "GET", "/a"),
		rec(balances, frontend, "get", "/a"),
		rec(balances, frontend, "GET", "/a/{nosuchtype}"),
		rec(balances, frontend, "GET", "a"),
		// A saved state is not the learner's: a route too deep to
		// generalize is refused, never recursed into.
		rec(balances, frontend, "GET", strings.Repeat("/", 1<<20)),
	))
	assert.Equal(t, 6, b.Skipped)
	assert.Equal(t, mustRender(t, bank()).Revision, b.Revision)
}

func TestEmptyAggregateDeniesEverything(t *testing.T) {
	b := mustRender(t, nil)
	assert.False(t, opatest.Load(t, b.Tarball).Allowed(request{Destination: balances, Source: frontend, Method: "GET", Path: "/"}))
}

// The policy's wildcard patterns are the ones the exporter learns with.
func TestPolicyPatternsMatchRoute(t *testing.T) {
	module, err := ast.ParseModuleWithOpts("policy.rego", string(Policy), ast.ParserOptions{RegoVersion: ast.RegoV1})
	require.NoError(t, err)
	var found bool
	for _, r := range module.Rules {
		if r.Head.Name.String() != "wildcard_patterns" {
			continue
		}
		found = true
		got := map[string]string{}
		require.NoError(t, ast.As(r.Head.Value.Value, &got))
		assert.Equal(t, route.Patterns, got)
	}
	assert.True(t, found)
}

type request = opatest.Request

func TestDecisions(t *testing.T) {
	policy := opatest.Load(t, mustRender(t, bank()).Tarball)
	evil := "spiffe://evil.org/ns/bank/sa/frontend"
	tests := []struct {
		name  string
		req   request
		allow bool
	}{
		{"observed literal", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"}, true},
		{"observed root", request{Destination: balances, Source: frontend, Method: "GET", Path: "/"}, true},
		{"observed int wildcard", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/42"}, true},
		{"query ignored", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/42?limit=1&x=/admin"}, true},
		{"raw fragment", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary#x"}, false},
		{"uuid wildcard", request{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/0b5e2c3a-1d4f-4e6a-9b8c-7d6e5f4a3b2c"}, true},
		{"hex wildcard", request{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/9f3b2c1d7e/status"}, true},
		{"nested destination", request{Destination: ledger + "/replica", Source: payments, Method: "GET", Path: "/ledger/accounts/7"}, true},
		{"principals", request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: balances, Method: "GET", Path: "/balances/summary"}, true},
		{"istio header", request{Header: "By=" + balances + ";Hash=abc;Subject=\"\";URI=" + frontend, Method: "GET", Path: "/balances/1"}, true},
		{"quoted subject with commas", request{Header: "By=" + balances + ";Subject=\"CN=x,O=y;By=" + evil + "\";URI=" + frontend, Method: "GET", Path: "/balances/1"}, true},
		{"append-forward chain", request{Header: "By=spiffe://example.org/ns/edge/sa/ingress;URI=spiffe://example.org/ns/bank/sa/curl,By=" + balances + ";URI=" + frontend, Method: "GET", Path: "/balances/1"}, true},
		{"lower-case keys and quoted uri", request{Header: "by=" + balances + ";uri=\"" + frontend + "\"", Method: "GET", Path: "/balances/1"}, true},
		{"legacy SAN key", request{Header: "By=" + balances + ";SAN=" + frontend, Method: "GET", Path: "/balances/1"}, true},

		{"other caller", request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/summary"}, false},
		{"other callee", request{Destination: payments, Source: frontend, Method: "GET", Path: "/balances/summary"}, false},
		{"other method", request{Destination: balances, Source: frontend, Method: "DELETE", Path: "/balances/summary"}, false},
		{"lower-case method", request{Destination: balances, Source: frontend, Method: "get", Path: "/balances/summary"}, false},
		{"sibling literal", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/balance_10"}, false},
		{"longer literal", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/balance_1/x"}, false},
		{"trailing slash", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary/"}, false},
		{"longer wildcard", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/42/admin"}, false},
		{"wrong wildcard type", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/admin"}, false},
		{"dot segment", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/../balances/summary"}, false},
		{"dot-dot in wildcard slot", request{Destination: payments, Source: frontend, Method: "GET", Path: "/payments/../status"}, false},
		{"encoded dot-dot", request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/%2e%2e"}, false},
		{"no leading slash", request{Destination: balances, Source: frontend, Method: "GET", Path: "balances/summary"}, false},
		{"double slash", request{Destination: balances, Source: frontend, Method: "GET", Path: "//balances/summary"}, false},
		{"foreign trust domain", request{Destination: balances, Source: evil, Method: "GET", Path: "/balances/summary"}, false},
		{"foreign trust domain callee", request{Destination: "spiffe://evil.org/ns/bank/sa/balances", Source: frontend, Method: "GET", Path: "/balances/summary"}, false},
		{"suffix of trust domain", request{Destination: balances, Source: "spiffe://example.org.evil/ns/bank/sa/frontend", Method: "GET", Path: "/balances/summary"}, false},
		{"spoofed header with principals", request{Destination: balances, Source: frontend, SourcePrincipal: payments, DestinationPrincipal: balances, Method: "GET", Path: "/balances/summary"}, false},
		{"spoofed header with destination principal", request{Destination: balances, Source: frontend, DestinationPrincipal: ledger, Method: "GET", Path: "/balances/summary"}, false},
		{"header source once mTLS was terminated", request{Destination: "spiffe://evil.org/x", Source: frontend, DestinationPrincipal: balances, Method: "GET", Path: "/balances/summary"}, false},
		{"source with a backslash", request{Header: "By=" + balances + `;URI="spiffe://example.org/ns/bank/sa/fronten\\d"`, Method: "GET", Path: "/balances/summary"}, false},
		{"no identity", request{NoHeader: true, Method: "GET", Path: "/balances/summary"}, false},
		{"earlier element only", request{Header: "By=" + balances + ";URI=" + frontend + ",By=" + balances + ";URI=" + payments, Method: "GET", Path: "/balances/summary"}, false},
		{"malformed header", request{Header: "By=" + balances + ";URI=\"" + frontend, Method: "GET", Path: "/balances/summary"}, false},
		{"ambiguous source", request{Header: "By=" + balances + ";URI=" + frontend + ";URI=" + payments, Method: "GET", Path: "/balances/summary"}, false},
		{"source without spiffe scheme", request{Header: "By=" + balances + ";URI=example.org/ns/bank/sa/frontend", Method: "GET", Path: "/balances/summary"}, false},
		{"callers key as identity", request{Destination: balances + "/@callers", Source: frontend, Method: "GET", Path: "/balances/summary"}, false},
		{"trust domain only", request{Destination: "spiffe://example.org", Source: frontend, Method: "GET", Path: "/balances/summary"}, false},
		{"empty path", request{Destination: balances, Source: frontend, Method: "GET", Path: ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.allow, policy.Allowed(tt.req))
		})
	}
}

// Audit mode allows everything and marks what the learned policy would
// deny; enforce mode's object decision agrees with the boolean one.
func TestAuditMode(t *testing.T) {
	seen := request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/summary"}
	unseen := request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/summary"}

	enforce := opatest.Load(t, mustRender(t, bank()).Tarball)
	assert.Equal(t, map[string]any{"allowed": true}, enforce.Decision(seen))
	assert.Equal(t, map[string]any{"allowed": false}, enforce.Decision(unseen))
	assert.False(t, enforce.Allowed(unseen))

	b, err := Render(context.Background(), bank(), Options{CardinalityThreshold: 10, Callees: map[string]lifecycle.Mode{balances: lifecycle.Audit}})
	require.NoError(t, err)
	assert.NotEqual(t, mustRender(t, bank()).Revision, b.Revision, "switching modes publishes a new bundle")
	audit := opatest.Load(t, b.Tarball)
	assert.True(t, audit.Allowed(unseen))
	assert.Equal(t, map[string]any{"allowed": true}, audit.Decision(seen))
	assert.Equal(t, map[string]any{"allowed": true, "response_headers_to_add": map[string]any{"x-authz-policy": "would-deny"}}, audit.Decision(unseen))
}

// Once Envoy reports a principal, Envoy alone names both sides: the header
// never supplies the side it left out, so a caller whose certificate Envoy
// checked cannot pick the callee by writing XFCC's By itself.
func TestEnvoyPrincipalsNameBothSides(t *testing.T) {
	policy := opatest.Load(t, mustRender(t, bank()).Tarball)
	learned := "By=" + balances + ";URI=" + frontend
	tests := []struct {
		name string
		req  request
		// empty are the sides ("source", "destination") whose principal
		// Envoy reports as "".
		empty []string
		allow bool
	}{
		{"header only", request{Header: learned}, nil, true},
		{"empty principals, header", request{Header: learned}, []string{"source", "destination"}, true},
		{"both principals", request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: balances}, nil, true},
		{"both principals, header names others", request{Destination: payments, Source: payments, SourcePrincipal: frontend, DestinationPrincipal: balances}, nil, true},
		{"both principals, header names the learned pair", request{Header: learned, SourcePrincipal: payments, DestinationPrincipal: balances}, nil, false},
		{"source principal only, header names the callee", request{Header: learned, SourcePrincipal: frontend}, nil, false},
		{"source principal only, header names the callee and another caller", request{Destination: balances, Source: payments, SourcePrincipal: frontend}, nil, false},
		{"source principal, empty destination principal, header names the callee", request{Header: learned, SourcePrincipal: frontend}, []string{"destination"}, false},
		{"source principal only, no header", request{NoHeader: true, SourcePrincipal: frontend}, nil, false},
		{"destination principal only, header names the caller", request{Header: learned, DestinationPrincipal: balances}, nil, false},
		{"destination principal, empty source principal, header names the caller", request{Header: learned, DestinationPrincipal: balances}, []string{"source"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Method, tt.req.Path = "GET", "/balances/summary"
			input := tt.req.Input()
			attrs := input["attributes"].(map[string]any)
			for _, side := range tt.empty {
				attrs[side] = map[string]any{"principal": ""}
			}
			assert.Equal(t, tt.allow, policy.AllowedInput(input))
		})
	}
}

// A gRPC call reaches ext_authz as an HTTP/2 POST of /<package>.<Service>/<Method>
// with content-type application/grpc. It is learned and decided as a
// literal route: exactly the learned method of the learned service.
func TestGRPCDecisions(t *testing.T) {
	learner, err := route.NewLearner(nil, 2048, 32)
	require.NoError(t, err)
	learn := func(path string) string {
		rt, err := learner.Learn(path, "")
		require.NoError(t, err)
		require.False(t, rt.HasWildcard(), "%s learned as %s", path, rt)
		return rt.String()
	}
	transfer := learn("/bank.Ledger/Transfer")
	require.Equal(t, "/bank.Ledger/Transfer", transfer)
	records := []aggregate.Record{
		rec(ledger, payments, "POST", transfer),
		rec(ledger, payments, "POST", learn("/bank.Accounts/Open")),
	}
	// Method names that look like identifiers, and more methods of one
	// service than the backstop's threshold: still only those methods.
	for _, m := range []string{"Add123", "Get2024", "List", "Watch", "Close", "Sum", "Sub", "Move", "Copy", "Find", "Stat", "Sync"} {
		records = append(records, rec(ledger, payments, "POST", learn("/bank.Reports/"+m)))
	}
	policy := opatest.Load(t, mustRender(t, records).Tarball)

	call := func(method, path string) request {
		return request{
			Destination: ledger, Source: payments, Method: method, Path: path, Protocol: "HTTP/2",
			Headers: map[string]string{
				":authority": "ledger.bank.svc:50051", "content-type": "application/grpc",
				"te": "trailers", "grpc-timeout": "990m", "user-agent": "grpc-go/1.70.0",
			},
		}
	}
	with := func(r request, f func(*request)) request {
		f(&r)
		return r
	}
	tests := []struct {
		name  string
		req   request
		allow bool
	}{
		{"learned method", call("POST", "/bank.Ledger/Transfer"), true},
		{"learned method, principals", with(call("POST", "/bank.Ledger/Transfer"), func(r *request) {
			r.NoHeader, r.SourcePrincipal, r.DestinationPrincipal = true, payments, ledger
		}), true},
		{"learned method, content subtype", with(call("POST", "/bank.Ledger/Transfer"), func(r *request) {
			r.Headers["content-type"] = "application/grpc+proto"
		}), true},
		{"other method of the service", call("POST", "/bank.Ledger/Delete"), false},
		{"method like an identifier", call("POST", "/bank.Reports/Add123"), true},
		{"another identifier-like method", call("POST", "/bank.Reports/Add124"), false},
		{"another method, many learned", call("POST", "/bank.Reports/Delete"), false},
		{"method name in another case", call("POST", "/bank.Ledger/transfer"), false},
		{"other service, learned method name", call("POST", "/bank.Accounts/Transfer"), false},
		{"other service with the service as prefix", call("POST", "/bank.LedgerAdmin/Transfer"), false},
		{"other package", call("POST", "/evil.Ledger/Transfer"), false},
		{"GET", call("GET", "/bank.Ledger/Transfer"), false},
		{"longer path", call("POST", "/bank.Ledger/Transfer/x"), false},
		{"trailing slash", call("POST", "/bank.Ledger/Transfer/"), false},
		{"service only", call("POST", "/bank.Ledger"), false},
		{"query", call("POST", "/bank.Ledger/Transfer?x=1"), false},
		{"empty query", call("POST", "/bank.Ledger/Transfer?"), false},
		{"query, content type in upper case", with(call("POST", "/bank.Ledger/Transfer?x=1"), func(r *request) {
			r.Headers["content-type"] = "Application/GRPC"
		}), false},
		{"fragment", call("POST", "/bank.Ledger/Transfer#x"), false},
		{"other caller", with(call("POST", "/bank.Ledger/Transfer"), func(r *request) { r.Source = frontend }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.allow, policy.Allowed(tt.req))
		})
	}
}
