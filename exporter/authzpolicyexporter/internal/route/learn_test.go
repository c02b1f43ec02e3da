package route

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
)

const (
	testMaxLength   = 256
	testMaxSegments = 16
)

func newTestLearner(tb testing.TB, templates ...string) *Learner {
	tb.Helper()
	l, err := NewLearner(templates, testMaxLength, testMaxSegments)
	require.NoError(tb, err)
	return l
}

func TestLearn(t *testing.T) {
	const uuid = "550e8400-e29b-41d4-a716-446655440000"
	tests := []struct {
		name         string
		path         string
		instrumented string
		want         string
	}{
		{"root", "/", "", "/"},
		{"literal", "/healthz", "", "/healthz"},
		{"trailing slash kept", "/users/", "", "/users/"},
		{"empty segment kept", "/a//b", "", "/a//b"},
		{"int", "/users/12345", "", "/users/{int}"},
		{"grpc method", "/bank.Ledger/Transfer", "", "/bank.Ledger/Transfer"},
		{"grpc method like hex", "/bank.Ledger/Add123", "", "/bank.Ledger/Add123"},
		{"grpc method with a year", "/bank.v1.Reports/Get2024", "", "/bank.v1.Reports/Get2024"},
		{"grpc long method", "/bank.Ledger/ListTransactionsForAccount2024Quarterly", "", "/bank.Ledger/ListTransactionsForAccount2024Quarterly"},
		{"grpc without a package", "/Greeter/SayHello1234", "", "/Greeter/SayHello1234"},
		{"grpc method despite http.route", "/bank.Ledger/Transfer", "/bank.Ledger/{method}", "/bank.Ledger/Transfer"},
		{"not grpc: lower-case service", "/greeter/abc123", "", "/greeter/{hex}"},
		{"not grpc: three segments", "/bank.Ledger/Get/123456", "", "/bank.Ledger/Get/{int}"},
		{"int zero", "/users/0", "", "/users/{int}"},
		{"int nested", "/users/12345/orders/678", "", "/users/{int}/orders/{int}"},
		{"uuid", "/users/" + uuid, "", "/users/{uuid}"},
		{"uuid upper", "/users/" + strings.ToUpper(uuid), "", "/users/{uuid}"},
		{"hex", "/objects/9f3b2c1d7e", "", "/objects/{hex}"},
		{"hex word deadbeef", "/beef/deadbeef", "", "/beef/deadbeef"},
		{"hex word cafe", "/menu/cafe", "", "/menu/cafe"},
		{"hex word added", "/items/added", "", "/items/added"},
		{"short hex with digits", "/k/ab12", "", "/k/ab12"},
		{"id", "/orders/order-2024-0001", "", "/orders/{id}"},
		{"id few digits stays literal", "/accounts/balance_1", "", "/accounts/balance_1"},
		{"name stays literal", "/users/alice", "", "/users/alice"},
		{"api and versions", "/api/v1/users", "", "/api/v1/users"},
		{"api not first", "/svc/api/v1", "", "/svc/api/v1"},
		{"API upper", "/svc/API", "", "/svc/API"},
		{"v2beta1", "/apis/v2beta1/things", "", "/apis/v2beta1/things"},
		{"v1alpha", "/apis/v1alpha/things", "", "/apis/v1alpha/things"},
		{"V10", "/apis/V10", "", "/apis/V10"},
		{"date", "/reports/2024-01-15", "", "/reports/2024-01-15"},
		{"first segment int", "/12345/items", "", "/12345/items"},
		{"first segment only", "/12345", "", "/12345"},
		{"first segment uuid", "/" + uuid, "", "/" + uuid},
		{"first segment hex", "/9f3b2c1d7e", "", "/9f3b2c1d7e"},
		{"pixie redaction", "/users/<id>", "", "/users/{hex}"},
		{"pixie redacted uuid", "/users/<id>-7b4d-4e2a-9c1f-<id>", "", "/users/{uuid}"},
		{"query dropped", "/users/12345?expand=all&x=../..", "", "/users/{int}"},
		{"fragment dropped", "/docs/intro#section-2", "", "/docs/intro"},
		{"fragment before query", "/a#x?y=1", "", "/a"},
		{"query dropped at root", "/?q=1", "", "/"},
		{"query with bad chars dropped", "/search?q=%zz <x>", "", "/search"},
		{"long word stays literal", "/files/" + strings.Repeat("abcdefghij", 4), "", "/files/" + strings.Repeat("abcdefghij", 4)},
		{"long grpc method stays literal", "/bank.v1.PaymentService/GetPaymentStatusForMerchantAccount", "", "/bank.v1.PaymentService/GetPaymentStatusForMerchantAccount"},
		{"long token with digits", "/files/" + strings.Repeat("abcdefghi1", 4), "", "/files/{id}"},
		{"long hex word", "/files/" + strings.Repeat("deadbeef", 5), "", "/files/" + strings.Repeat("deadbeef", 5)},
		{"long hex", "/files/" + strings.Repeat("deadbee1", 5), "", "/files/{hex}"},
		{"percent escapes stay literal", "/files/a%20b", "", "/files/a%20b"},
		{"sub-delims stay literal", "/files/a:b@c!$&'()*+,;=", "", "/files/a:b@c!$&'()*+,;="},
		{"three dots is not a dot segment", "/x/...", "", "/x/..."},
		{"dot-prefixed name", "/x/.well-known", "", "/x/.well-known"},
		{"ellipsis is not a dot segment", "/x/%E2%80%A6", "", "/x/%E2%80%A6"},
		{"three dots and a space", "/x/...%20", "", "/x/...%20"},
		{"fullwidth dot in a name", "/x/%EF%BC%8Ex", "", "/x/%EF%BC%8Ex"},
		{"dot and space in a name", "/x/.%20x", "", "/x/.%20x"},
		{"non-ascii name", "/x/caf%C3%A9", "", "/x/caf%C3%A9"},
		{"only spaces", "/x/%20%20", "", "/x/%20%20"},
		{"only a zero-width space", "/x/%E2%80%8B", "", "/x/%E2%80%8B"},
		{"dots after parameters", "/x/a;%EF%BC%8E%EF%BC%8E", "", "/x/a;%EF%BC%8E%EF%BC%8E"},

		{"http.route narrows int", "/accounts/12345", "/accounts/{id}", "/accounts/{int}"},
		{"http.route narrows hex", "/accounts/abc1", "/accounts/{id}", "/accounts/{hex}"},
		{"http.route narrows token", "/accounts/alice", "/accounts/{id}", "/accounts/{token}"},
		{"http.route colon form", "/accounts/alice/keys", "/accounts/:name/keys", "/accounts/{token}/keys"},
		{"http.route typed", "/accounts/12345", "/accounts/{id:int}", "/accounts/{int}"},
		{"http.route literal", "/accounts/12345", "/accounts/12345", "/accounts/12345"},
		{"http.route mismatch literal", "/accounts/alice", "/users/{id}", "/accounts/alice"},
		{"http.route mismatch length", "/accounts/12345", "/accounts/{id}/x", "/accounts/{int}"},
		{"http.route mismatch type", "/accounts/alice", "/accounts/{id:int}", "/accounts/alice"},
		{"http.route catch-all star", "/foo", "/*", "/foo"},
		{"http.route catch-all star under prefix", "/api/alice", "/api/*", "/api/alice"},
		{"http.route catch-all go", "/foo", "/{path...}", "/foo"},
		{"http.route catch-all path-to-regexp", "/foo", "/:path*", "/foo"},
		{"http.route catch-all path-to-regexp regex", "/foo", "/:path(.*)", "/foo"},
		{"http.route invalid", "/accounts/alice", "accounts/{id}", "/accounts/alice"},
		{"http.route does not admit dot segments", "/accounts/..", "/accounts/{id}", "error"},

		{"operator template wins", "/tpl/alice", "/tpl/{id:hex}", "/tpl/{token}"},
		{"operator template wins over heuristics", "/orders/12345", "", "/orders/{id}"},
		{"operator template typed", "/nums/123", "", "/nums/{int}"},
		{"operator template typed mismatch", "/nums/abc", "", "/nums/abc"},
		{"operator template order", "/both/7", "", "/both/{int}"},
		{"operator template order, untyped second", "/both/abc1", "", "/both/{hex}"},
		{"operator template untyped narrows int", "/people/4711", "", "/people/{int}"},
		{"operator template untyped narrows hex", "/people/abc1", "", "/people/{hex}"},
		{"operator template untyped narrows uuid", "/people/" + uuid, "", "/people/{uuid}"},
		{"operator template untyped narrows id", "/people/x-1", "", "/people/{id}"},
		{"operator template untyped word", "/people/alice", "", "/people/{token}"},
		{"operator template untyped wins over http.route", "/people/4711", "/people/{u:token}", "/people/{int}"},
		{"operator template colon form narrows", "/keys/" + uuid, "", "/keys/{uuid}"},
		{"operator template typed and untyped", "/mixed/42/x/99", "", "/mixed/{int}/x/{hex}"},
		{"operator template typed token stays", "/any/42", "", "/any/{token}"},
		{"operator template untyped first segment", "/acme/projects", "", "/{token}/projects"},
		{"operator template untyped first segment narrows", "/42/projects", "", "/{int}/projects"},
	}
	l := newTestLearner(t, "/tpl/{name}", "/orders/{order:id}", "/nums/{n:int}", "/both/{b:int}", "/both/{b}",
		"/people/{id}", "/keys/:key", "/mixed/{m}/x/{n:hex}", "/any/{a:token}", "/{tenant}/projects")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := l.Learn(tt.path, tt.instrumented)
			if tt.want == "error" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, r.String())
			back, err := ParseKey(r.String())
			require.NoError(t, err)
			assert.Equal(t, r, back)
		})
	}
}

func TestLearnErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		want error
	}{
		{"dot dot", "/a/..", ErrTraversal},
		{"dot dot first", "/..", ErrTraversal},
		{"dot dot middle", "/a/../b", ErrTraversal},
		{"dot", "/a/.", ErrTraversal},
		{"dot middle", "/a/./b", ErrTraversal},
		{"encoded dot dot", "/a/%2e%2E", ErrTraversal},
		{"encoded dot dot upper", "/a/%2E%2E/b", ErrTraversal},
		{"half encoded dot dot", "/a/.%2e", ErrTraversal},
		{"half encoded dot dot other", "/a/%2e.", ErrTraversal},
		{"encoded dot", "/a/%2e", ErrTraversal},
		{"dot dot before query", "/a/..?x", ErrTraversal},
		// Look-alikes: dots that a server may trim, normalize (NFKC) or
		// strip invisible characters from before it resolves them.
		{"dot dot space", "/files/..%20/admin", ErrTraversal},
		{"space dot dot", "/a/%20..", ErrTraversal},
		{"spaces around dot dot", "/a/%20..%20", ErrTraversal},
		{"space between dots", "/a/.%20.", ErrTraversal},
		{"dot space", "/a/.%20", ErrTraversal},
		{"fullwidth dot dot", "/a/%EF%BC%8E%EF%BC%8E", ErrTraversal},
		{"fullwidth dot dot lower", "/a/%ef%bc%8e%ef%bc%8e/b", ErrTraversal},
		{"fullwidth dot", "/a/%EF%BC%8E", ErrTraversal},
		{"fullwidth and ascii dot", "/a/.%EF%BC%8E", ErrTraversal},
		{"one dot leader", "/a/%E2%80%A4", ErrTraversal},
		{"one dot leaders", "/a/%E2%80%A4%E2%80%A4", ErrTraversal},
		{"two dot leader", "/a/%E2%80%A5", ErrTraversal},
		{"vertical two dot leader", "/a/%EF%B8%B0", ErrTraversal},
		{"small full stops", "/a/%EF%B9%92%EF%B9%92", ErrTraversal},
		{"dot dot zero-width space", "/a/..%E2%80%8B", ErrTraversal},
		{"zero-width space between dots", "/a/.%E2%80%8B.", ErrTraversal},
		{"zero-width joiner between dots", "/a/.%E2%80%8D.", ErrTraversal},
		{"bom dot dot", "/a/%EF%BB%BF..", ErrTraversal},
		{"dot dot soft hyphen", "/a/..%C2%AD", ErrTraversal},
		{"dot dot no-break space", "/a/..%C2%A0", ErrTraversal},
		{"ideographic space dot dot", "/a/%E3%80%80..", ErrTraversal},
		{"fullwidth dot dot with params", "/a/%EF%BC%8E%EF%BC%8E;x=1", ErrTraversal},
		{"dot dot space with params", "/a/..%20;x", ErrTraversal},
		{"fullwidth dot dot first", "/%EF%BC%8E%EF%BC%8E/admin", ErrTraversal},
		{"dot dot variation selector", "/a/..%EF%B8%8F", ErrTraversal},
		{"combining acute between dots", "/a/.%CC%81.", ErrTraversal},
		{"enclosing circle after dots", "/a/..%E2%83%9D", ErrTraversal},
		{"enclosing circle after a dot", "/a/.%E2%83%9D", ErrTraversal},
		{"dot dot combining acute", "/a/..%CC%81", ErrTraversal},
		{"fullwidth dot with a mark", "/a/%EF%BC%8E%CC%87", ErrTraversal},
		{"dot dot plus", "/a/..+", ErrTraversal},
		{"dot plus dot", "/a/.+.", ErrTraversal},
		{"plus dot dot", "/a/+..", ErrTraversal},
		{"plus and zero-width space", "/a/.+%E2%80%8B.", ErrTraversal},
		{"combining grapheme joiner between dots", "/a/.%CD%8F.", ErrTraversal},
		{"hangul filler dot dot", "/a/%E3%85%A4..", ErrTraversal},
		{"dot dot tab", "/a/..%09", ErrInvalidPath},
		{"encoded slash", "/a/%2f", ErrInvalidPath},
		{"encoded slash upper", "/a/x%2Fy", ErrInvalidPath},
		{"encoded backslash", "/a/%5C", ErrInvalidPath},
		{"encoded backslash lower", "/a/%5c..", ErrInvalidPath},
		{"raw backslash", `/a/b\c`, ErrInvalidPath},
		{"encoded nul", "/a/%00", ErrInvalidPath},
		{"encoded newline", "/a/%0a", ErrInvalidPath},
		{"encoded del", "/a/%7f", ErrInvalidPath},
		{"bad escape", "/a/%zz", ErrInvalidPath},
		{"bad escape half", "/a/%2z", ErrInvalidPath},
		{"truncated escape", "/a/%2", ErrInvalidPath},
		{"lone percent", "/a/%", ErrInvalidPath},
		{"percent at end of segment", "/a/b%/c", ErrInvalidPath},
		{"space", "/a/b c", ErrInvalidPath},
		{"quote", `/a/"x"`, ErrInvalidPath},
		{"angle brackets", "/a/<script>", ErrInvalidPath},
		{"pixie redaction first segment", "/<id>", ErrInvalidPath},
		{"pixie redaction with bad chars", "/a/<id>%20", ErrRedacted},
		{"partial pixie redaction", "/a/user_<id>", ErrRedacted},
		{"matrix dot-dot", "/a/..;/admin", ErrTraversal},
		{"matrix dot", "/a/.;x", ErrTraversal},
		{"overlong utf-8 dots", "/a/%c0%ae%c0%ae", ErrInvalidPath},
		{"escaped invalid utf-8", "/a/%ff", ErrInvalidPath},
		{"raw wildcard", "/a/{int}", ErrInvalidPath},
		{"raw wildcard first", "/{int}", ErrInvalidPath},
		{"raw wildcard token", "/a/{token}/b", ErrInvalidPath},
		{"brace", "/a/{", ErrInvalidPath},
		{"non-ascii", "/a/é", ErrInvalidPath},
		{"invalid utf-8", "/a/\xff\xfe", ErrInvalidPath},
		{"raw nul", "/a/\x00", ErrInvalidPath},
		{"raw tab", "/a/\t", ErrInvalidPath},
		{"no leading slash", "users/1", ErrInvalidPath},
		{"empty", "", ErrInvalidPath},
		{"only query", "?/a", ErrInvalidPath},
		{"absolute form", "http://host/a", ErrInvalidPath},
		{"asterisk form", "*", ErrInvalidPath},
		{"too long", "/" + strings.Repeat("a", testMaxLength), ErrTooLong},
		{"too many segments", strings.Repeat("/a", testMaxSegments+1), ErrTooLong},
		{"too many empty segments", strings.Repeat("/", testMaxSegments+1), ErrTooLong},
	}
	l := newTestLearner(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := l.Learn(tt.path, "")
			require.Error(t, err, "learned %v", r)
			assert.Nil(t, r)
			assert.True(t, errors.Is(err, tt.want), "got %v, want %v", err, tt.want)
		})
	}
}

