//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const usersSpec = `openapi: 3.0.3
info: {title: users, version: "1"}
servers: [{url: /api}]
paths:
  /users/me:
    get: {responses: {"200": {description: ok}}}
  /users/{name}:
    get:
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /users/{name}/orders/{order}:
    get:
      parameters:
        - {name: name, in: path, required: true, schema: {type: string}}
        - {name: order, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
`

// The built collector learns a callee's requests as the operations of its
// API spec, given in a config file merged over the drop-in one: a caller
// is granted the operations it used, wildcards as the spec types them, and
// no other operation, also where a path of its wildcard is another
// operation's; with strict, a request of no operation is not learned.
func TestE2EOpenAPISpec(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "users.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(usersSpec), 0o600))
	users := "spiffe://example.org/ns/bank/sa/users"
	overlay := filepath.Join(dir, "openapi.yaml")
	require.NoError(t, os.WriteFile(overlay, []byte(`exporters:
  authz_policy:
    routes:
      openapi:
        - {callee: "`+users+`", spec: "`+spec+`", strict: true}
`), 0o600))
	c := startCollectorWith(t, "", []string{overlay})

	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, r := range []struct{ caller, path string }{
		{frontend, "/api/users/alice"},
		{frontend, "/api/users/alice/orders/7"},
		{frontend, "/api/admin/export"}, // no operation: strict
		{backend, "/api/users/me"},
	} {
		s := spans.AppendEmpty()
		s.SetKind(ptrace.SpanKindServer)
		s.SetName("GET")
		s.Attributes().PutStr("http.request.header.x-forwarded-client-cert", "By="+users+";URI="+r.caller)
		s.Attributes().PutStr("http.request.method", "GET")
		s.Attributes().PutStr("url.path", r.path)
		s.Attributes().PutInt("http.response.status_code", 200)
	}
	raw, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	file := filepath.Join(dir, "users-spans.json")
	require.NoError(t, os.WriteFile(file, raw, 0o600))
	replay(t, c.otlp, file)

	policy := opatest.Load(t, waitForBundle(t, c.outDir))
	allowed := func(caller, path string) bool {
		return policy.Allowed(opatest.Request{Destination: users, Source: caller, Method: "GET", Path: path})
	}
	assert.True(t, allowed(frontend, "/api/users/bob"))
	assert.True(t, allowed(frontend, "/api/users/bob/orders/42"))
	assert.False(t, allowed(frontend, "/api/users/bob/orders/x"), "an order is an integer")
	assert.False(t, allowed(frontend, "/api/users/me"), "its own operation, which the frontend never used")
	assert.False(t, allowed(frontend, "/api/admin/export"), "strict: no operation")
	assert.True(t, allowed(backend, "/api/users/me"))
	assert.False(t, allowed(backend, "/api/users/bob"))
	c.stop(t)
}
