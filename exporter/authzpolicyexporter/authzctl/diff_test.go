package authzctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// Two real revisions: accesses added and removed, a mode changed, an
// operator rule dropped. diff lists exactly those.
func TestDiffRevisions(t *testing.T) {
	opts := meshOptions(t)
	old := renderBundle(t, meshRecords(), opts)

	records := append(meshRecords()[1:], // drops GET /balances/{int}
		rec(balances, payments, "GET", "/balances/summary"),
		rec(payments, frontend, "GET", "/payments/{uuid}/receipt"))
	opts.Callees = map[string]lifecycle.Mode{balances: lifecycle.Enforce, payments: lifecycle.Enforce, vault: lifecycle.Enforce, cart: lifecycle.Enforce}
	opts.Overrides.Deny = opts.Overrides.Deny[:2] // drops the deny of /cart/0
	opts.UnseenCallees = render.UnseenDeny
	next := renderBundle(t, records, opts)
	oldFile, nextFile := writeBundle(t, old), writeBundle(t, next)

	r := run(t, "", "diff", oldFile, nextFile)
	require.Equal(t, 1, r.code, "%s", r.stderr)
	assert.Equal(t, strings.Join([]string{
		"revision " + old.Revision + " -> " + next.Revision,
		"",
		"callee " + balances,
		"  - GET /balances/{int}  from " + frontend,
		"  + GET /balances/summary  from " + payments,
		"",
		"callee " + payments,
		"  + GET /payments/{uuid}/receipt  from " + frontend,
		"",
		"callee " + cart,
		"  mode audit -> enforce",
		"",
		"operator rules",
		"  - deny callee " + cart + ", caller *, methods [*], routes [/cart/0]",
		"",
		"settings",
		`  unseen_audit true -> false`,
		`  unseen_callees "audit" -> "deny"`,
		"",
		"2 added, 1 removed, 1 mode changes, 1 operator rule changes, 2 setting changes",
		"",
	}, "\n"), r.stdout)

	r = run(t, "", "diff", "--json", oldFile, nextFile)
	require.Equal(t, 1, r.code, "%s", r.stderr)
	var d difference
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &d))
	assert.False(t, d.Equal)
	assert.Equal(t, []calleeChange{
		{Callee: balances, Added: []accessRule{{payments, "GET", "/balances/summary", ""}}, Removed: []accessRule{{frontend, "GET", "/balances/{int}", ""}}},
		{Callee: payments, Added: []accessRule{{frontend, "GET", "/payments/{uuid}/receipt", ""}}, Removed: []accessRule{}},
		{Callee: cart, Mode: &modeChange{"audit", "enforce"}, Added: []accessRule{}, Removed: []accessRule{}},
	}, d.Callees)

	// The other way round, flags after the bundles.
	r = run(t, "", "diff", nextFile, oldFile, "--json")
	require.Equal(t, 1, r.code, "%s", r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &d))
	assert.Equal(t, []accessRule{{frontend, "GET", "/balances/{int}", ""}}, d.Callees[0].Added)
}

// The same bundle, and the same bundle read from its unpacked directory,
// are equal; a new callee shows as unseen before.
func TestDiffEqualAndNewCallee(t *testing.T) {
	b := renderBundle(t, bank(), render.Options{})
	file := writeBundle(t, b)
	r := run(t, "", "diff", file, writeUnpacked(t, b.Files))
	assert.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	assert.Equal(t, "revision "+b.Revision+" -> "+b.Revision+"\nno changes\n", r.stdout)

	next := renderBundle(t, append(bank(), rec(vault, frontend, "GET", "/vault")), render.Options{})
	r = run(t, "", "diff", file, writeBundle(t, next))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "callee "+vault+"\n  mode unseen -> enforce\n  + GET /vault  from "+frontend+"\n")
}

func TestDiffBadInput(t *testing.T) {
	file := writeBundle(t, renderBundle(t, bank(), render.Options{}))
	garbage := filepath.Join(t.TempDir(), "x.tar.gz")
	require.NoError(t, os.WriteFile(garbage, []byte("x"), 0o644))
	for name, args := range map[string][]string{
		"one bundle":    {file},
		"three bundles": {file, file, file},
		"unreadable":    {file, garbage},
		"missing":       {filepath.Join(t.TempDir(), "none"), file},
		"bad flag":      {"--nope", file, file},
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, "", append([]string{"diff"}, args...)...)
			assert.Equal(t, 2, r.code)
			assert.Empty(t, r.stdout)
			assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		})
	}
}
