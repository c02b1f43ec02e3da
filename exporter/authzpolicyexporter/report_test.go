package authzpolicyexporter

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/authzctl"
)

// authzctl report of a review directory is the page the exporter wrote
// there, operator allow rules (their routes as the file writes them)
// included.
func TestAuthzctlReportIsTheReviewPage(t *testing.T) {
	unpacked := filepath.Join(t.TempDir(), "review")
	e, _ := newTestExporter(t, func(c *Config) {
		c.Output.UnpackedDir = unpacked
		c.OverridesFile = filepath.Join("..", "..", "deploy", "demo", "overrides.yaml")
	})
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	written, err := os.ReadFile(filepath.Join(unpacked, "index.html"))
	require.NoError(t, err)
	require.Contains(t, string(written), "operator")

	var out, errOut bytes.Buffer
	code := authzctl.Main(context.Background(), []string{"report", "--review", unpacked}, strings.NewReader(""), &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	assert.True(t, bytes.Equal(written, out.Bytes()), "authzctl report differs from the exporter's index.html")
}
