// Package opatest evaluates rendered bundles with OPA's Go API, the way
// OPA-Envoy would, for tests in any package.
package opatest

import (
	"bytes"
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"
)

// Query is OPA-Envoy's default decision; DecisionQuery the object decision
// (allowed, response headers) that audit mode uses.
const (
	Query         = "data.envoy.authz.allow"
	DecisionQuery = "data.envoy.authz.decision"
)

// Request is what Envoy's ext_authz check carries that the policy reads.
type Request struct {
	// Destination and Source become an Istio-style XFCC header's By and
	// URI, unless Header is set or NoHeader is true.
	Destination, Source string
	Header              string
	NoHeader            bool
	// SourcePrincipal and DestinationPrincipal are the mTLS peer and local
	// identities Envoy reports when it terminates mTLS itself.
	SourcePrincipal, DestinationPrincipal string
	Method, Path                          string
	// Headers are further request headers (lower-case names, as Envoy
	// hands them over), such as a gRPC call's content-type; Protocol is
	// the request's, such as "HTTP/2".
	Headers  map[string]string
	Protocol string
}

// Input is the request as opa-envoy-plugin hands it to the policy.
func (r Request) Input() map[string]any {
	headers := map[string]any{}
	switch {
	case r.NoHeader:
	case r.Header != "":
		headers["x-forwarded-client-cert"] = r.Header
	default:
		headers["x-forwarded-client-cert"] = "By=" + r.Destination + ";Hash=0f1e2d;Subject=\"\";URI=" + r.Source
	}
	for name, value := range r.Headers {
		headers[name] = value
	}
	http := map[string]any{"method": r.Method, "path": r.Path, "headers": headers}
	if r.Protocol != "" {
		http["protocol"] = r.Protocol
	}
	attrs := map[string]any{"request": map[string]any{"http": http}}
	if r.SourcePrincipal != "" {
		attrs["source"] = map[string]any{"principal": r.SourcePrincipal}
	}
	if r.DestinationPrincipal != "" {
		attrs["destination"] = map[string]any{"principal": r.DestinationPrincipal}
	}
	return map[string]any{"attributes": attrs}
}

// Policy is a bundle loaded into OPA, ready for decisions.
type Policy struct {
	t        testing.TB
	query    rego.PreparedEvalQuery
	decision rego.PreparedEvalQuery
}

// Load reads a bundle.tar.gz and prepares the decision.
func Load(t testing.TB, tarball []byte) *Policy {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	require.NoError(t, err)
	return LoadBundle(t, &b)
}

// ReadDir reads a bundle directory as `opa run -b DIR` does, deriving
// each data.json's place in the data tree from its directory.
func ReadDir(t testing.TB, dir string) *bundle.Bundle {
	t.Helper()
	b, err := loader.NewFileLoader().AsBundle(dir)
	require.NoError(t, err, "%s as a bundle directory", dir)
	return b
}

// LoadBundle prepares the decision of a bundle read before.
func LoadBundle(t testing.TB, b *bundle.Bundle) *Policy {
	t.Helper()
	q, err := rego.New(rego.Query(Query), rego.ParsedBundle("authz", b)).PrepareForEval(context.Background())
	require.NoError(t, err)
	d, err := rego.New(rego.Query(DecisionQuery), rego.ParsedBundle("authz", b)).PrepareForEval(context.Background())
	require.NoError(t, err)
	return &Policy{t: t, query: q, decision: d}
}

// Decision evaluates the object decision for r.
func (p *Policy) Decision(r Request) map[string]any {
	p.t.Helper()
	rs, err := p.decision.Eval(context.Background(), rego.EvalInput(r.Input()))
	require.NoError(p.t, err)
	require.Len(p.t, rs, 1)
	d, ok := rs[0].Expressions[0].Value.(map[string]any)
	require.True(p.t, ok, "decision is not an object: %v", rs[0].Expressions[0].Value)
	return d
}

// Allowed evaluates the decision for r; it fails the test unless the
// decision is a boolean.
func (p *Policy) Allowed(r Request) bool {
	p.t.Helper()
	return p.AllowedInput(r.Input())
}

// AllowedInput evaluates the decision for an input Request cannot express,
// such as an empty principal.
func (p *Policy) AllowedInput(input map[string]any) bool {
	p.t.Helper()
	rs, err := p.query.Eval(context.Background(), rego.EvalInput(input))
	require.NoError(p.t, err)
	require.Len(p.t, rs, 1)
	allowed, ok := rs[0].Expressions[0].Value.(bool)
	require.True(p.t, ok, "decision is not a boolean: %v", rs[0].Expressions[0].Value)
	return allowed
}
