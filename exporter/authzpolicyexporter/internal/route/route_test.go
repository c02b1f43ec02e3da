package route

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lit(s string) Segment  { return Segment{Lit: s} }
func wild(t Type) Segment   { return Segment{Wild: t} }
func rt(s ...Segment) Route { return Route(s) }

func TestStringAndParseKeyRoundTrip(t *testing.T) {
	tests := []struct {
		r   Route
		key string
	}{
		{rt(lit("")), "/"},
		{rt(lit("users")), "/users"},
		{rt(lit("users"), lit("")), "/users/"},
		{rt(lit("a"), lit(""), lit("b")), "/a//b"},
		{rt(lit("users"), wild(Int)), "/users/{int}"},
		{rt(lit("users"), wild(Hex), lit("profile")), "/users/{hex}/profile"},
		{rt(lit("u"), wild(UUID), wild(ID), wild(Token)), "/u/{uuid}/{id}/{token}"},
		{rt(wild(Token)), "/{token}"},
		{rt(lit("a%20b"), lit("x:y"), lit("@me"), lit("!$&'()*+,;=")), "/a%20b/x:y/@me/!$&'()*+,;="},
		{rt(lit("..."), lit(".a"), lit("%2e%2e%2e")), "/.../.a/%2e%2e%2e"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.key, tt.r.String())
		got, err := ParseKey(tt.key)
		require.NoError(t, err, tt.key)
		assert.Equal(t, tt.r, got, tt.key)
		assert.Equal(t, tt.key, got.String())
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, key := range []string{
		"",
		"users",
		"users/{int}",
		"{int}",
		"/{}",
		"/{string}",
		"/{INT}",
		"/{int",
		"/int}",
		"/{{int}}",
		"/a{int}",
		"/{int}x",
		"/a b",
		"/..",
		"/a/.",
		"/a/%2e%2e",
		"/a/%2F",
		"/a/%",
		"/a/é",
		"/a/\x00",
		"/a?b",
		"/a#b",
	} {
		_, err := ParseKey(key)
		assert.Error(t, err, "ParseKey(%q)", key)
	}
}

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		tpl  string
		want Route
	}{
		{"/", rt(lit(""))},
		{"/users", rt(lit("users"))},
		{"/users/{id}", rt(lit("users"), wild(Token))},
		{"/users/{id:int}", rt(lit("users"), wild(Int))},
		{"/users/{id:hex}/keys/{k:uuid}", rt(lit("users"), wild(Hex), lit("keys"), wild(UUID))},
		{"/users/{id:id}", rt(lit("users"), wild(ID))},
		{"/users/{id:token}", rt(lit("users"), wild(Token))},
		{"/users/{:int}", rt(lit("users"), wild(Int))},
		{"/users/:id", rt(lit("users"), wild(Token))},
		{"/users/:user_id/posts/:postId", rt(lit("users"), wild(Token), lit("posts"), wild(Token))},
		{"/{tenant}/users", rt(wild(Token), lit("users"))},
		{"/users/:", rt(lit("users"), lit(":"))},
		{"/a%20b", rt(lit("a%20b"))},
	}
	for _, tt := range tests {
		got, err := ParseTemplate(tt.tpl)
		require.NoError(t, err, tt.tpl)
		assert.Equal(t, tt.want, got, tt.tpl)
	}
}

func TestParseTemplateTyped(t *testing.T) {
	tests := []struct {
		tpl   string
		typed []bool
	}{
		{"/users", []bool{false}},
		{"/users/{id}", []bool{false, false}},
		{"/users/{id:int}", []bool{false, true}},
		{"/users/{:int}", []bool{false, true}},
		{"/users/{id:token}", []bool{false, true}},
		{"/users/:id", []bool{false, false}},
		{"/{tenant:int}/users/{id}/keys/{k:uuid}", []bool{true, false, false, false, true}},
	}
	for _, tt := range tests {
		got, typed, err := ParseTemplateTyped(tt.tpl)
		require.NoError(t, err, tt.tpl)
		assert.Equal(t, tt.typed, typed, tt.tpl)
		want, err := ParseTemplate(tt.tpl)
		require.NoError(t, err)
		assert.Equal(t, want, got, tt.tpl)
	}
	_, _, err := ParseTemplateTyped("/users/{id:name}")
	assert.ErrorContains(t, err, `unknown type "name"`)
}

func TestParseTemplateRejects(t *testing.T) {
	for _, tpl := range []string{
		"",
		"users/{id}",
		"{id}",
		"*",
		"/*",
		"/**",
		"/users/*",
		"/users/**",
		"/users/*path",
		"/users/{*path}",
		"/users/{**path}",
		"/users/{path*}",
		"/users/{path...}",
		"/users/{...}",
		"/users/{}",
		"/users/{id:}",
		"/users/{id:string}",
		"/users/{id:INT}",
		"/users/{id:.*}",
		"/users/{id:[0-9]+}",
		"/users/{a{b}",
		"/users/{id",
		"/users/id}",
		"/users/..",
		"/users/.",
		"/users/%2e%2e",
		"/users/%2f",
		"/users/a b",
		"/users/<id>",
		"/users/<int:id>",
		// path-to-regexp (Express, Koa) modifiers: :p* and :p+ span any
		// number of segments, :p(.*) is the usual catch-all spelling.
		"/:path*",
		"/files/:path+",
		"/:path(.*)",
		"/files/:rest(.*)",
		"/files/:name?",
		"/files/:name{.+}",
	} {
		_, err := ParseTemplate(tpl)
		assert.Error(t, err, "ParseTemplate(%q)", tpl)
	}
	// Long templates are truncated in the message.
	_, err := ParseTemplate(strings.Repeat("x", 1000))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 200)
}

