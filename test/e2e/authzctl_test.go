//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// authzctl runs the built bin/authzctl and returns its output and exit
// status.
func authzctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t, "OTELCOL_AUTHZ_CTL"), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// authzctl explains decisions of, and compares, the bundles the built
// collector publishes: read from the output directory, the unpacked
// review directory and over the collector's bundle server.
func TestE2EAuthzctl(t *testing.T) {
	binary(t, "OTELCOL_AUTHZ_CTL")
	dir, unpacked, serveAddr := t.TempDir(), filepath.Join(t.TempDir(), "review"), freePort(t)
	c := startConfigured(t, map[string]any{
		"output": map[string]any{"url": "file://" + dir, "unpacked_dir": unpacked},
		"serve":  map[string]any{"endpoint": serveAddr},
	})
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/12"}, access{balances, frontend, "GET", "/balances/summary"})
	first := waitForPublished(t, dir, "with the first accesses", func(p published) bool { return p.mode(balances) != "" })
	old := filepath.Join(t.TempDir(), "old.tar.gz")
	require.NoError(t, os.WriteFile(old, first.raw, 0o644))
	base := "http://" + serveAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/bundle.tar.gz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, waitFor, 100*time.Millisecond, "the bundle server never served a bundle")

	for _, src := range []string{dir, filepath.Join(dir, "bundle.tar.gz"), "file://" + dir, base, base + "/bundle.tar.gz"} {
		out, stderr, code := authzctl(t, "explain", "--bundle", src, "--callee", balances, "--caller", frontend, "--path", "/balances/99")
		require.Equal(t, 0, code, "%s: %s", src, stderr)
		assert.True(t, strings.HasPrefix(out, "ALLOW\n"), "%s: %s", src, out)
		assert.Contains(t, out, "matched: GET /balances/{int} from "+frontend)
		assert.Contains(t, out, "revision "+first.revision())
		assert.True(t, first.policy.Allowed(opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/99"}), "OPA agrees")

		out, _, code = authzctl(t, "explain", "--bundle", src, "--callee", balances, "--caller", payments, "--path", "/balances/99")
		assert.Equal(t, 1, code)
		assert.True(t, strings.HasPrefix(out, "DENY\n"), out)
		assert.Contains(t, out, "caller_unknown: "+payments+" was never seen calling "+balances)
	}

	// The review directory: the evidence of the rule.
	waitForUnpacked(t, unpacked, first.revision())
	out, stderr, code := authzctl(t, "explain", "--review", unpacked, "--callee", balances, "--caller", frontend, "--path", "/balances/summary", "--json")
	require.Equal(t, 0, code, stderr)
	var x struct {
		Decision string
		Reasons  []struct {
			Kind string
			Rule *struct {
				Route, Origin, FirstSeen string `json:",omitempty"`
				Count                    int
			} `json:"rule"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &x), out)
	assert.Equal(t, "ALLOW", x.Decision)
	require.NotNil(t, x.Reasons[0].Rule, out)
	assert.Equal(t, "/balances/summary", x.Reasons[0].Rule.Route)
	assert.Equal(t, "learned", x.Reasons[0].Rule.Origin)
	assert.Contains(t, out, `"first_seen"`)

	// report of the review directory is the page the exporter wrote there
	// (the callees have no learning period, which the bundle cannot tell).
	page := filepath.Join(t.TempDir(), "report.html")
	_, stderr, code = authzctl(t, "report", "--review", unpacked, "-o", page)
	require.Equal(t, 0, code, stderr)
	written, err := os.ReadFile(filepath.Join(unpacked, "index.html"))
	require.NoError(t, err)
	reported, err := os.ReadFile(page)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(written, reported), "authzctl report differs from the exporter's index.html")

	// A new revision: diff lists what it added, from the server against
	// the first revision's file.
	sendAccesses(t, c.otlp, access{payments, frontend, "POST", "/payments"})
	next := waitForPublished(t, dir, "with the payment", func(p published) bool { return p.mode(payments) != "" })
	require.Eventually(t, func() bool {
		out, _, _ := authzctl(t, "explain", "--bundle", base, "--callee", payments, "--caller", frontend, "--method", "POST", "--path", "/payments")
		return strings.HasPrefix(out, "ALLOW\n")
	}, waitFor, 100*time.Millisecond, "the server never served the new revision")
	out, stderr, code = authzctl(t, "diff", old, base)
	require.Equal(t, 1, code, stderr)
	assert.Equal(t, "revision "+first.revision()+" -> "+next.revision()+"\n\ncallee "+payments+"\n  mode unseen -> enforce\n  + POST /payments  from "+frontend+
		"\n\n1 added, 0 removed, 1 mode changes, 0 operator rule changes, 0 setting changes\n", out)
	_, _, code = authzctl(t, "diff", dir, base)
	assert.Equal(t, 0, code, "the output and the server hold the same bundle")

	// Bad input.
	_, stderr, code = authzctl(t, "explain", "--bundle", base, "--callee", "not-an-id", "--caller", frontend, "--path", "/")
	assert.Equal(t, 2, code)
	assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	_, _, code = authzctl(t, "explain", "--bundle", base+"/nothing.tar.gz", "--callee", balances, "--caller", frontend, "--path", "/")
	assert.Equal(t, 2, code)
}
