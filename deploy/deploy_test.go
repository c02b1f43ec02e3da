// Package deploy holds the configuration users copy. Its test checks the
// OPA-Envoy configurations with OPA's own parsers; the end-to-end tests run
// the ones that need no cloud credentials (HTTP, S3) against real servers.
package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/config"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
			if cfg.Discovery != nil {
				// The bundle comes from the discovery bundle's decision.
				// (the end-to-end test runs OPA on it; its discovery
				// package would link OPA's server here).
				var d struct{ Service, Resource, Decision string }
				require.NoError(t, json.Unmarshal(cfg.Discovery, &d))
				assert.Contains(t, names, d.Service)
				assert.True(t, strings.HasSuffix(d.Resource, "/discovery.tar.gz"), "the bundles lie beside the discovery bundle")
				assert.Equal(t, "authz/discovery/config", d.Decision)
				assert.Nil(t, cfg.Bundles, "a bundle of the boot configuration would win over the discovered one")
				return
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

			plugin := extAuthzPlugin(t, cfg)
			assert.Equal(t, "envoy/authz/allow", plugin.Path)
			assert.NotEmpty(t, plugin.Addr)
		})
	}
}

// The sidecar manifest decodes strictly into Kubernetes' own types, holds
// opa-envoy/per-callee.yaml, and gives OPA the environment that makes its
// bundle resource the callee's own object.
func TestPerCalleeSidecar(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("kubernetes", "opa-envoy-sidecar.yaml"))
	require.NoError(t, err)
	docs := splitDocs(raw)
	require.Len(t, docs, 2)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict([]byte(docs[0]), &cm))
	var deploy appsv1.Deployment
	require.NoError(t, yaml.UnmarshalStrict([]byte(docs[1]), &deploy))
	require.Equal(t, "ConfigMap", cm.Kind)
	require.Equal(t, "Deployment", deploy.Kind)

	// The ConfigMap holds the file users copy, as it is.
	want, err := os.ReadFile(filepath.Join("opa-envoy", "per-callee.yaml"))
	require.NoError(t, err)
	wantJSON, err := yaml.YAMLToJSON(want)
	require.NoError(t, err)
	gotJSON, err := yaml.YAMLToJSON([]byte(cm.Data["config.yaml"]))
	require.NoError(t, err)
	assert.JSONEq(t, string(wantJSON), string(gotJSON))

	sidecar := container(t, deploy.Spec.Template.Spec, "opa-envoy")
	assert.Contains(t, sidecar.Args, "--config-file=/config/config.yaml")
	assert.Equal(t, cm.Name, mountedConfigMap(deploy.Spec.Template.Spec, sidecar, "/config"), "the ConfigMap is the sidecar's /config")

	cfg := expandedConfig(t, wantJSON, downwardEnv(t, deploy, sidecar))
	bundles, err := bundle.NewConfigBuilder().WithBytes(cfg.Bundles).WithServices([]string{"s3"}).Parse()
	require.NoError(t, err)
	// The object output.per_callee writes for spiffe://cluster.local/ns/bank/sa/balances
	// below s3://authz-bundles/prod (publish.CalleeKey).
	assert.Equal(t, "prod/callees/cluster.local/ns/bank/sa/balances/bundle.tar.gz", bundles.Bundles["authz"].Resource)
}

// splitDocs splits a multi-document YAML file.
func splitDocs(raw []byte) []string {
	return strings.Split(string(raw), "\n---\n")
}

// container returns the pod's container of that name.
func container(t *testing.T, pod corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range pod.Containers {
		if pod.Containers[i].Name == name {
			return &pod.Containers[i]
		}
	}
	require.FailNow(t, "no container "+name)
	return nil
}

// mountedConfigMap names the ConfigMap mounted at path in c, if any.
func mountedConfigMap(pod corev1.PodSpec, c *corev1.Container, path string) string {
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && m.MountPath == path && v.ConfigMap != nil {
				return v.ConfigMap.Name
			}
		}
	}
	return ""
}

// downwardEnv is the environment c gets in the Deployment's pods: plain
// values, and the namespace and service account from the downward API.
func downwardEnv(t *testing.T, deploy appsv1.Deployment, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = deploy.Namespace
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.serviceAccountName":
			env[e.Name] = deploy.Spec.Template.Spec.ServiceAccountName
		default:
			require.FailNow(t, "an environment source the test does not know", e.Name)
		}
	}
	return env
}

// expandedConfig parses an OPA config as OPA reads it in a container with
// env: OPA replaces ${NAME} with the variable's value (the end-to-end tests
// run OPA itself on these files).
func expandedConfig(t *testing.T, configJSON []byte, env map[string]string) *config.Config {
	t.Helper()
	expanded := os.Expand(string(configJSON), func(name string) string {
		v, ok := env[name]
		require.True(t, ok, "%s is not in the sidecar's environment", name)
		return v
	})
	cfg, err := config.ParseConfig([]byte(expanded), "test")
	require.NoError(t, err)
	return cfg
}

// extAuthzConfig is the configuration of OPA-Envoy's ext_authz gRPC server.
type extAuthzConfig struct {
	Addr string `json:"addr"`
	Path string `json:"path"`
}

func extAuthzPlugin(t *testing.T, cfg *config.Config) extAuthzConfig {
	t.Helper()
	require.Contains(t, cfg.Plugins, "envoy_ext_authz_grpc")
	var plugin extAuthzConfig
	decodeStrict(t, cfg.Plugins["envoy_ext_authz_grpc"], &plugin)
	return plugin
}
