package authzpolicyexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

func rtSpec(t *testing.T, body string) string {
	f := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	return f
}

func rtLearn(t *testing.T, spec string, strict bool, threshold int, calls ...call) func(method, path string) bool {
	ctx := context.Background()
	e, dir := newTestExporter(t, func(c *Config) {
		withSpec(spec, strict)(c)
		c.Routes.CardinalityThreshold = threshold
	})
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, calls...)))
	require.NoError(t, e.consumeTraces(ctx, callSpans("spiffe://example.org/ns/other/sa/x", frontend, call{"GET", "/ping"})))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	return func(m, p string) bool {
		return policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: m, Path: p})
	}
}

const rtEnum = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /orders/by-status/{status}:
    get:
      parameters: [{name: status, in: path, required: true, schema: {type: string, enum: [open, closed, shipped]}}]
      responses: {"200": {description: ok}}
`

func TestRedteamHoldsEnumNotCountedByBackstop(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtEnum), false, 3,
		call{"GET", "/api/orders/by-status/open"},
		call{"GET", "/api/orders/by-status/pending"}) // not in spec: learned as a literal
	assert.True(t, allowed("GET", "/api/orders/by-status/shipped"))
	assert.True(t, allowed("GET", "/api/orders/by-status/pending"))
	assert.False(t, allowed("GET", "/api/orders/by-status/zzz"))
	assert.False(t, allowed("POST", "/api/orders/by-status/open"))
}

const rtRoot = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api/v1}]
paths:
  /:
    get: {responses: {"200": {description: ok}}}
  /x/:
    get: {responses: {"200": {description: ok}}}
`

func TestRedteamHoldsRootAndTrailingSlash(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtRoot), true, 0, call{"GET", "/api/v1/"}, call{"GET", "/api/v1/x/"})
	for _, p := range []string{"/api/v1/anything", "/api/v1/x/y", "/api/v1/x/..", "/api/v1/../admin", "/api/v2/", "/"} {
		assert.False(t, allowed("GET", p), p)
	}
}

const rtSpecial = `openapi: 3.1.0
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /e/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: string, enum: ["a b", "{int}", "*", "**", "é"]}}]
      responses: {"200": {description: ok}}
  /i/{v}:
    get:
      parameters: [{name: v, in: path, required: true, schema: {type: [integer, "null"]}}]
      responses: {"200": {description: ok}}
`

func TestRedteamHoldsEnumSpecialValues(t *testing.T) {
	spec, err := openapi.Load(rtSpec(t, rtSpecial))
	if err != nil {
		t.Logf("load: %v", err)
	} else {
		for _, op := range spec.Operations {
			t.Logf("op %s", op.String())
		}
		for _, r := range spec.Refused {
			t.Logf("refused %v", r)
		}
	}
	allowed := rtLearn(t, rtSpec(t, rtSpecial), true, 0, call{"GET", "/api/e/a%20b"})
	for _, p := range []string{"/api/e/x", "/api/e/1", "/api/e/{int}", "/api/e/%2F", "/api/e//", "/api/e/..", "/api/e/%2e%2e", "/api/e", "/api/e/a%20b/c"} {
		assert.False(t, allowed("GET", p), p)
	}
}

func TestRedteamHoldsStrictOddRequests(t *testing.T) {
	allowed := rtLearn(t, shopSpec, true, 2,
		call{"GET", "/api/v1/orders/7/"},
		call{"GET", "/api/v1/orders//7"},
		call{"GET", "/api/v1/orders/%37"},
		call{"GET", "/api/v1/orders/by-status/%6Fpen"},
		call{"GET", "/api/v1//orders/7"},
		call{"get", "/api/v1/orders/7"},
		call{"GET", "/api/v1/orders/7;x=1"},
		call{"GET", "/api/v1/orders/7%3Fx"},
		call{"GET", "/api/v1/./orders/7"},
		call{"GET", "/api/v1/orders/1/../7"},
		call{"GET", "api/v1/orders/7"},
	)
	for _, p := range []string{"/api/v1/orders/8", "/api/v1/orders/7/", "/api/v1/orders/x", "/api/v1/orders/by-status/open", "/api/v1/orders/7/items"} {
		assert.False(t, allowed("GET", p), p)
	}
}