func TestLearnLimitsAreInclusive(t *testing.T) {
	l := newTestLearner(t)
	_, err := l.Learn("/"+strings.Repeat("a", testMaxLength-1), "")
	assert.NoError(t, err, "a path of exactly the limit is accepted")
	_, err = l.Learn(strings.Repeat("/a", testMaxSegments), "")
	assert.NoError(t, err, "exactly the segment limit is accepted")
	// The limit applies to the path without its query.
	r, err := l.Learn("/a?"+strings.Repeat("q", 10*testMaxLength), "")
	require.NoError(t, err)
	assert.Equal(t, "/a", r.String())
}

func TestLearnedRoutesAreTight(t *testing.T) {
	l := newTestLearner(t)

	// A learned literal matches only itself: no prefix bleed.
	r, err := l.Learn("/a/b_1", "")
	require.NoError(t, err)
	assert.False(t, r.HasWildcard())
	assert.True(t, r.Match([]string{"a", "b_1"}))
	for _, other := range [][]string{{"a", "b_10"}, {"a", "b_1", "x"}, {"a", "b_1", ""}, {"a", "b_"}, {"a"}, {"a", "B_1"}, {"a", "b_1%20"}} {
		assert.False(t, r.Match(other), "/a/b_1 must not admit %q", other)
	}

	// A slot learned from numbers admits numbers only, one segment at a time.
	r, err = l.Learn("/users/12345", "")
	require.NoError(t, err)
	assert.True(t, r.Match([]string{"users", "99"}))
	for _, other := range [][]string{{"users", "admin"}, {"users", ".."}, {"users", "."}, {"users", ""}, {"users", "1", "2"}, {"users", "%31"}, {"users", "-1"}, {"users", "1e3"}} {
		assert.False(t, r.Match(other), "/users/{int} must not admit %q", other)
	}

	// An http.route parameter never admits more than the observed value's
	// type allows, even when the declared type is wider.
	r, err = l.Learn("/accounts/42", "/accounts/{id}")
	require.NoError(t, err)
	assert.False(t, r.Match([]string{"accounts", "admin"}))

	// An untyped operator template parameter admits what the observed
	// value's type admits, not any token.
	r, err = newTestLearner(t, "/users/{id}").Learn("/users/4711", "")
	require.NoError(t, err)
	assert.True(t, r.Match([]string{"users", "1"}))
	for _, other := range [][]string{{"users", "admin"}, {"users", ".env"}, {"users", "4711x"}, {"users", ".."}, {"users", ""}} {
		assert.False(t, r.Match(other), "/users/{id} learned from /users/4711 must not admit %q", other)
	}

	// Nor more than the declared type: {v:id} seen with "abc1" must not
	// admit "abc", which {v:id} refuses.
	r, err = l.Learn("/accounts/abc1", "/accounts/{v:id}")
	require.NoError(t, err)
	assert.True(t, r.Match([]string{"accounts", "abc1"}))
	assert.False(t, r.Match([]string{"accounts", "abc"}), "learned %s is wider than the declared template", r)
}

