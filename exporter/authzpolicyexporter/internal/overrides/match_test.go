package overrides

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

const (
	bank  = "spiffe://example.org/ns/bank/sa/balances"
	front = "spiffe://example.org/ns/bank/sa/frontend"
	other = "spiffe://other.org/ns/x/sa/y"
)

func testRule(t *testing.T, callee, caller string, methods []string, routes ...string) Rule {
	t.Helper()
	r := Rule{Callee: mustPattern(t, callee), Caller: mustPattern(t, caller), Methods: methods}
	for _, text := range routes {
		rt, err := parseRoute(text)
		require.NoError(t, err)
		r.Routes = append(r.Routes, rt)
	}
	return r
}

func TestRuleKey(t *testing.T) {
	r := testRule(t, "spiffe://example.org/ns/bank/**", front, []string{"DELETE", "GET"}, "/**")
	lr := route.Route{{Lit: "x"}}
	for _, tt := range []struct {
		callee, caller, method string
		want                   bool
	}{
		{bank, front, "GET", true},
		{bank, front, "DELETE", true},
		{"spiffe://example.org/ns/bank", front, "GET", true},
		{bank, front, "POST", false},
		{bank, front, "get", false},
		{bank, other, "GET", false},
		{other, front, "GET", false},
		{"spiffe://example.org/ns/bank/", front, "GET", false},
	} {
		name := fmt.Sprintf("%s %s %s", tt.callee, tt.caller, tt.method)
		assert.Equal(t, tt.want, r.Match(tt.callee, tt.caller, tt.method, []string{"x"}), name)
		assert.Equal(t, tt.want, r.Covers(tt.callee, tt.caller, tt.method, lr), name)
	}

	anyMethod := testRule(t, "*", "*", nil, "/x")
	for _, m := range []string{"GET", "PROPFIND", "get", ""} {
		assert.True(t, anyMethod.Match(bank, front, m, []string{"x"}), m)
	}
	assert.False(t, anyMethod.Match("not an id", front, "GET", []string{"x"}))
}

func TestRuleMatchRoutes(t *testing.T) {
	r := testRule(t, "*", "*", nil, "/healthz", "/balances/{id:int}/statement", "/admin/**")
	for _, tt := range []struct {
		segs []string
		want bool
	}{
		{[]string{"healthz"}, true},
		{[]string{"healthz", ""}, false},
		{[]string{"balances", "42", "statement"}, true},
		{[]string{"balances", "x", "statement"}, false},
		{[]string{"balances", "42"}, false},
		{[]string{"admin"}, true},
		{[]string{"admin", "users", "7"}, true},
		{[]string{""}, false},
	} {
		assert.Equal(t, tt.want, r.Match(bank, front, "GET", tt.segs), "%q", tt.segs)
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		rule, learned string
		covers        bool
	}{
		{"/**", "/a/{int}", true},
		{"/**", "/", true},
		{"/", "/", true},
		{"/admin/**", "/admin", true},
		{"/admin/**", "/admin/{token}/x", true},
		{"/admin/**", "/admins", false},
		{"/admin/**", "/", false},
		{"/a/b", "/a/b/c", false},
		{"/a/b/**", "/a", false},
		{"/users/{id}", "/users/{token}", true},
		{"/users/{id}", "/users/{uuid}", true},
		{"/users/{id}", "/users/x", true},
		{"/users/{id}", "/users/{int}/x", false},
		{"/users/{id:hex}", "/users/{int}", true},
		{"/users/{id:int}", "/users/{hex}", false},
		{"/users/{id:int}", "/users/{uuid}", false},
		{"/users/{id:hex}", "/users/{uuid}", false},
		{"/users/{id:id}", "/users/{uuid}", false},
		{"/users/{id:uuid}", "/users/{id}", false},
		{"/users/{id:token}", "/users/{uuid}", true},
		{"/users/{id:token}", "/users/{id}", true},
		{"/users/0", "/users/{int}", false},
		{"/users/x", "/users/{int}", false},
		{"/users/{id:int}", "/users/42", true},
		{"/users/{id:int}", "/users/x", false},
		{"/balances/0", "/balances/{int}", false},
		{"/balances/0", "/balances/0", true},
	}
	for _, tt := range tests {
		t.Run(tt.rule+" "+tt.learned, func(t *testing.T) {
			r := testRule(t, "*", "*", nil, tt.rule)
			lr, err := route.ParseKey(tt.learned)
			require.NoError(t, err)
			assert.Equal(t, tt.covers, r.Covers(bank, front, "GET", lr), "covers")
		})
	}
}

