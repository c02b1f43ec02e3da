package render

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

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
	b := assemble(sum.revision(), DiscoveryRoot, discoveryPolicyPath, DiscoveryPolicy, data)
	if err := prepare(ctx, b, "data.authz.discovery.config"); err != nil {
		return nil, fmt.Errorf("discovery bundle does not compile: %w", err)
	}
	tarball, err := seal(b, s)
	if err != nil {
		return nil, err
	}
	return &CalleeBundle{Revision: b.Manifest.Revision, Tarball: tarball}, nil
}
