package authzctl

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// Every place a bundle can be read from gives the same decision.
func TestExplainReadsEverySource(t *testing.T) {
	b := renderBundle(t, bank(), render.Options{})
	file := writeBundle(t, b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundle.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
		_, _ = w.Write(b.Tarball)
	}))
	defer srv.Close()
	for name, src := range map[string]string{
		"file":                  file,
		"directory with bundle": filepath.Dir(file),
		"unpacked directory":    writeUnpacked(t, b.Files),
		"file URL":              "file://" + filepath.Dir(file),
		"bundle server":         srv.URL,
		"bundle server, slash":  srv.URL + "/",
		"bundle server, object": srv.URL + "/bundle.tar.gz",
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, "", "explain", "--bundle", src, "--callee", balances, "--caller", frontend, "--path", "/balances/9")
			assert.Equal(t, 0, r.code, "%s", r.stderr)
			assert.Equal(t, decisionAllow, r.firstLine())
			assert.Contains(t, r.stdout, "revision "+b.Revision)
		})
	}
	r := run(t, "", "explain", "--bundle", srv.URL+"/other.tar.gz", "--callee", balances, "--caller", frontend, "--path", "/")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "404")
}

// A signed bundle reads without a key, verifies with the right one, and
// is refused with another key or once changed.
func TestSignedBundles(t *testing.T) {
	secret := strings.Repeat("s", 32)
	b := renderBundle(t, bank(), render.Options{Signing: &render.SigningOptions{Key: []byte(secret), Algorithm: "HS256", KeyID: "authz"}})
	file := writeBundle(t, b)
	key := func(s string) string {
		p := filepath.Join(t.TempDir(), "key")
		require.NoError(t, os.WriteFile(p, []byte(s+"\n"), 0o600))
		return p
	}
	args := []string{"--callee", balances, "--caller", frontend, "--path", "/balances/9"}
	explain := func(extra ...string) result {
		return run(t, "", append(append([]string{"explain", "--bundle", file}, extra...), args...)...)
	}
	assert.Equal(t, 0, explain().code, "no key: read as it is")
	r := explain("--verification-key", key(secret), "--verification-key-id", "authz", "--verification-algorithm", "HS256")
	assert.Equal(t, 0, r.code, "%s", r.stderr)
	r = explain("--verification-key", key(strings.Repeat("x", 32)), "--verification-key-id", "authz", "--verification-algorithm", "HS256")
	assert.Equal(t, 2, r.code)
	assert.NotEmpty(t, r.stderr)

	unsigned := writeBundle(t, renderBundle(t, bank(), render.Options{}))
	r = run(t, "", append([]string{"explain", "--bundle", unsigned, "--verification-key", key(secret), "--verification-key-id", "authz", "--verification-algorithm", "HS256"}, args...)...)
	assert.Equal(t, 2, r.code, "a key makes the signature mandatory")
	assert.Contains(t, r.stderr, ".signatures.json")
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := run(t, "", args...)
		assert.Equal(t, 0, r.code)
		assert.Contains(t, r.stdout, "authzctl explain")
		assert.Contains(t, r.stdout, "authzctl diff")
		assert.Contains(t, r.stdout, "authzctl report")
	}
	r := run(t, "", "explain", "-h")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "-callee")
	r = run(t, "")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "Usage")
	r = run(t, "", "explian")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "authzctl: unknown command \"explian\" (run \"authzctl help\")\n", r.stderr)
}
