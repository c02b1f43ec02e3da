package render

import (
	"testing"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// A gRPC content type makes the policy match the whole path, query
// included. Any server that routes on the path without its query (every
// REST framework, and gRPC-over-HTTP handlers mounted on a mux) still
// serves the denied route, so a deny rule must match the path without its
// query too, whatever the content type says.
func TestRedteamDenyIgnoresContentType(t *testing.T) {
	p := opatest.Load(t, renderOpts(t, meshRecords(), meshOptions(t)).Tarball)
	grpc := func(r request) request {
		r.Headers = map[string]string{"content-type": "application/grpc"}
		return r
	}
	checkOutcomes(t, p, []modeCase{
		{"deny, audited, query", mtls(cart, web, "GET", "/cart/0?x=1"), denied},
		{"deny, audited, grpc content type and query", grpc(mtls(cart, web, "GET", "/cart/0?x=1")), denied},
		{"deny any callee, audited, grpc content type and query", grpc(mtls(cart, web, "GET", "/admin?x")), denied},
		{"deny any callee, unseen, grpc content type and query", grpc(mtls(fresh, web, "GET", "/admin/users?x")), denied},
		{"deny, audited, allowed any segment, grpc content type", grpc(mtls(cart, web, "GET", "/cart/0?/panel")), denied},
	})
}

// Another spelling of a denied route is denied too, in audit mode and
// whatever an operator's allow rule admits: a server that merges slashes,
// drops "." segments or decodes the path serves the denied route.
func TestDenyCatchesOtherSpellings(t *testing.T) {
	p := opatest.Load(t, renderOpts(t, meshRecords(), meshOptions(t)).Tarball)
	cases := getEach("audited ", cart, web, denied, "/cart/0/", "//cart/0", "/cart//0", "/cart/./0", "/cart/%30", "/%63art/0", "/cart/x/../0", "/cart/%2e%2e/0", "/cart/%zz", `/cart\0`)
	cases = append(cases,
		modeCase{"audited, no deny rule", mtls(cart, web, "GET", "/cart/1/"), wouldDeny},
		modeCase{"enforced, dot segments in a learned callee", mtls(balances, frontend, "GET", "/balances/./0"), denied},
		modeCase{"unseen, encoded admin", mtls(fresh, web, "GET", "/%61dmin/users"), denied},
	)
	checkOutcomes(t, p, cases)
}

// An operator's {id} and /** admit no detour: dot segments, encodings and
// empty segments are not the operator's route.
func TestOperatorAllowAdmitsNoDetour(t *testing.T) {
	p := opatest.Load(t, renderOpts(t, meshRecords(), meshOptions(t)).Tarball)
	cases := getEach("detour ", balances, ops, denied, "/debug/../balances/0", "/debug/pprof/../../balances/0", "/debug/%2e%2e/balances/0", "/debug/./x", "/debug//x", "/debug/a%2Fb", `/debug/a\b`)
	cases = append(cases,
		modeCase{"the operator's route", mtls(balances, ops, "GET", "/debug/pprof/heap"), allowed},
		modeCase{"with a trailing slash", mtls(balances, ops, "GET", "/debug/pprof/"), allowed},
	)
	checkOutcomes(t, p, cases)
}

// Path parameters (";" in a segment) are dropped by servers that read them
// (Servlet containers, Spring): /cart;v=1/0 is /cart/0 there, and
// /debug/..;/balances/0 is /balances/0. A deny rule matches such a path as
// the server reads it, and an operator's {name} or /** never admits a dot
// segment hidden behind path parameters.
func TestRedteamPathParameters(t *testing.T) {
	p := opatest.Load(t, renderOpts(t, meshRecords(), meshOptions(t)).Tarball)
	cases := getEach("deny, audited ", cart, web, denied, "/cart;v=1/0", "/cart/0;jsessionid=1", "/cart/;x/0", "/cart/x/..;/0", "/cart/.;/0")
	cases = append(cases, getEach("deny any callee, unseen ", fresh, web, denied, "/admin;x/users", "/admin;/users")...)
	cases = append(cases, getEach("allow detour ", balances, ops, denied, "/debug/..;/balances/1", "/debug/..;x=1/balances/1", "/debug/;/x")...)
	cases = append(cases,
		modeCase{"allow and deny detour", mtls(balances, ops, "GET", "/debug/..;/balances/0"), denied},
		modeCase{"allow, parameters inside the route", mtls(balances, ops, "GET", "/debug/pprof;x=1/heap"), allowed},
		modeCase{"audited, parameters, no deny rule", mtls(cart, web, "GET", "/cart;v=1/1"), wouldDeny},
	)
	checkOutcomes(t, p, cases)
}

// getEach is one case per path: a GET from src to dst with outcome want.
func getEach(name, dst, src string, want outcome, paths ...string) []modeCase {
	cases := make([]modeCase, len(paths))
	for i, path := range paths {
		cases[i] = modeCase{name + path, mtls(dst, src, "GET", path), want}
	}
	return cases
}

// A server decodes a path as a path: "+" stays "+". A deny rule's literal
// is matched as the server reads it too, whichever way its escapes are
// spelled.
func TestRedteamDenyLiteralSpellings(t *testing.T) {
	opts := meshOptions(t)
	opts.Overrides = parseRules(t, `
deny:
  - callee: spiffe://example.org/ns/shop/sa/cart
    caller: "*"
    methods: ["*"]
    routes: ["/c++/admin", "/caf%C3%A9", "/a%2Bb"]
`)
	p := opatest.Load(t, renderOpts(t, meshRecords(), opts).Tarball)
	cases := getEach("deny ", cart, web, denied, "/c++/admin", "/c+%2B/admin", "/c++/%61dmin", "/caf%C3%A9", "/caf%c3%a9", "/%63af%C3%A9", "/a%2Bb", "/a%2bb", "/a+b", "/a+%62")
	cases = append(cases,
		modeCase{"spaces are not plus signs", mtls(cart, web, "GET", "/c%20%20/admin"), wouldDeny},
		modeCase{"another literal", mtls(cart, web, "GET", "/cafe"), wouldDeny},
	)
	checkOutcomes(t, p, cases)
}
