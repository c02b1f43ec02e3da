package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/download"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// istioRootNamespace is where a policy with a selector applies mesh-wide,
// unless the mesh config names another root namespace.
const istioRootNamespace = "istio-system"

// decodeIstio decodes an Istio resource strictly. Istio's Go types decode
// their spec leniently (unknown fields are dropped), so the spec is decoded
// again with protojson, which refuses them.
func decodeIstio(t *testing.T, doc string, obj any, spec proto.Message) {
	t.Helper()
	require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj))
	js, err := yaml.YAMLToJSON([]byte(doc))
	require.NoError(t, err)
	var raw struct {
		Spec json.RawMessage `json:"spec"`
	}
	require.NoError(t, json.Unmarshal(js, &raw))
	require.NotEmpty(t, raw.Spec)
	require.NoError(t, protojson.Unmarshal(raw.Spec, spec))
}

// decodeStrict decodes JSON into v, refusing unknown fields.
func decodeStrict(t *testing.T, js []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(v))
}

// matches reports whether a label selector selects a pod with labels.
func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// The Istio files wire Envoy to the OPA-Envoy sidecar and the sidecar to
// the collector's bundle server; each decodes strictly into Istio's,
// Kubernetes' and OPA's own types, and their names and ports agree.
func TestIstio(t *testing.T) {
	// The mesh config, as istiod's Helm values.
	raw, err := os.ReadFile(filepath.Join("istio", "mesh-config.yaml"))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(raw)
	require.NoError(t, err)
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	decodeStrict(t, js, &values)
	var mesh meshv1alpha1.MeshConfig
	require.NoError(t, protojson.Unmarshal(values.MeshConfig, &mesh))
	require.Len(t, mesh.ExtensionProviders, 1)
	provider := mesh.ExtensionProviders[0]
	extAuthz := provider.GetEnvoyExtAuthzGrpc()
	require.NotNil(t, extAuthz, "a gRPC ext_authz provider: OPA-Envoy serves Envoy's gRPC API")
	assert.False(t, extAuthz.FailOpen, "a failed check must refuse the request")
	assert.Nil(t, extAuthz.IncludeRequestBodyInCheck, "the policy reads no body")
	require.NotNil(t, extAuthz.Timeout)
	assert.LessOrEqual(t, extAuthz.Timeout.AsDuration().Seconds(), 5.0, "Istio's default, 600 s, would hold requests")
	rootNamespace := istioRootNamespace
	if mesh.RootNamespace != "" {
		rootNamespace = mesh.RootNamespace
	}

	// The ServiceEntry and the AuthorizationPolicy.
	raw, err = os.ReadFile(filepath.Join("istio", "ext-authz.yaml"))
	require.NoError(t, err)
	docs := splitDocs(raw)
	require.Len(t, docs, 2)
	var entry networkingv1.ServiceEntry
	decodeIstio(t, docs[0], &entry, &entry.Spec)
	assert.Equal(t, "networking.istio.io/v1", entry.APIVersion)
	assert.Equal(t, "ServiceEntry", entry.Kind)
	assert.Equal(t, []string{extAuthz.Service}, entry.Spec.Hosts, "the provider's service is the ServiceEntry's host")
	assert.Contains(t, entry.Spec.ExportTo, "*", "every namespace's proxies resolve it")
	assert.Equal(t, "STATIC", entry.Spec.Resolution.String())
	require.Len(t, entry.Spec.Endpoints, 1)
	assert.Equal(t, "127.0.0.1", entry.Spec.Endpoints[0].Address, "each pod's own sidecar")
	require.Len(t, entry.Spec.Ports, 1)
	assert.Equal(t, extAuthz.Port, entry.Spec.Ports[0].Number)
	assert.Equal(t, "GRPC", entry.Spec.Ports[0].Protocol)

	var policy securityv1.AuthorizationPolicy
	decodeIstio(t, docs[1], &policy, &policy.Spec)
	assert.Equal(t, "security.istio.io/v1", policy.APIVersion)
	assert.Equal(t, "AuthorizationPolicy", policy.Kind)
	assert.Equal(t, rootNamespace, policy.Namespace, "in the root namespace, its selector applies in every namespace")
	assert.Equal(t, "CUSTOM", policy.Spec.Action.String())
	assert.Equal(t, provider.Name, policy.Spec.GetProvider().GetName())
	require.Len(t, policy.Spec.Rules, 1)
	assert.True(t, proto.Equal(policy.Spec.Rules[0], &securityv1beta1.Rule{}), "one empty rule: every request is checked")

	// The workload: the sidecar's OPA config, strict mTLS, the Deployment.
	raw, err = os.ReadFile(filepath.Join("istio", "workload.yaml"))
	require.NoError(t, err)
	docs = splitDocs(raw)
	require.Len(t, docs, 3)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict([]byte(docs[0]), &cm))
	require.Equal(t, "ConfigMap", cm.Kind)
	var peer securityv1.PeerAuthentication
	decodeIstio(t, docs[1], &peer, &peer.Spec)
	require.Equal(t, "PeerAuthentication", peer.Kind)
	var deploy appsv1.Deployment
	require.NoError(t, yaml.UnmarshalStrict([]byte(docs[2]), &deploy))
	require.Equal(t, "Deployment", deploy.Kind)

	pod := deploy.Spec.Template
	assert.True(t, matches(policy.Spec.GetSelector().GetMatchLabels(), pod.Labels), "the AuthorizationPolicy selects the workload")
	assert.True(t, matches(deploy.Spec.Selector.MatchLabels, pod.Labels))
	assert.Equal(t, deploy.Namespace, peer.Namespace, "a PeerAuthentication with a selector applies in its own namespace only")
	assert.Equal(t, deploy.Namespace, cm.Namespace)
	assert.True(t, matches(peer.Spec.GetSelector().GetMatchLabels(), pod.Labels), "strict mTLS for the workload")
	assert.Equal(t, "STRICT", peer.Spec.GetMtls().GetMode().String())
	assert.Empty(t, peer.Spec.PortLevelMtls)
	var proxy meshv1alpha1.ProxyConfig
	require.NoError(t, protojson.Unmarshal([]byte(pod.Annotations["proxy.istio.io/config"]), &proxy))
	assert.True(t, proxy.GetHoldApplicationUntilProxyStarts().GetValue())

	sidecar := container(t, pod.Spec, "opa-envoy")
	assert.Equal(t, cm.Name, mountedConfigMap(pod.Spec, sidecar, "/config"), "the ConfigMap is the sidecar's /config")
	assert.Contains(t, sidecar.Args, "--config-file=/config/config.yaml")
	require.NotNil(t, sidecar.ReadinessProbe)
	require.NotNil(t, sidecar.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/health?bundles", sidecar.ReadinessProbe.HTTPGet.Path, "ready once a bundle is active")

	// The OPA config, with the sidecar's environment as OPA expands it.
	env := downwardEnv(t, deploy, sidecar)
	assert.Equal(t, "cluster.local", env["TRUST_DOMAIN"], "Istio's default trust domain")
	cfgJSON, err := yaml.YAMLToJSON([]byte(cm.Data["config.yaml"]))
	require.NoError(t, err)
	cfg := expandedConfig(t, cfgJSON, env)
	assert.Nil(t, cfg.Bundles, "the bundle comes from the discovery bundle")

	plugin := extAuthzPlugin(t, cfg)
	assert.Equal(t, "envoy/authz/allow", plugin.Path)
	host, port, err := net.SplitHostPort(plugin.Addr)
	require.NoError(t, err)
	assert.Equal(t, entry.Spec.Endpoints[0].Address, host, "ext_authz on loopback only, where the ServiceEntry points")
	assert.Equal(t, extAuthz.Port, parsePort(t, port), "Envoy calls the port the sidecar listens on")

	var services map[string]struct {
		URL string `json:"url"`
	}
	require.NoError(t, json.Unmarshal(cfg.Services, &services))
	var discovery struct {
		Service  string                 `json:"service"`
		Resource string                 `json:"resource"`
		Decision string                 `json:"decision"`
		Polling  download.PollingConfig `json:"polling"`
	}
	require.NotNil(t, cfg.Discovery)
	decodeStrict(t, cfg.Discovery, &discovery)
	require.Contains(t, services, discovery.Service)
	assert.Equal(t, "http://otelcol-authz.authz.svc:8090", services[discovery.Service].URL, "the collector's bundle server")
	assert.Equal(t, "discovery.tar.gz", discovery.Resource)
	assert.Equal(t, "authz/discovery/config", discovery.Decision, "the exporter's discovery bundle's decision")
	// The discovery bundle hands its polling to the bundle it configures.
	dl := download.Config{Polling: discovery.Polling}
	require.NoError(t, dl.ValidateAndInjectDefaults())
	require.NotNil(t, discovery.Polling.LongPollingTimeoutSeconds, "long polling")
	assert.Positive(t, *discovery.Polling.LongPollingTimeoutSeconds)
	require.NotNil(t, discovery.Polling.MinDelaySeconds)
	require.NotNil(t, discovery.Polling.MaxDelaySeconds)
	assert.LessOrEqual(t, *discovery.Polling.MinDelaySeconds, *discovery.Polling.MaxDelaySeconds)
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	p, err := strconv.ParseUint(s, 10, 16)
	require.NoError(t, err)
	return uint32(p)
}