// TestCoversIsPerRoute pins the documented under-approximation: two
// routes that together admit all of a learned route do not cover it.
func TestCoversIsPerRoute(t *testing.T) {
	r := testRule(t, "*", "*", nil, "/u/{id:int}", "/u/{id:uuid}", "/u/{id:id}")
	lr, err := route.ParseKey("/u/{token}")
	require.NoError(t, err)
	assert.False(t, r.Covers(bank, front, "GET", lr))
}

func TestRuleMatchDoesNotAllocate(t *testing.T) {
	r := testRule(t, "spiffe://example.org/ns/bank/sa/*", "*", []string{"DELETE", "GET"}, "/healthz", "/balances/{id:int}/**")
	segs := []string{"balances", "42", "statement"}
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Match(bank, front, "GET", segs) }))
}

func TestAllowsAndDeniesOtherSpellings(t *testing.T) {
	set, err := Parse("rules.yaml", []byte(`
allow:
  - {callee: "*", caller: "*", methods: [GET], routes: ["/debug/{name}/**"]}
deny:
  - {callee: "*", caller: "*", methods: [GET], routes: ["/cart/0"]}
`))
	require.NoError(t, err)
	allow, deny := set.Allow[0], set.Deny[0]
	const id = "spiffe://example.org/a"
	for _, tt := range []struct {
		path         string
		allows, deny bool
	}{
		{"/debug/pprof/heap", true, false},
		{"/debug/pprof/", true, false},
		{"/debug/../cart/0", false, true},
		{"/debug/%2e%2e/x", false, true},
		{"/debug//x", false, false},
		{"/debug/./x", false, false},
		{`/debug/a\b`, false, true},
		{"/cart/0", false, true},
		{"/cart/0/", false, true},
		{"//cart/0", false, true},
		{"/cart/./0", false, true},
		{"/cart/%30", false, true},
		{"/cart/%zz", false, true},
		{"/cart/1", false, false},
		{"/debug/..;/cart/1", false, true},
		{"/debug/.;x/y", false, false},
		{"/debug/;/y", false, false},
		{"/debug/pprof;x=1/heap", true, false},
		{"/cart;v=1/0", false, true},
		{"/cart/0;jsessionid=1", false, true},
		{"/cart/;x/0", false, true},
		{"/cart/0+", false, false},
	} {
		var segs []string
		if rest, ok := strings.CutPrefix(tt.path, "/"); ok {
			segs = strings.Split(rest, "/")
		}
		assert.Equal(t, tt.allows, allow.Allows(id, id, "GET", segs), "allows %s", tt.path)
		assert.Equal(t, tt.deny, deny.Denies(id, id, "GET", tt.path), "denies %s", tt.path)
		assert.False(t, deny.Denies(id, id, "POST", tt.path), "another method: %s", tt.path)
	}
}

func TestDeniesLiteralsAsAServerReadsThem(t *testing.T) {
	set, err := Parse("rules.yaml", []byte(`
deny:
  - {callee: "*", caller: "*", methods: ["*"], routes: ["/c++/admin", "/caf%C3%A9", "/a%2Bb/{id:int}"]}
`))
	require.NoError(t, err)
	deny := set.Deny[0]
	const id = "spiffe://example.org/a"
	for path, want := range map[string]bool{
		"/c++/admin": true, "/c+%2B/admin": true, "/c++/%61dmin": true, "/c%20%20/admin": false,
		"/caf%C3%A9": true, "/caf%c3%a9": true, "/%63af%C3%A9": true, "/cafe": false,
		"/a%2Bb/1": true, "/a%2bb/1": true, "/a+b/1": true, "/a+%62/%31": true, "/a%20b/1": false, "/a+b/x": false,
	} {
		assert.Equal(t, want, deny.Denies(id, id, "GET", path), "denies %s", path)
	}
}
