package render

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The unseen bundle decides for a callee the full bundle does not know as
// the full bundle does, and is never more permissive: a sidecar of a known
// callee that polls it by mistake (a wrong service account in its
// environment) loses that callee's grants and gains nothing.
func TestUnseenBundle(t *testing.T) {
	b := renderOpts(t, meshRecords(), perCallee(t))
	require.NotNil(t, b.Unseen)
	full, unseen := opatest.Load(t, b.Tarball), opatest.Load(t, b.Unseen.Tarball)
	p, err := Read(b.Unseen.Tarball)
	require.NoError(t, err)
	assert.Empty(t, p.Rules)
	assert.Len(t, p.Modes, len(b.Callees), "it knows every callee, without grants")
	known := byID(b)
	for _, tt := range meshCases() {
		t.Run(tt.name, func(t *testing.T) {
			want, got := outcomeOf(t, full, tt.req), outcomeOf(t, unseen, tt.req)
			dst := tt.req.DestinationPrincipal
			if dst == "" {
				dst = tt.req.Destination
			}
			if known[dst] == nil {
				assert.Equal(t, want, got, "a callee the bundles do not know")
			}
			if allows(got) {
				assert.True(t, allows(want), "the unseen bundle allows what the full bundle denies")
			}
		})
	}
	assert.Equal(t, wouldDeny, outcomeOf(t, unseen, mtls(fresh, web, "GET", "/anything")), "a new callee learns")
	assert.Equal(t, denied, outcomeOf(t, unseen, mtls(balances, frontend, "GET", "/balances/summary")), "a known callee is no unseen one")
}

// discoveryConfig evaluates the discovery bundle as OPA does at a sidecar
// with this boot configuration and environment.
func discoveryConfig(t *testing.T, tarball []byte, boot map[string]any, env map[string]string) (map[string]any, bool) {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	require.NoError(t, err)
	info := ast.NewObject()
	info.Insert(ast.StringTerm("config"), ast.NewTerm(ast.MustInterfaceToValue(map[string]any{"discovery": boot})))
	e := ast.NewObject()
	for k, v := range env {
		e.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	info.Insert(ast.StringTerm("env"), ast.NewTerm(e))
	rs, err := rego.New(rego.Query("data.authz.discovery.config"), rego.ParsedBundle("discovery", &b), rego.Runtime(ast.NewTerm(info))).Eval(context.Background())
	require.NoError(t, err)
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0].Expressions[0].Value.(map[string]any), true
}

func TestDiscovery(t *testing.T) {
	d, err := Discovery(context.Background(), []string{balances, "spiffe://example.org/ns/shop/sa/cart"}, nil)
	require.NoError(t, err)
	again, err := Discovery(context.Background(), []string{"spiffe://example.org/ns/shop/sa/cart", balances}, nil)
	require.NoError(t, err)
	assert.Equal(t, d.Revision, again.Revision)
	assert.Equal(t, d.Tarball, again.Tarball)
	_, err = Discovery(context.Background(), []string{"spiffe://Example.org/x"}, nil)
	require.Error(t, err)

	boot := map[string]any{"service": "s3", "resource": "prod/discovery.tar.gz", "polling": map[string]any{"min_delay_seconds": 10}}
	bank := map[string]string{"TRUST_DOMAIN": "example.org", "POD_NAMESPACE": "bank", "POD_SERVICE_ACCOUNT": "balances"}
	tests := []struct {
		name     string
		boot     map[string]any
		env      map[string]string
		resource string // "" for no configuration
	}{
		{"known callee", boot, bank, "prod/callees/example.org/ns/bank/sa/balances/bundle.tar.gz"},
		{"callee without its own bundle yet", boot, map[string]string{"TRUST_DOMAIN": "example.org", "POD_NAMESPACE": "bank", "POD_SERVICE_ACCOUNT": "fresh"}, "prod/unseen.tar.gz"},
		{"other trust domain", boot, map[string]string{"TRUST_DOMAIN": "other.org", "POD_NAMESPACE": "bank", "POD_SERVICE_ACCOUNT": "balances"}, "prod/unseen.tar.gz"},
		{"no prefix", map[string]any{"service": "bundles", "resource": "discovery.tar.gz"}, bank, "callees/example.org/ns/bank/sa/balances/bundle.tar.gz"},
		{"no service account", boot, map[string]string{"TRUST_DOMAIN": "example.org", "POD_NAMESPACE": "bank"}, ""},
		{"no environment", boot, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := discoveryConfig(t, d.Tarball, tt.boot, tt.env)
			if tt.resource == "" {
				assert.False(t, ok, "no configuration, so no bundle: %v", cfg)
				return
			}
			require.True(t, ok)
			want := map[string]any{"service": tt.boot["service"], "resource": tt.resource}
			if p, ok := tt.boot["polling"]; ok {
				want["polling"] = p
			}
			assert.JSONEq(t, jsonOf(t, map[string]any{"bundles": map[string]any{"authz": want}}), jsonOf(t, cfg))
		})
	}
	signed := map[string]any{"service": "s3", "resource": "discovery.tar.gz", "signing": map[string]any{"keyid": "authz"}}
	cfg, ok := discoveryConfig(t, d.Tarball, signed, bank)
	require.True(t, ok)
	assert.JSONEq(t, `{"keyid": "authz"}`, jsonOf(t, cfg["bundles"].(map[string]any)["authz"].(map[string]any)["signing"]),
		"the bundle is verified as the discovery bundle is")
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