func TestLearnIsIdempotentAndDeterministic(t *testing.T) {
	l := newTestLearner(t, "/tpl/{x}")
	for _, p := range []string{"/users/12345", "/users/12345", "/users/67890", "/tpl/abc", "/api/v1/x"} {
		a, err := l.Learn(p, "")
		require.NoError(t, err)
		b, err := l.Learn(p, "")
		require.NoError(t, err)
		assert.Equal(t, a.String(), b.String())
	}
	a, _ := l.Learn("/users/12345", "")
	b, _ := l.Learn("/users/67890", "")
	assert.Equal(t, a.String(), b.String(), "different ids give the same key")
}

func TestNewLearnerRejectsBadTemplates(t *testing.T) {
	for _, tpl := range []string{"/users/*", "/users/{path...}", "users/{id}", "/users/{id:string}", "/users/..", "/users/%EF%BC%8E%EF%BC%8E", "/users/..%20", "/:path*"} {
		_, err := NewLearner([]string{"/ok/{id}", tpl}, testMaxLength, testMaxSegments)
		assert.Error(t, err, tpl)
	}
}

func TestIsStructural(t *testing.T) {
	for _, s := range []string{"api", "API", "Api", "v1", "V1", "v10", "v2beta1", "v1alpha", "v1alpha2"} {
		assert.True(t, isStructural(s), s)
	}
	for _, s := range []string{"", "v", "va", "v1.2", "v1-beta", "v1Beta", "apis", "2024-01-15", "2024-1-15", "2024/01/15", "20240115", "x2024-01-15", "1"} {
		assert.False(t, isStructural(s), s)
	}
}

