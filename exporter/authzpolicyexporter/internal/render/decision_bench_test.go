package render

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// benchRoutes are what each caller of the benchmark's mesh calls on each
// callee: 5 literal routes, 5 with numeric IDs, and benchOperation.
var benchRoutes = [][2]string{
	{"GET", "/healthz"},
	{"GET", "/metrics"},
	{"GET", "/api/v1/items"},
	{"POST", "/api/v1/items"},
	{"GET", "/api/v1/config/current"},
	{"GET", "/api/v1/items/{int}"},
	{"PUT", "/api/v1/items/{int}"},
	{"GET", "/api/v1/items/{int}/detail"},
	{"GET", "/api/v1/orders/{int}"},
	{"DELETE", "/api/v1/orders/{int}/lines/{int}"},
	{"GET", benchOperation},
}

// benchOperation is an operation of the callees' API spec, which matches
// GET /api/v2/users/me and GET /api/v2/users/{int} before it: what they
// take is left out, by key and by type.
const benchOperation = "/api/v2/users/{token}"

var benchSpec = func() Spec {
	me, _ := route.ParseKey("/api/v2/users/me")
	id, _ := route.ParseKey("/api/v2/users/{int}")
	return takenSpec{me, id}
}()

func benchID(i int) string {
	return fmt.Sprintf("spiffe://cluster.local/ns/ns%02d/sa/svc%05d", i%20, i)
}

// benchCaller is callee d's c-th caller (0 to 4): services of the same mesh.
func benchCaller(n, d, c int) string { return benchID((d + 1 + c*(n/5+1)) % n) }

// benchBundles are the learned bundles of meshes of n callees, each called
// by 5 callers on benchRoutes, built once per process: the largest takes
// a while.
var benchBundles sync.Map // int -> func() *bundle.Bundle

func benchBundle(n int) *bundle.Bundle {
	f, _ := benchBundles.LoadOrStore(n, sync.OnceValue(func() *bundle.Bundle {
		records := make([]aggregate.Record, 0, n*5*len(benchRoutes))
		for d := range n {
			for c := range 5 {
				for _, r := range benchRoutes {
					r := rec(benchID(d), benchCaller(n, d, c), r[0], r[1])
					if r.Route == benchOperation {
						r.Origin = uint8(route.OpenAPI)
					}
					records = append(records, r)
				}
			}
		}
		out, err := Render(context.Background(), records, Options{CardinalityThreshold: 10, Specs: func(string) Spec { return benchSpec }})
		if err != nil || len(out.Rules) != len(records) {
			panic(fmt.Sprintf("mesh of %d callees: %d rules, %v", n, len(out.Rules), err))
		}
		bb, err := bundle.NewReader(bytes.NewReader(out.Tarball)).Read()
		if err != nil {
			panic(err)
		}
		return &bb
	}))
	return f.(func() *bundle.Bundle)()
}

// trivialPolicy is the cheapest policy a sidecar could run: one comparison.
const trivialPolicy = `package envoy.authz

default allow := false

allow if input.attributes.request.http.method == "GET"
`

// envoyInput is a CheckRequest as opa-envoy-plugin hands it to the policy
// for an Istio sidecar's request: every field Envoy sets, by its JSON name,
// plus the plugin's own parsed_path, parsed_query and version. principals
// adds the identities Envoy reports when it terminates mTLS itself.
func envoyInput(dst, src, method, path string, principals bool) map[string]any {
	xfcc := "By=" + dst + ";Hash=" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" + `;Subject="";URI=` + src
	source := map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.3.17", "portValue": uint32(51234)}}}
	destination := map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.7.42", "portValue": uint32(8080)}}}
	if principals {
		source["principal"] = src
		destination["principal"] = dst
	}
	headers := map[string]any{
		":authority": "svc.ns.svc.cluster.local:8080", ":method": method, ":path": path, ":scheme": "http",
		"accept": "application/json", "user-agent": "Go-http-client/1.1", "x-forwarded-proto": "http",
		"x-request-id": "3f1c9e2a-7b4d-4e8f-9a6b-2c5d8e1f0a7b", "x-envoy-attempt-count": "1",
		"x-forwarded-client-cert": xfcc,
	}
	parsedPath, query := parsed(path)
	return map[string]any{
		"attributes": map[string]any{
			"source":      source,
			"destination": destination,
			"request": map[string]any{
				"time": map[string]any{"seconds": int64(1793527200), "nanos": int32(123456000)},
				"http": map[string]any{
					"id": "9181238419234578123", "method": method, "headers": headers, "path": path,
					"host": "svc.ns.svc.cluster.local:8080", "scheme": "http", "protocol": "HTTP/1.1", "size": int64(-1),
				},
			},
			"metadataContext": map[string]any{},
		},
		"parsed_path":    parsedPath,
		"parsed_query":   query,
		"parsed_body":    nil,
		"truncated_body": false,
		"version":        map[string]any{"ext_authz": "v3", "encoding": "protojson"},
	}
}

// parsed is the plugin's parsed_path and parsed_query of a path.
func parsed(path string) ([]any, map[string]any) {
	p, q, _ := strings.Cut(path, "?")
	p, _ = url.PathUnescape(p)
	var segs []any
	for _, s := range strings.Split(strings.TrimLeft(p, "/"), "/") {
		segs = append(segs, s)
	}
	values, _ := url.ParseQuery(q)
	query := map[string]any{}
	for k, v := range values {
		query[k] = v
	}
	return segs, query
}