func TestMatch(t *testing.T) {
	tests := []struct {
		key  string
		segs []string
		want bool
	}{
		{"/", []string{""}, true},
		{"/", []string{}, false},
		{"/", []string{"", ""}, false},
		{"/users", []string{"users"}, true},
		{"/users", []string{"users", ""}, false},
		{"/users", []string{"Users"}, false},
		{"/users", []string{"users2"}, false},
		{"/a/b_1", []string{"a", "b_1"}, true},
		{"/a/b_1", []string{"a", "b_10"}, false},
		{"/a/b_1", []string{"a", "b_1", "x"}, false},
		{"/a/b_1", []string{"a", "b_"}, false},
		{"/a/b_1", []string{"a"}, false},
		{"/users/{int}", []string{"users", "12345"}, true},
		{"/users/{int}", []string{"users", "admin"}, false},
		{"/users/{int}", []string{"users", "12345", "x"}, false},
		{"/users/{int}", []string{"users", "1", "2"}, false},
		{"/users/{int}", []string{"users", ""}, false},
		{"/users/{int}", []string{"users"}, false},
		{"/users/{token}", []string{"users", "admin"}, true},
		{"/users/{token}", []string{"users", ".."}, false},
		{"/users/{token}", []string{"users", "."}, false},
		{"/users/{token}", []string{"users", ""}, false},
		{"/users/{token}", []string{"users", "%2e%2e"}, false},
		{"/users/{token}", []string{"users", "a%2fb"}, false},
		{"/users/{token}", []string{"users", "a/b"}, false},
		{"/users/{token}", []string{"users", "a", "b"}, false},
		{"/users/{id}", []string{"users", "..1"}, true},
		{"/users/{hex}/x", []string{"users", "abc1", "x"}, true},
		{"/users/{hex}/x", []string{"users", "abc", "x"}, false},
		{"/users/{hex}/x", []string{"users", "abc1", "y"}, false},
		{"/users/{uuid}", []string{"users", "550e8400-e29b-41d4-a716-446655440000"}, true},
		{"/users/{uuid}", []string{"users", "550e8400"}, false},
	}
	for _, tt := range tests {
		r, err := ParseKey(tt.key)
		require.NoError(t, err, tt.key)
		assert.Equal(t, tt.want, r.Match(tt.segs), "%s.Match(%q)", tt.key, tt.segs)
	}
}

func TestHasWildcard(t *testing.T) {
	assert.False(t, rt(lit("a"), lit("b")).HasWildcard())
	assert.False(t, rt(lit("")).HasWildcard())
	assert.True(t, rt(lit("a"), wild(Int)).HasWildcard())
	assert.True(t, rt(wild(Token)).HasWildcard())
}

func TestValidMethod(t *testing.T) {
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PROPFIND", "VERSION-CONTROL", "MY_METHOD", strings.Repeat("A", 32)} {
		assert.True(t, ValidMethod(m), m)
	}
	for _, m := range []string{"", "get", "Get", "GET ", " GET", "GE T", "GET\n", "G3T", "GET/1", "*", strings.Repeat("A", 33), "GÉT", "\x00"} {
		assert.False(t, ValidMethod(m), "%q", m)
	}
}

func TestIsGRPCMethod(t *testing.T) {
	for path, want := range map[string]bool{
		"/bank.Ledger/Transfer":        true,
		"/bank.v1.Ledger/Transfer":     true,
		"/grpc.health.v1.Health/Check": true,
		"/pkg.Svc/lowerMethod":         true,
		"/pkg.Svc/_x1":                 true,
		"/Greeter/SayHello":            true,
		"/Greeter/sayHello":            false,
		"/greeter/SayHello":            false,
		"/users/kim":                   false,
		"/pkg..Svc/M":                  false,
		"/pkg.Svc./M":                  false,
		"/.Svc/M":                      false,
		"/pkg.1Svc/M":                  false,
		"/pkg.Svc/1M":                  false,
		"/pkg.Svc/M-x":                 false,
		"/pkg.Svc/":                    false,
		"/pkg.Svc":                     false,
		"/pkg.Svc/M/x":                 false,
		"/pkg.Svc/%4D":                 false,
	} {
		assert.Equal(t, want, isGRPCMethod(strings.Split(path[1:], "/")), path)
	}
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/users/{token}", "/users/me", true},
		{"/users/{int}", "/users/me", false},
		{"/users/{int}", "/users/{uuid}", false},
		{"/users/{id}", "/users/{uuid}", true},
		{"/users/{token}/x", "/users/{int}/y", false},
		{"/users/{token}", "/users/{token}/x", false},
		{"/a/{hex}", "/a/{int}", true},
		{"/a", "/a", true},
		{"/a", "/b", false},
	} {
		a, err := ParseKey(tc.a)
		require.NoError(t, err)
		b, err := ParseKey(tc.b)
		require.NoError(t, err)
		assert.Equal(t, tc.want, Overlaps(a, b), "%s %s", tc.a, tc.b)
		assert.Equal(t, tc.want, Overlaps(b, a), "%s %s", tc.b, tc.a)
	}
}
