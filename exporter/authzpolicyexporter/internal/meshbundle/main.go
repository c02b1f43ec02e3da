// Command meshbundle writes the bundles of a synthetic mesh for measuring
// decisions through OPA-Envoy: the learned bundle of the whole mesh, the
// bundle of one callee alone, a one-comparison policy as the baseline, and
// the Check requests that callee's sidecar gets, with their expected
// decisions. The learned bundles come from render.Render, as the exporter
// publishes them (the callee's as with output.per_callee).
//
//	go run ./exporter/authzpolicyexporter/internal/meshbundle -callees 1000 -out DIR
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// Files written to -out.
const (
	FullFile    = "full.tar.gz"
	CalleeFile  = "callee.tar.gz"
	TrivialFile = "trivial.tar.gz"
	ChecksFile  = "checks.json"
)

// callersPerCallee callers call each callee, each on every route.
const callersPerCallee = 5

// routes are each caller's: five literal, five with numeric IDs.
var routes = [][2]string{
	{"GET", "/api/v1/items"},
	{"POST", "/api/v1/items"},
	{"GET", "/api/v1/orders"},
	{"GET", "/api/v1/profile"},
	{"GET", "/healthz"},
	{"GET", "/api/v1/items/{int}"},
	{"GET", "/api/v1/items/{int}/reviews"},
	{"DELETE", "/api/v1/orders/{int}"},
	{"GET", "/api/v1/users/{int}/orders/{int}"},
	{"PUT", "/api/v1/carts/{int}"},
}

// trivialPolicy is the baseline: one comparison, the same decision path.
const trivialPolicy = `package envoy.authz

default allow := false

allow if input.attributes.request.http.method == "GET"
`

// Check is one request the measured callee's sidecar gets.
type Check struct {
	Name    string          `json:"name"`
	Request opatest.Request `json:"request"`
	// Learned is the decision of the learned bundles (whole mesh and the
	// callee's own), Trivial the baseline's.
	Learned bool `json:"learned"`
	Trivial bool `json:"trivial"`
}

func service(i int) string { return fmt.Sprintf("spiffe://example.org/ns/mesh/sa/svc-%05d", i) }

// caller is the k-th caller (1-based) of callee d in a mesh of n.
func caller(d, k, n int) string { return service((d + k) % n) }

// mesh is the aggregate of n callees, each called by callersPerCallee
// others on every route.
func mesh(n int) []aggregate.Record {
	ts := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	out := make([]aggregate.Record, 0, n*callersPerCallee*len(routes))
	for d := range n {
		for k := 1; k <= callersPerCallee; k++ {
			for _, rt := range routes {
				out = append(out, aggregate.Record{
					Key:   aggregate.Key{Destination: service(d), Source: caller(d, k, n), Method: rt[0], Route: rt[1]},
					Stats: aggregate.Stats{Count: 1, FirstSeen: ts, LastSeen: ts},
				})
			}
		}
	}
	return out
}

// checks are the requests callee d's sidecar gets, as Envoy sends them:
// with an Istio XFCC header or with the mTLS principals, allowed and
// denied, on literal and templated routes.
func checks(d, n int) []Check {
	dst := service(d)
	xfcc := func(k int, method, path string) opatest.Request {
		return opatest.Request{Destination: dst, Source: caller(d, k, n), Method: method, Path: path}
	}
	principals := func(src, method, path string) opatest.Request {
		return opatest.Request{NoHeader: true, SourcePrincipal: src, DestinationPrincipal: dst, Method: method, Path: path}
	}
	stranger := caller(d, callersPerCallee+1, n)
	return []Check{
		{"literal, XFCC", xfcc(1, "GET", "/api/v1/items"), true, true},
		{"literal POST, XFCC", xfcc(2, "POST", "/api/v1/items"), true, false},
		{"literal with query, XFCC", xfcc(3, "GET", "/api/v1/orders?page=2"), true, true},
		{"templated, XFCC", xfcc(3, "GET", "/api/v1/items/4711"), true, true},
		{"two IDs, XFCC", xfcc(4, "GET", "/api/v1/users/12/orders/99031"), true, true},
		{"literal, principals", principals(caller(d, 5, n), "GET", "/healthz"), true, true},
		{"templated DELETE, principals", principals(caller(d, 1, n), "DELETE", "/api/v1/orders/31337"), true, false},
		{"not a caller, XFCC", opatest.Request{Destination: dst, Source: stranger, Method: "GET", Path: "/api/v1/items"}, false, true},
		{"method not learned, XFCC", xfcc(1, "DELETE", "/api/v1/items"), false, false},
		{"not a number, XFCC", xfcc(2, "GET", "/api/v1/items/admin"), false, true},
		{"longer path, XFCC", xfcc(3, "GET", "/api/v1/items/4711/admin"), false, true},
		{"foreign trust domain, principals", principals("spiffe://evil.org/ns/mesh/sa/svc-00001", "GET", "/api/v1/items"), false, true},
		{"not a number, principals", principals(caller(d, 4, n), "PUT", "/api/v1/carts/abc"), false, false},
	}
}

// trivialBundle is the baseline policy as a bundle with the same root.
func trivialBundle() ([]byte, error) {
	const file = "/" + render.Root + "/policy.rego"
	module, err := ast.ParseModuleWithOpts(file, trivialPolicy, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	roots := []string{render.Root}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "trivial", Roots: &roots},
		Data:     map[string]any{},
		Modules:  []bundle.ModuleFile{{URL: file, Path: file, Raw: []byte(trivialPolicy), Parsed: module}},
	}
	var buf bytes.Buffer
	err = bundle.NewWriter(&buf).Write(b)
	return buf.Bytes(), err
}

// write renders a mesh of n callees into dir; the middle callee is the
// one measured.
func write(ctx context.Context, dir string, n int) error {
	if n <= callersPerCallee+1 {
		return fmt.Errorf("a mesh needs more than %d callees", callersPerCallee+1)
	}
	d := n / 2
	full, err := render.Render(ctx, mesh(n), render.Options{CardinalityThreshold: 10, PerCallee: true})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(full.Callees, func(c *render.CalleeBundle) bool { return c.ID == service(d) })
	if i < 0 {
		return fmt.Errorf("no bundle of its own for %s", service(d))
	}
	callee := full.Callees[i]
	trivial, err := trivialBundle()
	if err != nil {
		return err
	}
	cs, err := json.MarshalIndent(checks(d, n), "", "  ")
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{FullFile: full.Tarball, CalleeFile: callee.Tarball, TrivialFile: trivial, ChecksFile: cs} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return err
		}
	}
	log.Printf("%d callees: full bundle %d rules, %d bytes; %s's own bundle %d bytes",
		n, len(full.Rules), len(full.Tarball), service(d), len(callee.Tarball))
	return nil
}

func main() {
	n := flag.Int("callees", 1000, "callees in the mesh")
	out := flag.String("out", ".", "directory to write the bundles and checks into")
	flag.Parse()
	if err := write(context.Background(), *out, *n); err != nil {
		log.Fatal(err)
	}
}