func FuzzLearn(f *testing.F) {
	for _, seed := range []struct{ path, instrumented string }{
		{"/", ""},
		{"/users/12345", ""},
		{"/users/12345", "/users/{id}"},
		{"/users/alice", "/users/:id"},
		{"/users/550e8400-e29b-41d4-a716-446655440000/keys", ""},
		{"/objects/9f3b2c1d7e?x=1#y", ""},
		{"/a/..", ""},
		{"/a/%2e%2E", ""},
		{"/a/%2f", ""},
		{"/a/{int}", ""},
		{"/users/<id>", ""},
		{"/users/<id>-7b4d-4e2a-9c1f-<id>", ""},
		{"/tpl/abc", "/tpl/{x:hex}"},
		{"/api/v1/2024-01-15", ""},
		{"/a//b/", "/a/{x}/{y}/"},
		{"/foo", "/*"},
		{"/x/...", "/x/{id}"},
		{"/a/..%20", ""},
		{"/a/%EF%BC%8E%EF%BC%8E", ""},
		{"/a/%E2%80%A5;x", ""},
		{"/a/.%E2%80%8B.", ""},
		{"/a/%C2%A0..%C2%AD", ""},
		{"/a/%E2%80%A6", ""},
	} {
		f.Add(seed.path, seed.instrumented)
	}
	l := newTestLearner(f, "/tpl/{name}", "/tpl/{n:int}/x")
	f.Fuzz(func(t *testing.T, path, instrumented string) {
		r, err := l.Learn(path, instrumented)
		if err != nil {
			if r != nil {
				t.Fatalf("Learn(%q, %q) returned %v with error %v", path, instrumented, r, err)
			}
			if !errors.Is(err, ErrInvalidPath) && !errors.Is(err, ErrTraversal) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrRedacted) {
				t.Fatalf("Learn(%q, %q): error %v is not one of the sentinels", path, instrumented, err)
			}
			return
		}
		if len(r) == 0 {
			t.Fatalf("Learn(%q, %q) returned an empty route", path, instrumented)
		}
		key := r.String()
		back, err := ParseKey(key)
		if err != nil {
			t.Fatalf("Learn(%q, %q) = %q, which ParseKey refuses: %v", path, instrumented, key, err)
		}
		if back.String() != key || len(back) != len(r) {
			t.Fatalf("Learn(%q, %q) = %q does not round-trip: %q", path, instrumented, key, back)
		}
		for i := range r {
			if back[i] != r[i] {
				t.Fatalf("Learn(%q, %q) = %q does not round-trip at %d: %+v != %+v", path, instrumented, key, i, back[i], r[i])
			}
		}

		// No learned literal is a dot segment in disguise.
		for i, s := range r {
			if s.Wild == 0 && normalizesToDots(t, s.Lit) {
				t.Fatalf("Learn(%q, %q) = %q: literal %d %q normalizes to a dot segment", path, instrumented, key, i, s.Lit)
			}
		}

		// The learned route admits the request it was learned from. Pixie's
		// redaction stands for a run of hex digits, so put some back.
		p := path
		if i := strings.IndexAny(p, "?#"); i >= 0 {
			p = p[:i]
		}
		segs := strings.Split(p[1:], "/")
		for i, s := range segs {
			// A UUID's long groups are 8 and 12 digits; any run works for hex.
			s = strings.Replace(s, pixieRedaction, "abc12345", 1)
			segs[i] = strings.ReplaceAll(s, pixieRedaction, "abc123456789")
		}
		if !r.Match(segs) {
			t.Fatalf("Learn(%q, %q) = %q does not admit the request", path, instrumented, key)
		}

		// Heuristics never turn the first segment into a wildcard.
		if instrumented == "" && !strings.HasPrefix(p, "/tpl/") && r[0].Wild != 0 {
			t.Fatalf("Learn(%q) = %q: first segment became a wildcard", path, key)
		}

		for i, s := range r {
			if s.Wild == 0 {
				continue
			}
			for _, bad := range []string{"", ".", "..", "%2e", "%2e%2e", "a/b", "{int}", "a b"} {
				if s.Wild.Matches(bad) {
					t.Fatalf("Learn(%q, %q) = %q: segment %d admits %q", path, instrumented, key, i, bad)
				}
			}
		}

		again, err := l.Learn(path, instrumented)
		if err != nil || again.String() != key {
			t.Fatalf("Learn(%q, %q) is not deterministic: %q then %q, %v", path, instrumented, key, again, err)
		}
	})
}

