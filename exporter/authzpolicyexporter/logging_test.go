package authzpolicyexporter

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
)

// Certificates and header values never reach the logs, whatever the span
// carries: skips are counted by reason instead.
func TestLogsHoldNoHeaderValues(t *testing.T) {
	const secret = "MIIBsecretCERT"
	core, logs := observer.New(zapcore.DebugLevel)
	set := exportertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + t.TempDir()
	e, err := newExporter(cfg, set)
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))

	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, header := range []string{
		"By=" + balances + `;Cert="` + secret + `";URI=` + frontend,                  // learned
		"By=" + balances + `;Cert="` + secret + `;URI=` + frontend,                   // unterminated quote
		"By=" + balances + ";URI=spiffe://" + secret + "/x;URI=" + frontend,          // ambiguous
		"By=" + balances + `;Subject="CN=` + secret + `";URI=spiffe://Bad/` + secret, // invalid identity
	} {
		s := spans.AppendEmpty()
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", header)
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", "/a")
	}
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.shutdown(context.Background()))

	require.NotZero(t, logs.Len())
	for _, entry := range logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		assert.False(t, strings.Contains(strings.ToLower(line), strings.ToLower(secret)), "log line holds a header value: %s", line)
	}
}
