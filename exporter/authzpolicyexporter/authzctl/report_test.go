package authzctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// report writes the review page of any bundle: every identity on it, as
// text; bad input is exit status 2.
func TestReport(t *testing.T) {
	b := renderBundle(t, bank(), render.Options{})
	file := writeBundle(t, b)

	r := run(t, "", "report", "--bundle", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "<!DOCTYPE html>"), r.stdout[:min(80, len(r.stdout))])
	for _, id := range []string{frontend, balances, payments, ledger, ledger + "/replica"} {
		assert.Contains(t, r.stdout, id)
	}
	assert.Contains(t, r.stdout, b.Revision)

	out := filepath.Join(t.TempDir(), "report.html")
	r = run(t, "", "report", "--bundle", file, "-o", out)
	require.Equal(t, 0, r.code, r.stderr)
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, run(t, "", "report", "--bundle", file).stdout, string(page), "the same bundle, the same page")

	for _, args := range [][]string{
		{"report"},
		{"report", "--bundle", filepath.Join(t.TempDir(), "none.tar.gz")},
		{"report", "--bundle", file, "extra"},
		{"report", "--bundle", file, "--review", file},
		{"report", "--bundle", file, "-o", filepath.Join(t.TempDir(), "no", "such", "dir", "x.html")},
	} {
		r := run(t, "", args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stdout)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %q", args, r.stderr)
	}
}