// normalizesToDots is the definition checkLiteral implements: the decoded
// name before any ';' parameters is "." or ".." as it is, trimmed of spaces,
// under NFKC, without spaces and format characters, or a combination.
func normalizesToDots(tb testing.TB, seg string) bool {
	tb.Helper()
	d, err := url.PathUnescape(seg)
	if err != nil {
		tb.Fatalf("literal %q does not decode: %v", seg, err)
	}
	name, _, _ := strings.Cut(d, ";")
	strip := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Zs) {
				return -1
			}
			return r
		}, s)
	}
	nfkc := norm.NFKC.String
	for _, f := range []string{
		name, strings.TrimSpace(name), nfkc(name), strings.TrimSpace(nfkc(name)),
		strip(name), strip(nfkc(name)), nfkc(strip(name)),
	} {
		if f == "." || f == ".." {
			return true
		}
	}
	return false
}

func TestNormalizesToDots(t *testing.T) {
	for _, seg := range []string{"..", "%2e", "..%20", "%EF%BC%8E%EF%BC%8E", "%E2%80%A5", ".%E2%80%8D.", "..;x", "%C2%A0..%C2%AD"} {
		assert.True(t, normalizesToDots(t, seg), seg)
	}
	for _, seg := range []string{"...", "%E2%80%A6", "a..", ".x", "%20", "a;.."} {
		assert.False(t, normalizesToDots(t, seg), seg)
	}
}

