package authzpolicyexporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// A bundle in place that cannot be read, together with a lost storage,
// must not let a callee the mesh had enforced learn again in audit mode:
// every callee known before the next publication is enforced.
func TestRedteamUnreadableBundleAndLostStateStayEnforced(t *testing.T) {
	r := newRollout(t, nil)
	evil := opatest.Request{Destination: balances, Source: "spiffe://evil.org/x", Method: "DELETE", Path: "/everything"}
	r.at(0, calleeSpans(balances, frontend, "", "/seen"))
	p := r.at(61*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	require.False(t, p.Allowed(evil))

	r.stop()
	for id := range r.host.ext {
		r.host.ext[id] = &memStorage{data: map[string][]byte{}}
	}
	require.NoError(t, os.WriteFile(filepath.Join(r.dir, publish.BundleName), []byte("not a bundle"), 0o600))
	r.start()
	p = r.at(62*time.Minute, calleeSpans(balances, frontend, "", "/seen"))
	assert.False(t, p.Allowed(evil), "an unreadable bundle and a wiped storage must not reopen audit mode")
	assert.Equal(t, "enforce", modesOf(t, r.dir)[balances])
}
