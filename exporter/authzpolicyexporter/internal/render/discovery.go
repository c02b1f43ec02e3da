package render

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// DiscoveryPolicy is the Rego module of the discovery bundle, unchanged.
//
//go:embed discovery.rego
var DiscoveryPolicy []byte

const (
	// DiscoveryRoot is the discovery bundle's only root; OPA-Envoy's
	// discovery.decision is authz/discovery/config.
	DiscoveryRoot       = "authz/discovery"
	discoveryPolicyPath = DiscoveryRoot + "/discovery.rego"
)

// Discovery renders the discovery bundle that points each sidecar at its
// callee's own bundle once one of ids (the callees whose bundles are in
// place) is its callee, and at the unseen bundle until then.
func Discovery(ctx context.Context, ids []string, s *SigningOptions) (*CalleeBundle, error) {
	callees := make(map[string]any, len(ids))
	for _, id := range ids {
		if spiffeid.Validate(id) != nil {
			return nil, fmt.Errorf("discovery: %q is no valid SPIFFE ID", id)
		}
		callees[strings.Join(spiffeid.Segments(id), "/")] = true
	}
	data := map[string]any{"authz": map[string]any{"discovery": map[string]any{"callees": callees}}}
	canonical, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	sum := newDigest(canonical, s)
	sum.add(discoveryPolicyPath, DiscoveryPolicy)
	regoVersion := 1
	roots := []string{DiscoveryRoot}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: sum.revision(), Roots: &roots, RegoVersion: &regoVersion},
		Data:     data,
		Modules:  []bundle.ModuleFile{{URL: "/" + discoveryPolicyPath, Path: "/" + discoveryPolicyPath, Raw: DiscoveryPolicy}},
	}
	if err := compileDiscovery(ctx, b); err != nil {
		return nil, fmt.Errorf("discovery bundle does not compile: %w", err)
	}
	tarball, err := seal(b, s)
	if err != nil {
		return nil, err
	}
	return &CalleeBundle{Revision: b.Manifest.Revision, Tarball: tarball}, nil
}

func compileDiscovery(ctx context.Context, b *bundle.Bundle) error {
	module, err := ast.ParseModuleWithOpts(discoveryPolicyPath, string(DiscoveryPolicy), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return err
	}
	parsed := *b
	parsed.Modules = slices.Clone(b.Modules)
	parsed.Modules[0].Parsed = module
	_, err = rego.New(rego.Query("data.authz.discovery.config"), rego.ParsedBundle("discovery", &parsed)).PrepareForEval(ctx)
	return err
}