// A span that shows a gRPC call makes its two segments service and method,
// whatever their names look like; other paths are learned as usual.
func TestLearnRPC(t *testing.T) {
	l, err := NewLearner([]string{"/pinned.Svc/{m}"}, testMaxLength, testMaxSegments)
	require.NoError(t, err)
	for path, want := range map[string]string{
		"/greeter/A123456": "/greeter/A123456",
		"/Greeter/add2fa":  "/Greeter/add2fa",
		"/svc/12345":       "/svc/12345",
		"/pinned.Svc/Get":  "/pinned.Svc/{token}",
		"/svc/m/123456":    "/svc/m/{int}",
		"/greeter/%2e%2e":  "",
	} {
		r, err := l.LearnRPC(path)
		if want == "" {
			assert.Error(t, err, path)
			continue
		}
		require.NoError(t, err, path)
		assert.Equal(t, want, r.String(), path)
	}
}

func TestRefusedPathsDoNotAllocate(t *testing.T) {
	l, err := NewLearner(nil, 2048, 32)
	require.NoError(t, err)
	for _, p := range []string{"/a b", "/%zz", "/a/%2F", "/" + strings.Repeat("a", 3000), strings.Repeat("/a", 40), "/a/../b", "x"} {
		var key [64]byte
		allocs := testing.AllocsPerRun(10, func() {
			_, _, _, err = l.AppendKey(key[:0], p, "", false)
		})
		require.Error(t, err, p)
		assert.Zero(t, allocs, p)
	}
}

// AppendKey learns what LearnFrom does, without allocating.
func TestAppendKeyIsLearnFrom(t *testing.T) {
	l, err := NewLearner([]string{"/pinned/{id}"}, 2048, 32)
	require.NoError(t, err)
	for _, tt := range []struct {
		path, instrumented string
		rpc                bool
	}{
		{"/api/v1/orders/12345/items?x=1", "", false},
		{"/users/4711", "/users/{id}", false},
		{"/pinned/abc", "", false},
		{"/bank.Ledger/Transfer", "", true},
		{"/payments/<id>/status", "", false},
		{"/", "", false},
	} {
		want, origin, err := l.LearnFrom(tt.path, tt.instrumented, tt.rpc)
		require.NoError(t, err)
		var buf [64]byte
		var key []byte
		var gotOrigin Origin
		var wild bool
		allocs := testing.AllocsPerRun(10, func() {
			key, gotOrigin, wild, err = l.AppendKey(buf[:0], tt.path, tt.instrumented, tt.rpc)
		})
		require.NoError(t, err)
		assert.Equal(t, want.String(), string(key), tt.path)
		assert.Equal(t, origin, gotOrigin, tt.path)
		assert.Equal(t, want.HasWildcard(), wild, tt.path)
		assert.Zero(t, allocs, tt.path)
	}
}
