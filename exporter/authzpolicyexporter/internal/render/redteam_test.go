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
