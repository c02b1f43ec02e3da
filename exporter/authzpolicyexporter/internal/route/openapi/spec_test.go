package openapi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

func load(t testing.TB, file string) *Spec {
	t.Helper()
	s, err := Load("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// matches lists, per spec file, requests and the operation each is (its
// String), or "" for none.
var matches = []struct {
	file, method, path, want string
}{
	// 3.0 YAML: base path from an absolute URL with variables.
	{"shop-3.0.yaml", "GET", "/api/v1/orders/42", "GET /api/v1/orders/{int}"},
	{"shop-3.0.yaml", "GET", "/api/v1/orders/4a", ""},  // wrong type
	{"shop-3.0.yaml", "GET", "/api/v1/orders/-1", ""},  // int is digits
	{"shop-3.0.yaml", "GET", "/orders/42", ""},         // outside the base path
	{"shop-3.0.yaml", "GET", "/api/v2/orders/42", ""},  // the default only
	{"shop-3.0.yaml", "GET", "/api/v1/orders/42/", ""}, // no trailing slash in the spec
	{"shop-3.0.yaml", "DELETE", "/api/v1/orders/42", "DELETE /api/v1/orders/{int}"},
	{"shop-3.0.yaml", "PATCH", "/api/v1/orders/42", ""}, // no such method
	{"shop-3.0.yaml", "get", "/api/v1/orders/42", ""},   // methods as sent
	// Parameters on the path item, overridden by the operation's.
	{"shop-3.0.yaml", "GET", "/api/v1/customers/alice/orders", "GET /api/v1/customers/{token}/orders"},
	{"shop-3.0.yaml", "GET", "/api/v1/customers/bob_1/orders", "GET /api/v1/customers/{token}/orders"},
	{"shop-3.0.yaml", "POST", "/api/v1/customers/17/orders", "POST /api/v1/customers/{int}/orders"},
	{"shop-3.0.yaml", "POST", "/api/v1/customers/alice/orders", ""},
	// A literal wins over a parameter.
	{"shop-3.0.yaml", "GET", "/api/v1/customers/me/orders", "GET /api/v1/customers/me/orders"},
	{"shop-3.0.yaml", "POST", "/api/v1/customers/me/orders", ""},
	// Enums ($ref'd schema with a duplicate value), exactly.
	{"shop-3.0.yaml", "GET", "/api/v1/orders/by-status/open", "GET /api/v1/orders/by-status/{closed|open}"},
	{"shop-3.0.yaml", "GET", "/api/v1/orders/by-status/closed", "GET /api/v1/orders/by-status/{closed|open}"},
	{"shop-3.0.yaml", "GET", "/api/v1/orders/by-status/Open", ""},
	{"shop-3.0.yaml", "GET", "/api/v1/orders/by-status/pending", ""},
	// Integer enums as decimal text.
	{"shop-3.0.yaml", "GET", "/api/v1/pages/10", "GET /api/v1/pages/{1|10|2}"},
	{"shop-3.0.yaml", "GET", "/api/v1/pages/3", ""},
	{"shop-3.0.yaml", "GET", "/api/v1/pages/01", ""},
	// Booleans are an enum.
	{"shop-3.0.yaml", "GET", "/api/v1/flags/true", "GET /api/v1/flags/{false|true}"},
	{"shop-3.0.yaml", "GET", "/api/v1/flags/yes", ""},
	// uuid after a $ref'd integer.
	{"shop-3.0.yaml", "GET", "/api/v1/orders/7/items/123e4567-e89b-12d3-a456-426614174000", "GET /api/v1/orders/{int}/items/{uuid}"},
	{"shop-3.0.yaml", "GET", "/api/v1/orders/7/items/123e4567", ""},
	// A parameter without a schema is a token; a token is one segment.
	{"shop-3.0.yaml", "GET", "/api/v1/anything/x.y", "GET /api/v1/anything/{token}"},
	{"shop-3.0.yaml", "GET", "/api/v1/anything/..", ""},
	{"shop-3.0.yaml", "GET", "/api/v1/anything/a/b", ""},
	// Mixed segments are refused, never matched as something wider.
	{"shop-3.0.yaml", "GET", "/api/v1/files/a.json", ""},
	{"shop-3.0.yaml", "GET", "/api/v1/ranges/1-2", ""},

	// 3.1 JSON: a relative server URL, type arrays, const, number.
	{"pets-3.1.json", "GET", "/pets-api/pets/7", "GET /pets-api/pets/{int}"},
	{"pets-3.1.json", "GET", "/pets-api/pets/null", ""},
	{"pets-3.1.json", "PUT", "/pets-api/pets/123e4567-e89b-12d3-a456-426614174000", "PUT /pets-api/pets/{uuid}"},
	{"pets-3.1.json", "PUT", "/pets-api/pets/7", ""},
	{"pets-3.1.json", "GET", "/pets-api/pets/search", "GET /pets-api/pets/search"},
	{"pets-3.1.json", "GET", "/pets-api/pets/cat/1.5", "GET /pets-api/pets/{cat}/{token}"},
	{"pets-3.1.json", "GET", "/pets-api/pets/dog/1.5", ""},
	{"pets-3.1.json", "GET", "/pets/7", ""},

	// Swagger 2.0: basePath, parameters on the path item and the operation.
	{"store-2.0.yaml", "GET", "/store/v2/items/5", "GET /store/v2/items/{int}"},
	{"store-2.0.yaml", "GET", "/store/v2/items/5/color/red", "GET /store/v2/items/{int}/color/{green|red}"},
	{"store-2.0.yaml", "GET", "/store/v2/items/5/color/blue", ""},
	{"store-2.0.yaml", "GET", "/items/5", ""},

	// No servers: no base path.
	{"noservers.yaml", "GET", "/health", "GET /health"},
	{"noservers.yaml", "GET", "/users/alice", "GET /users/{token}"},
	{"noservers.yaml", "GET", "/users/al%20ice", ""}, // not a token
	{"noservers.yaml", "GET", "users/alice", ""},
	{"noservers.yaml", "GET", "/", ""},
}

func TestMatch(t *testing.T) {
	specs := map[string]*Spec{}
	for _, tc := range matches {
		s := specs[tc.file]
		if s == nil {
			s = load(t, tc.file)
			specs[tc.file] = s
		}
		op, ok := s.Match(tc.method, tc.path)
		got := ""
		if ok {
			got = op.String()
			if !op.match(strings.Split(tc.path[1:], "/")) {
				t.Errorf("%s %s: matched %s, which does not admit it", tc.method, tc.path, got)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %s %s = %q, want %q", tc.file, tc.method, tc.path, got, tc.want)
		}
	}
}

func TestOperations(t *testing.T) {
	s := load(t, "shop-3.0.yaml")
	var got []string
	for _, op := range s.Operations {
		got = append(got, op.Method+" "+op.Path)
	}
	// Every operation of the document but the refused ones, the one never
	// used included.
	want := []string{
		"GET /customers/me/orders",
		"GET /orders/by-status/{status}",
		"GET /flags/{on}",
		"GET /pages/{page}",
		"DELETE /orders/{orderId}",
		"GET /orders/{orderId}",
		"POST /customers/{name}/orders",
		"GET /orders/{orderId}/items/{item}",
		"GET /anything/{x}",
		"GET /customers/{name}/orders",
	}
	if !slices.Equal(got, want) {
		t.Errorf("operations\n%q\nwant\n%q", got, want)
	}
	wantRefused := []Refusal{
		{"GET", "/files/{name}.json", `segment "{name}.json" mixes parameters with text: a route segment is one literal or one parameter`},
		{"GET", "/ranges/{a}-{b}", `segment "{a}-{b}" mixes parameters with text: a route segment is one literal or one parameter`},
	}
	if !slices.Equal(s.Refused, wantRefused) {
		t.Errorf("refused %q, want %q", s.Refused, wantRefused)
	}
	if s.Version != "3.0.3" || s.Name != "testdata/shop-3.0.yaml" {
		t.Errorf("version %q name %q", s.Version, s.Name)
	}
	op, _ := s.Match("GET", "/api/v1/customers/alice/orders")
	if op.ID != "listOrders" {
		t.Errorf("operationId %q", op.ID)
	}
	if v := load(t, "pets-3.1.json").Version; v != "3.1.0" {
		t.Errorf("3.1 version %q", v)
	}
	if v := load(t, "store-2.0.yaml").Version; v != "2.0" {
		t.Errorf("2.0 version %q", v)
	}
}

func TestTemplate(t *testing.T) {
	s := load(t, "store-2.0.yaml")
	op, ok := s.Match("GET", "/store/v2/items/5/color/red")
	if !ok {
		t.Fatal("no match")
	}
	r, enums := op.Template()
	if got := r.String(); got != "/store/v2/items/{int}/color/{token}" {
		t.Errorf("route %s", got)
	}
	if want := map[int][]string{5: {"green", "red"}}; fmt.Sprint(enums) != fmt.Sprint(want) {
		t.Errorf("enums %v, want %v", enums, want)
	}
	// Without enums the route is the operation exactly, and the route
	// package's matcher agrees.
	op, _ = s.Match("GET", "/store/v2/items/5")
	r, enums = op.Template()
	if enums != nil || r.String() != "/store/v2/items/{int}" {
		t.Errorf("route %s enums %v", r, enums)
	}
	if !r.Match([]string{"store", "v2", "items", "5"}) || r.Match([]string{"store", "v2", "items", "x"}) {
		t.Error("route disagrees with the operation")
	}
	if _, err := route.ParseKey(r.String()); err != nil {
		t.Error(err)
	}
}

// doc is a one-path 3.0 document with the given servers (YAML) and a
// parameter schema.
func doc(servers, schema string) []byte {
	return []byte(`openapi: 3.0.0
info: {title: t, version: "1"}
` + servers + `
paths:
  /things/{p}:
    get:
      parameters:
        - {name: p, in: path, required: true, schema: ` + schema + `}
      responses: {"200": {description: ok}}
`)
}

func TestBasePath(t *testing.T) {
	for _, tc := range []struct{ servers, want string }{
		{``, "GET /things/{token}"},
		{`servers: [{url: "https://api.example"}]`, "GET /things/{token}"},
		{`servers: [{url: "https://api.example/"}]`, "GET /things/{token}"},
		{`servers: [{url: "https://api.example/v1/"}]`, "GET /v1/things/{token}"},
		{`servers: [{url: "/api/v1"}, {url: "/other"}]`, "GET /api/v1/things/{token}"},
		{`servers: [{url: "/"}]`, "GET /things/{token}"},
		{`servers: [{url: "{scheme}://h/{base}/x", variables: {scheme: {default: http}, base: {default: svc}}}]`, "GET /svc/x/things/{token}"},
		{`servers: [{url: "https://h/caf%C3%A9"}]`, "GET /caf%C3%A9/things/{token}"},
	} {
		s, err := Parse(doc(tc.servers, "{type: string}"), "t")
		if err != nil {
			t.Errorf("%s: %v", tc.servers, err)
			continue
		}
		if got := s.Operations[0].String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.servers, got, tc.want)
		}
	}
}

// TestServersOverride: an operation's or path item's servers replace the
// document's.
func TestServersOverride(t *testing.T) {
	s, err := Parse([]byte(`openapi: 3.0.0
info: {title: t, version: "1"}
servers: [{url: /doc}]
paths:
  /a:
    servers: [{url: /item}]
    get: {responses: {"200": {description: ok}}}
    put:
      servers: [{url: /op}]
      responses: {"200": {description: ok}}
  /b:
    get: {responses: {"200": {description: ok}}}
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range s.Operations {
		got = append(got, op.String())
	}
	slices.Sort(got)
	want := []string{"GET /doc/b", "GET /item/a", "PUT /op/a"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestSchemas(t *testing.T) {
	for _, tc := range []struct{ schema, want, refused string }{
		{"{type: integer}", "{int}", ""},
		{"{type: integer, format: int32}", "{int}", ""},
		{"{type: integer, format: int64}", "{int}", ""},
		{"{type: string, format: uuid}", "{uuid}", ""},
		{"{type: string}", "{token}", ""},
		{"{type: string, format: date}", "{token}", ""},
		{"{type: number}", "{token}", ""},
		{"{}", "{token}", ""},
		{"{oneOf: [{type: integer}, {type: string}]}", "{token}", ""},
		{"{type: boolean}", "{false|true}", ""},
		{"{type: string, enum: [b, a, b]}", "{a|b}", ""},
		{"{type: integer, enum: [3, 1]}", "{1|3}", ""},
		{"{type: string, enum: [a b, é]}", "{%C3%A9|a%20b}", ""},
		{"{type: string, enum: [ok, a/b]}", "", `parameter "p": enum value "a/b" cannot be one path segment`},
		{"{type: string, enum: [ok, ..]}", "", `parameter "p": enum value ".." cannot be one path segment`},
		{"{type: string, enum: [ok, '']}", "", `parameter "p": enum value "" cannot be one path segment`},
		{"{type: number, enum: [1.5]}", "", `parameter "p": enum value 1.5 is not a string, integer or boolean`},
		{"{type: array, items: {type: integer}}", "", `parameter "p": a path segment cannot be of type array`},
	} {
		s, err := Parse(doc("", tc.schema), "t")
		if err != nil {
			t.Errorf("%s: %v", tc.schema, err)
			continue
		}
		got, refused := "", ""
		if len(s.Operations) == 1 {
			got = strings.TrimPrefix(s.Operations[0].String(), "GET /things/")
		}
		if len(s.Refused) == 1 {
			refused = s.Refused[0].Reason
		}
		if got != tc.want || refused != tc.refused {
			t.Errorf("%s: %q refused %q, want %q refused %q", tc.schema, got, refused, tc.want, tc.refused)
		}
	}
}

// TestEnumEscaped: enum values that need escaping match as requests send
// them.
func TestEnumEscaped(t *testing.T) {
	s, err := Parse(doc("", "{type: string, enum: [a b]}"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Match("GET", "/things/a%20b"); !ok {
		t.Error("escaped value does not match")
	}
	if _, ok := s.Match("GET", "/things/a b"); ok {
		t.Error("raw space matches")
	}
}

// TestPrecedence: of operations that could both match, the more concrete
// at the first differing segment wins, whatever the document's order.
// (The library refuses paths that differ only in their parameters'
// names, so two candidates always differ in a literal somewhere.)
func TestPrecedence(t *testing.T) {
	s, err := Parse([]byte(`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /{kind}/{id}:
    get:
      parameters:
        - {name: kind, in: path, required: true, schema: {type: string}}
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /users/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /users/{n}x:
    get:
      parameters: [{name: n, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /users/{status}/all:
    get:
      parameters: [{name: status, in: path, required: true, schema: {enum: [active]}}]
      responses: {"200": {description: ok}}
  /{a}/{b}/all:
    get:
      parameters:
        - {name: a, in: path, required: true, schema: {type: string}}
        - {name: b, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
  /users/me:
    get: {responses: {"200": {description: ok}}}
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/users/me":         "/users/me",
		"/users/alice":      "/users/{id}",
		"/teams/alice":      "/{kind}/{id}",
		"/users/active/all": "/users/{status}/all",
		"/users/12/all":     "/{a}/{b}/all",
		"/users/bob/all":    "",
		"/users/1x":         "/users/{id}", // the mixed segment was refused
	} {
		op, ok := s.Match("GET", path)
		if want == "" && ok || want != "" && (!ok || op.Path != want) {
			t.Errorf("%s: %v %v, want %s", path, op, ok, want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		is   error
		text string
	}{
		{"missing.yaml", ErrUnreadable, "openapi spec testdata/missing.yaml: cannot read spec: no such file or directory"},
		{".", ErrUnreadable, "openapi spec testdata/.: cannot read spec: is a directory"},
		{"badyaml.yaml", ErrNotOpenAPI, "openapi spec testdata/badyaml.yaml: not an OpenAPI document: neither YAML nor JSON: yaml: line 1: did not find expected ',' or '}'"},
		{"notopenapi.yaml", ErrNotOpenAPI, "openapi spec testdata/notopenapi.yaml: not an OpenAPI document: no openapi or swagger field"},
		{"undeclared.yaml", ErrUndeclared, `openapi spec testdata/undeclared.yaml: path parameter not declared: GET /users/{id}: "id" is not a path parameter of the operation`},
		{"invalid.yaml", ErrInvalid, `openapi spec testdata/invalid.yaml: invalid OpenAPI document: failed to resolve "components" in fragment in URI: "#/components/parameters/Missing"`},
	} {
		_, err := Load("testdata/" + tc.file)
		if err == nil || !errors.Is(err, tc.is) || err.Error() != tc.text {
			t.Errorf("%s: %v, want %q", tc.file, err, tc.text)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ok := `info: {title: t, version: "1"}
paths:
  /a/{x}:
    parameters: [{name: x, in: path, required: true, schema: {type: string}}]
`
	for _, tc := range []struct {
		data string
		is   error
		text string
	}{
		{"openapi: 4.0.0\n" + ok, ErrNotOpenAPI, `t: not an OpenAPI document: openapi "4.0.0", want 3.x`},
		{"swagger: '1.2'\n" + ok, ErrNotOpenAPI, `t: not an OpenAPI document: swagger "1.2", want 2.0`},
		{"[1, 2]", ErrNotOpenAPI, "t: not an OpenAPI document: neither YAML nor JSON: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into struct { OpenAPI interface {} \"yaml:\\\"openapi\\\"\"; Swagger interface {} \"yaml:\\\"swagger\\\"\" }"},
		// A parameter declared on the path item but not on the path.
		{`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /a:
    parameters: [{name: x, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}}}
`, ErrInvalid, `t: invalid OpenAPI document: GET /a: path parameter "x" is not in the path`},
		// Undeclared even within a mixed segment.
		{`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /a/{x}.json:
    get: {responses: {"200": {description: ok}}}
`, ErrUndeclared, `t: path parameter not declared: GET /a/{x}.json: "x" is not a path parameter of the operation`},
		// A query parameter of the name does not declare the path one.
		{`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /a/{x}:
    get:
      parameters: [{name: x, in: query, schema: {type: string}}]
      responses: {"200": {description: ok}}
`, ErrUndeclared, `t: path parameter not declared: GET /a/{x}: "x" is not a path parameter of the operation`},
		// External references are not read.
		{`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /a:
    $ref: 'other.yaml#/a'
`, ErrInvalid, ""},
		{`openapi: 3.0.0
info: {title: t, version: "1"}
servers: [{url: "/{v}", variables: {v: {default: ""}}}]
paths: {}
`, ErrInvalid, ""},
	} {
		_, err := Parse([]byte(tc.data), "t")
		if err == nil || !errors.Is(err, tc.is) || tc.text != "" && err.Error() != "openapi spec "+tc.text {
			t.Errorf("%.40q: %v, want %q", tc.data, err, tc.text)
		}
	}
}

// An operation's enums are granted whole: Alternatives gives every other
// combination of their values, once each.
func TestAlternatives(t *testing.T) {
	s, err := Parse([]byte(`openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /r/{region}/s/{state}/{id}:
    get:
      parameters:
        - {name: region, in: path, required: true, schema: {enum: [eu, us, ap]}}
        - {name: state, in: path, required: true, schema: {type: boolean}}
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
  /n/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses: {"200": {description: ok}}
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	op, ok := s.Match("GET", "/r/us/s/true/7")
	if !ok || !op.HasEnum() {
		t.Fatalf("no enum operation: %v %v", op, ok)
	}
	segs := route.AppendSegments(nil, "/r/us/s/true/7")
	key, _ := op.AppendKey(nil, segs)
	if string(key) != "/r/us/s/true/{int}" {
		t.Fatalf("key %s", key)
	}
	got := alternatives(t, s, "GET", string(key))
	want := []string{
		"/r/ap/s/false/{int}", "/r/ap/s/true/{int}", "/r/eu/s/false/{int}", "/r/eu/s/true/{int}",
		"/r/us/s/false/{int}",
	}
	if !slices.Equal(got, want) {
		t.Errorf("alternatives %q, want %q", got, want)
	}
	op, _ = s.Match("GET", "/n/7")
	if op.HasEnum() {
		t.Error("no enum here")
	}
	assert.Empty(t, alternatives(t, s, "GET", "/n/{int}"), "no alternatives without an enum")
}

// An operation whose enums make more than MaxEnumRoutes routes is refused,
// saying why; one at the limit is not.
func TestEnumCap(t *testing.T) {
	values := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprintf("v%d", i)
		}
		return "[" + strings.Join(v, ", ") + "]"
	}
	doc := func(a, b int) string {
		return `openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /x/{a}/{b}:
    get:
      parameters:
        - {name: a, in: path, required: true, schema: {enum: ` + values(a) + `}}
        - {name: b, in: path, required: true, schema: {enum: ` + values(b) + `}}
      responses: {"200": {description: ok}}
`
	}
	s, err := Parse([]byte(doc(8, 8)), "t")
	if err != nil || len(s.Operations) != 1 || len(s.Refused) != 0 {
		t.Fatalf("8x8 enums: %v, %d operations, refused %v", err, len(s.Operations), s.Refused)
	}
	n := len(alternatives(t, s, "GET", "/x/v0/v0"))
	if n != MaxEnumRoutes-1 {
		t.Errorf("%d alternatives, want %d", n, MaxEnumRoutes-1)
	}
	s, err = Parse([]byte(doc(65, 1)), "t")
	if err != nil || len(s.Operations) != 0 || len(s.Refused) != 1 {
		t.Fatalf("65 values: %v, %d operations, refused %v", err, len(s.Operations), s.Refused)
	}
	if r := s.Refused[0].Reason; !strings.Contains(r, "more than 64 routes per caller (a: 65 values, b: 1 values)") {
		t.Errorf("reason %q", r)
	}
}

// Taken lists what the operations before a route's own take of it,
// narrowed to the route, and for any other route what every operation
// takes of it.
func TestTaken(t *testing.T) {
	s := load(t, "overlap.yaml")
	for _, tc := range []struct {
		method, route string
		taken         []string
		whole         bool
		heuristic     bool
	}{
		{"GET", "/api/users/{token}", []string{"/api/users/me"}, false, false},
		{"GET", "/api/users/me", nil, false, false},
		{"GET", "/api/users/{token}/orders/{int}", []string{"/api/users/admin/orders/{int}"}, false, false},
		// An enum's other values go to the operations before it, whole or
		// in part; its literal route is taken where a literal is first.
		{"GET", "/api/shops/eu/items/{int}", []string{"/api/shops/eu/items/{int}"}, true, false},
		{"GET", "/api/shops/us/items/{int}", nil, false, false},
		// A literal before a wildcard, at the wildcard's type.
		{"GET", "/api/shops/{token}/{token}/{uuid}", []string{"/api/shops/eu/items/{uuid}"}, false, false},
		// An enum's values a wildcard admits, one route each.
		{"GET", "/api/catalog/{token}/{token}", []string{"/api/catalog/3/list", "/api/catalog/books/list", "/api/catalog/films/list"}, false, false},
		// Types that meet without one holding the other: the narrower
		// type of the two, or the earlier operation's.
		{"GET", "/api/v/{token}/x", []string{"/api/v/{int}/x"}, false, false},
		{"DELETE", "/api/v/{token}/x", nil, false, false},
		{"GET", "/api/nowhere/{int}", nil, false, false},
		{"POST", "/api/users/{token}", nil, false, false},
		// A route no operation grants, heuristic or of an operation the
		// spec no longer has: every operation takes its part.
		{"GET", "/api/users/{int}", []string{"/api/users/{int}"}, true, true},
		{"GET", "/api/users/{id}", []string{"/api/users/{id}"}, true, false},
		{"GET", "/api/v/{token}/{int}", []string{"/api/v/{int}/{int}"}, false, true},
		{"GET", "/api/v/{token}/x", []string{"/api/v/{int}/x", "/api/v/{token}/x"}, true, true},
		{"GET", "/api/nowhere/{int}", nil, false, true},
	} {
		rt, err := route.ParseKey(tc.route)
		if err != nil {
			t.Fatal(err)
		}
		taken, whole := s.Taken(tc.method, rt, !tc.heuristic)
		var got []string
		for _, r := range taken {
			got = append(got, r.String())
		}
		if !slices.Equal(got, tc.taken) || whole != tc.whole {
			t.Errorf("%s %s: taken %q whole %v, want %q %v", tc.method, tc.route, got, whole, tc.taken, tc.whole)
		}
	}
	// An enum's alternative taken whole is no alternative: the eu items
	// are /shops/eu/items/{sku}'s.
	op, ok := s.Match("GET", "/api/shops/us/items/7")
	if !ok {
		t.Fatal("no shops operation")
	}
	alts := alternatives(t, s, op.Method, "/api/shops/us/items/{int}")
	if want := []string{"/api/shops/5/items/{int}"}; !slices.Equal(alts, want) {
		t.Errorf("alternatives %q, want %q", alts, want)
	}
}

// A route of an operation admits a request, none of what Taken says the
// operations before it take admitting it too, exactly when Match gives
// that operation; any other route, exactly when Match gives none: every
// route of every operation of a spec of overlapping operations, and
// routes of wildcards of each type, against every path of their segments.
func TestTakenAgreesWithMatch(t *testing.T) {
	s := load(t, "overlap.yaml")
	vocab := []string{"users", "me", "admin", "alice", "orders", "7", "5", "x", "shops", "eu", "us",
		"items", "latest", "v", "catalog", "books", "list", "3", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f"}
	var probes [][]string
	var grow func(segs []string)
	grow = func(segs []string) {
		if len(segs) >= 3 {
			probes = append(probes, slices.Clone(segs))
		}
		if len(segs) == 5 {
			return
		}
		for _, v := range vocab {
			grow(append(segs, v))
		}
	}
	grow([]string{"api"})
	checked := 0
	for i := range s.Operations {
		op := &s.Operations[i]
		for _, rt := range grantedRoutes(op) {
			taken, _ := s.Taken(op.Method, rt, true)
			for _, p := range probes {
				got := rt.Match(p) && !slices.ContainsFunc(taken, func(r route.Route) bool { return r.Match(p) })
				m, ok := s.Match(op.Method, "/"+strings.Join(p, "/"))
				want := ok && m == op && rt.Match(p)
				if got != want {
					t.Fatalf("%s %s on /%s: route and taken say %v, Match %v (taken %v)", op.Method, rt, strings.Join(p, "/"), got, want, taken)
				}
				if want {
					checked++
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d requests granted: the probes miss the spec", checked)
	}
	heuristic := 0
	for _, n := range []int{3, 4, 5} {
		for _, typ := range []route.Type{route.Int, route.UUID, route.Token} {
			for at := 1; at < n; at++ {
				rt := make(route.Route, n)
				for i := range rt {
					rt[i] = route.Segment{Wild: route.Token}
				}
				rt[0] = route.Segment{Lit: "api"}
				rt[at] = route.Segment{Wild: typ}
				taken, _ := s.Taken("GET", rt, false)
				for _, p := range probes {
					got := rt.Match(p) && !slices.ContainsFunc(taken, func(r route.Route) bool { return r.Match(p) })
					_, ok := s.Match("GET", "/"+strings.Join(p, "/"))
					if want := rt.Match(p) && !ok; got != want {
						t.Fatalf("%s on /%s: route and taken say %v, Match %v (taken %v)", rt, strings.Join(p, "/"), got, want, taken)
					} else if want {
						heuristic++
					}
				}
			}
		}
	}
	if heuristic < 20 {
		t.Errorf("only %d requests left to heuristic routes", heuristic)
	}
}

// grantedRoutes are the routes an operation grants: its template with
// every combination of its enums' values.
func grantedRoutes(op *Operation) []route.Route {
	tpl, _ := op.Template()
	out := []route.Route{tpl}
	for i, s := range op.Segments {
		if s.Kind != Enum {
			continue
		}
		var next []route.Route
		for _, r := range out {
			for _, v := range s.Values {
				c := slices.Clone(r)
				c[i] = route.Segment{Lit: v}
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

// alternatives are the keys of Spec.Alternatives of the route key.
func alternatives(t *testing.T, s *Spec, method, key string) []string {
	t.Helper()
	rt, err := route.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range s.Alternatives(method, rt) {
		out = append(out, r.String())
	}
	return out
}