func TestRedteamHoldsOtherCallerAndCallee(t *testing.T) {
	ctx := context.Background()
	e, dir := newTestExporter(t, func(c *Config) { withSpec(shopSpec, false)(c) })
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, frontend, call{"GET", "/api/v1/orders/by-status/open"}, call{"GET", "/api/v1/orders/7"})))
	require.NoError(t, e.consumeTraces(ctx, callSpans(shop, backend, call{"GET", "/api/v1/customers/alice/orders"})))
	require.NoError(t, e.flush(ctx))
	policy := readBundle(t, dir)
	assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: backend, Method: "GET", Path: "/api/v1/orders/by-status/closed"}))
	assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: backend, Method: "GET", Path: "/api/v1/orders/7"}))
	assert.False(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "GET", Path: "/api/v1/customers/alice/orders"}))
	assert.True(t, policy.Allowed(opatest.Request{Destination: shop, Source: frontend, Method: "GET", Path: "/api/v1/orders/by-status/closed"}))
}

func rtLoadWithin(t *testing.T, body string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v", r)
			}
		}()
		_, err := openapi.Parse([]byte(body), "odd")
		t.Logf("err: %v", err)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hang")
	}
}

func TestRedteamHoldsOddSpecs(t *testing.T) {
	laughs := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nx: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for i := 'b'; i <= 'j'; i++ {
		laughs += "x" + string(i) + ": &" + string(i) + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
		prev = string(i)
	}
	laughs += "paths: {}\n"
	cases := map[string]string{
		"laughs": laughs,
		"cyclic": `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a/{x}:
    get:
      parameters: [{name: x, in: path, required: true, schema: {$ref: '#/components/schemas/A'}}]
      responses: {"200": {description: ok}}
components:
  schemas:
    A: {allOf: [{$ref: '#/components/schemas/A'}]}
`,
		"cyclicparam": `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a/{x}:
    get:
      parameters: [{$ref: '#/components/parameters/P'}]
      responses: {"200": {description: ok}}
components:
  parameters:
    P: {$ref: '#/components/parameters/P'}
`,
		"nullenum": `openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a/{x}:
    get:
      parameters: [{name: x, in: path, required: true, schema: {enum: [null]}}]
      responses: {"200": {description: ok}}
`,
		"nullschema": `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [null]
paths:
  /a/{x}:
    parameters: [null]
    get:
      parameters: [null, {name: x, in: path, required: true}]
      responses: {"200": {description: ok}}
  /b: null
`,
		"swaggernull": `swagger: "2.0"
info: {title: t, version: "1"}
basePath: null
paths:
  /a/{x}:
    get:
      parameters: [{name: x, in: path, required: true, type: integer}, null]
      responses: {"200": {description: ok}}
`,
		"version-number": "openapi: 3.0\ninfo: {title: t, version: \"1\"}\npaths: {}\n",
		"servervar": `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: "/{a}/{b}", variables: {a: {default: "x"}, b: null}}]
paths:
  /a:
    get: {responses: {"200": {description: ok}}}
`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) { rtLoadWithin(t, body) })
	}
}

const rtOverlap = `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: /api}]
paths:
  /users/me:
    get: {responses: {"200": {description: ok}}}
  /users/{name}:
    get:
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
`

// Found by the red team: a caller that used only /users/{name} was also
// allowed /users/me, its own operation.
func TestRedteamFixedWildcardOperationIsNotTheLiteralOne(t *testing.T) {
	allowed := rtLearn(t, rtSpec(t, rtOverlap), false, 0, call{"GET", "/api/users/alice"})
	assert.True(t, allowed("GET", "/api/users/bob"))
	assert.False(t, allowed("GET", "/api/users/me"))
	allowed = rtLearn(t, rtSpec(t, rtOverlap), false, 0, call{"GET", "/api/users/me"})
	assert.True(t, allowed("GET", "/api/users/me"))
	assert.False(t, allowed("GET", "/api/users/bob"))
}
