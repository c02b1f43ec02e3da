package authzpolicyexporter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// Every publication writes the review page beside changes.json: each
// callee's rules and mode, learning period included, observed values
// escaped, and nothing the rules do not state.
func TestReviewPageWritten(t *testing.T) {
	unpacked := t.TempDir()
	r := newRollout(t, func(c *Config) { c.Output.UnpackedDir = unpacked })
	// The exporter refuses paths with characters a path cannot hold (a
	// quote, <, >, a space); these it learns, and the page shows as text.
	refused, quote, entity := `/x/"><img src=x onerror=alert(1)>`, `/x/'onmouseover='alert(1)`, `/q/a&amp;b`
	r.at(0, calleeSpans(balances, frontend, "", "/balances/summary", refused, quote, entity))
	page, err := os.ReadFile(filepath.Join(unpacked, review.PageFile))
	require.NoError(t, err)
	s := string(page)
	assert.True(t, strings.HasPrefix(s, "<!DOCTYPE html>"))
	assert.Contains(t, s, "<title>"+balances+"</title>")
	assert.Contains(t, s, "<title>"+frontend+"</title>")
	assert.Contains(t, s, "learning until 2026-11-02T10:00:00Z")
	assert.Contains(t, s, "<code>/balances/summary</code>")
	assert.NotContains(t, s, "<img")
	assert.NotContains(t, s, "onerror")
	assert.Contains(t, s, "<code>/x/&#39;onmouseover=&#39;alert(1)</code>")
	assert.Contains(t, s, "<code>/q/a&amp;amp;b</code>")
	assert.NotContains(t, s, "x-forwarded-client-cert")

	// Once the period is over, the next publication says so.
	r.at(2*time.Hour, calleeSpans(balances, frontend, "", "/balances/summary"))
	page, err = os.ReadFile(filepath.Join(unpacked, review.PageFile))
	require.NoError(t, err)
	assert.Contains(t, string(page), "enforced")
	assert.Contains(t, string(page), "mode audit → enforce")
	opatest.ReadDir(t, unpacked) // still exactly a bundle
}
