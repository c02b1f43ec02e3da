// Package deploy holds the configuration users copy. Its test checks the
// OPA-Envoy configurations with OPA's own parsers; the end-to-end tests run
// the ones that need no cloud credentials (HTTP, S3) against real servers.
package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/config"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func TestOPAEnvoyConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("opa-envoy", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			js, err := yaml.YAMLToJSON(raw)
			require.NoError(t, err)
			cfg, err := config.ParseConfig(js, "test")
			require.NoError(t, err)

			var services map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(cfg.Services, &services))
			names := make([]string, 0, len(services))
			for n := range services {
				names = append(names, n)
			}
			// Keys, when present, are what a bundle's signature is checked
			// against; its signing.keyid must name one of them.
			var verificationKeys map[string]*keys.Config
			if cfg.Keys != nil {
				verificationKeys, err = keys.ParseKeysConfig(cfg.Keys)
				require.NoError(t, err)
			}
			bundles, err := bundle.NewConfigBuilder().WithBytes(cfg.Bundles).WithServices(names).WithKeyConfigs(verificationKeys).Parse()
			require.NoError(t, err)
			require.Contains(t, bundles.Bundles, "authz")
			assert.NotEmpty(t, bundles.Bundles["authz"].Resource)
			if verificationKeys != nil {
				signing := bundles.Bundles["authz"].Signing
				require.NotNil(t, signing)
				assert.NotEmpty(t, signing.KeyID, "without a key id OPA also accepts unsigned bundles")
			}

			var plugin struct {
				Addr string `json:"addr"`
				Path string `json:"path"`
			}
			require.Contains(t, cfg.Plugins, "envoy_ext_authz_grpc")
			require.NoError(t, json.Unmarshal(cfg.Plugins["envoy_ext_authz_grpc"], &plugin))
			assert.Equal(t, "envoy/authz/allow", plugin.Path)
			assert.NotEmpty(t, plugin.Addr)
		})
	}
}
