package authzctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

const (
	frontend = "spiffe://example.org/ns/bank/sa/frontend"
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
	ledger   = "spiffe://example.org/ns/bank/sa/ledger"
	vault    = "spiffe://example.org/ns/bank/sa/vault" // enforced, its grants all gone
	web      = "spiffe://example.org/ns/shop/sa/web"
	cart     = "spiffe://example.org/ns/shop/sa/cart" // audited
	fresh    = "spiffe://example.org/ns/shop/sa/fresh"
	ops      = "spiffe://example.org/ns/ops/sa/prober"
	evil     = "spiffe://evil.org/ns/bank/sa/frontend"
)

var seen = time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)

func rec(dst, src, method, rt string) aggregate.Record {
	return aggregate.Record{
		Key:   aggregate.Key{Destination: dst, Source: src, Method: method, Route: rt},
		Stats: aggregate.Stats{Count: 3, FirstSeen: seen, LastSeen: seen.Add(time.Hour)},
	}
}

// bank is the render tests' aggregate: literals, typed wildcards, nesting.
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
		rec(ledger, payments, "POST", "/bank.Ledger/Transfer"),
		rec(ledger, payments, "GET", "/ledger/accounts/{int}"),
		rec(ledger+"/replica", payments, "GET", "/ledger/accounts/{int}"),
	}
}

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
`

func meshRecords() []aggregate.Record {
	return append(bank(),
		rec(cart, web, "GET", "/cart/{int}"),
		rec(cart, web, "POST", "/cart/{int}/items"),
	)
}

func meshOptions(t testing.TB) render.Options {
	t.Helper()
	ov, err := overrides.Parse("rules.yaml", []byte(meshRules))
	require.NoError(t, err)
	locked, err := spiffeid.ParsePattern("spiffe://example.org/ns/shop/sa/locked")
	require.NoError(t, err)
	return render.Options{
		CardinalityThreshold: 10,
		Callees: map[string]lifecycle.Mode{
			balances: lifecycle.Enforce, payments: lifecycle.Enforce, vault: lifecycle.Enforce, cart: lifecycle.Audit,
		},
		UnseenCallees: render.UnseenAudit,
		ModeRules:     []lifecycle.Rule{{Callees: []spiffeid.Pattern{locked}, Mode: lifecycle.Enforce}},
		TrustDomains:  []string{"example.org"},
		Overrides:     ov,
	}
}

func renderBundle(t testing.TB, records []aggregate.Record, opts render.Options) *render.Bundle {
	t.Helper()
	if opts.CardinalityThreshold == 0 {
		opts.CardinalityThreshold = 10
	}
	b, err := render.Render(context.Background(), records, opts)
	require.NoError(t, err)
	return b
}

// writeBundle writes b's tarball to a file of its own and returns its path.
func writeBundle(t testing.TB, b *render.Bundle) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, os.WriteFile(p, b.Tarball, 0o644))
	return p
}

// writeUnpacked writes b's files (and review files) below a new directory.
func writeUnpacked(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, content, 0o644))
	}
	return dir
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) firstLine() string { return strings.SplitN(r.stdout, "\n", 2)[0] }

func run(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// writeInput writes an input document to a file of its own.
func writeInput(t testing.TB, input map[string]any) string {
	t.Helper()
	data, err := json.Marshal(input)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "input.json")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}