// BenchmarkDecision evaluates the learned bundle of meshes of 10, 1000 and
// 10 000 callees (5 callers each, on benchRoutes) with OPA's Go API and a
// prepared query of data.envoy.authz.allow, beside a one-comparison policy
// on the same inputs. Each request is what opa-envoy-plugin does for a
// Check: convert the input to an AST value, then evaluate it. p50-ns is
// the median request, eval-p50-ns the median evaluation alone.
func BenchmarkDecision(b *testing.B) {
	ctx := context.Background()
	trivial, err := rego.New(
		rego.Query(opatest.Query),
		rego.Module("trivial.rego", trivialPolicy),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(ctx)
	require.NoError(b, err)
	routes := []struct {
		name        string
		allow, deny string
	}{
		{"literal", "/api/v1/items", "/api/v1/itemz"},
		{"template", "/api/v1/items/7741/detail", "/api/v1/items/7741/admin"},
		{"operation", "/api/v2/users/alice", "/api/v2/users/me"},
	}
	for _, n := range []int{10, 1000, 10000} {
		// The third caller of a callee in the middle.
		dst, src := benchID(n/2), benchCaller(n, n/2, 2)
		policies := []struct {
			name string
			pq   func() rego.PreparedEvalQuery
		}{
			{"learned", func() rego.PreparedEvalQuery {
				pq, err := rego.New(rego.Query(opatest.Query), rego.ParsedBundle("authz", benchBundle(n))).PrepareForEval(ctx)
				require.NoError(b, err)
				return pq
			}},
			{"trivial", func() rego.PreparedEvalQuery { return trivial }},
		}
		for _, p := range policies {
			b.Run("policy="+p.name+"/callees="+strconv.Itoa(n), func(b *testing.B) {
				pq := p.pq()
				for _, kind := range []string{"xfcc", "principals"} {
					for _, rt := range routes {
						for _, c := range []struct {
							name, path string
							want       bool
						}{{"allow", rt.allow, true}, {"deny", rt.deny, p.name == "trivial"}} {
							in := envoyInput(dst, src, "GET", c.path, kind == "principals")
							b.Run("input="+kind+"/route="+rt.name+"/"+c.name, func(b *testing.B) {
								benchCheck(b, pq, in, c.want)
							})
						}
					}
				}
			})
		}
	}
}

func benchCheck(b *testing.B, pq rego.PreparedEvalQuery, input map[string]any, want bool) {
	ctx := context.Background()
	var requests, evals []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		in, err := ast.InterfaceToValue(input)
		if err != nil {
			b.Fatal(err)
		}
		converted := time.Now()
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(in))
		end := time.Now()
		requests, evals = append(requests, end.Sub(start)), append(evals, end.Sub(converted))
		if err != nil || len(rs) != 1 || rs[0].Expressions[0].Value != want {
			b.Fatalf("decision %v (%v), want %v", rs, err, want)
		}
	}
	b.ReportMetric(median(requests), "p50-ns")
	b.ReportMetric(median(evals), "eval-p50-ns")
}

func median(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Nanoseconds())
}

// BenchmarkDecisionManyOperations evaluates, with OPA's Go API, a caller
// of a fallback operation GET /api/x/{a}/{b} of a spec where n typed
// operations GET /api/x/{id}/a<k> come before it, allowed (its own path)
// and denied (a path an earlier operation takes), beside the
// one-comparison policy: what the fallback leaves out is keyed, so the
// cost must not grow with n.
func BenchmarkDecisionManyOperations(b *testing.B) {
	ctx := context.Background()
	trivial, err := rego.New(rego.Query(opatest.Query), rego.Module("trivial.rego", trivialPolicy), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(ctx)
	require.NoError(b, err)
	src := "spiffe://example.org/ns/c/sa/c0"
	for _, n := range []int{10, 3000} {
		spec, err := openapi.Parse([]byte(rtoManySpec(n)), "many")
		require.NoError(b, err)
		out, err := Render(ctx, rtoRecords(rtoLearn(spec, src, "/api/x/foo/bar")), rtoOptions(spec))
		require.NoError(b, err)
		bb, err := bundle.NewReader(bytes.NewReader(out.Tarball)).Read()
		require.NoError(b, err)
		learned, err := rego.New(rego.Query(opatest.Query), rego.ParsedBundle("authz", &bb)).PrepareForEval(ctx)
		require.NoError(b, err)
		for _, p := range []struct {
			name string
			pq   rego.PreparedEvalQuery
		}{{"learned", learned}, {"trivial", trivial}} {
			for _, c := range []struct {
				name, path string
				want       bool
			}{{"allow", "/api/x/foo/bar", true}, {"deny", fmt.Sprintf("/api/x/7/a%d", n-1), p.name == "trivial"}} {
				in := envoyInput(rtoShop, src, "GET", c.path, true)
				b.Run(fmt.Sprintf("policy=%s/operations=%d/%s", p.name, n, c.name), func(b *testing.B) {
					benchCheck(b, p.pq, in, c.want)
				})
			}
		}
	}
}
