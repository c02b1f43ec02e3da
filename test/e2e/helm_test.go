//go:build e2e

package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The real opentelemetry-collector chart, which the workspace keeps beside
// the repository (as CI has it), installed as the values file says.
const (
	chartFile      = "opentelemetry-collector-0.170.0.tgz"
	helmRelease    = "otelcol-authz"
	helmNamespace  = "authz"
	bundlesService = "otelcol-authz" // http://otelcol-authz.authz.svc:8090 in the sidecars' configs
)

func chartPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", "helm", chartFile)
	_, err := os.Stat(p)
	require.NoError(t, err, "the chart is not beside the repository")
	return p
}

// helm runs the helm binary `make e2e` passes, with its caches and
// configuration in a temporary directory.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := binary(t, "OTELCOL_AUTHZ_HELM")
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helm %s:\n%s%s", strings.Join(args, " "), out, stderr.String())
	return out
}

func valuesFile(t *testing.T) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "values.yaml")
}

func TestE2EHelmLint(t *testing.T) {
	out := helm(t, "lint", "--strict", chartPath(t), "-f", valuesFile(t))
	assert.Contains(t, string(out), "0 chart(s) failed")
	// The chart checks its values schema too: the replicas' overlay on top.
	out = helm(t, "lint", "--strict", chartPath(t), "-f", valuesFile(t), "-f", filepath.Join(repoRoot(t), "deploy", "helm", "values-replicas.yaml"))
	assert.Contains(t, string(out), "0 chart(s) failed")
}

// rendered is what `helm template` makes of the chart and the values,
// each object decoded strictly into Kubernetes' own type.
type rendered struct {
	configMaps      []corev1.ConfigMap
	services        []corev1.Service
	serviceAccounts []corev1.ServiceAccount
	statefulSets    []appsv1.StatefulSet
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// renderChart renders the chart with values.yaml and then the overlays
// named (files in deploy/helm): one StatefulSet, one Service.
func renderChart(t *testing.T, overlays ...string) *rendered {
	t.Helper()
	args := []string{"template", helmRelease, chartPath(t), "--namespace", helmNamespace, "-f", valuesFile(t)}
	for _, o := range overlays {
		args = append(args, "-f", filepath.Join(repoRoot(t), "deploy", "helm", o))
	}
	out := helm(t, args...)
	r := &rendered{}
	for _, doc := range documentSeparator.Split(string(out), -1) {
		if onlyComments(doc) {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s", doc)
		switch meta.APIVersion + " " + meta.Kind {
		case "v1 ConfigMap":
			appendStrict(t, &r.configMaps, doc)
		case "v1 Service":
			appendStrict(t, &r.services, doc)
		case "v1 ServiceAccount":
			appendStrict(t, &r.serviceAccounts, doc)
		case "apps/v1 StatefulSet":
			appendStrict(t, &r.statefulSets, doc)
		default:
			require.Failf(t, "the chart renders an object this test does not know", "%s %s:\n%s", meta.APIVersion, meta.Kind, doc)
		}
	}
	require.Len(t, r.configMaps, 1)
	require.Len(t, r.services, 1)
	require.Len(t, r.serviceAccounts, 1)
	require.Len(t, r.statefulSets, 1)
	return r
}

// appendStrict decodes doc into a T, failing on any field T does not have.
func appendStrict[T any](t *testing.T, list *[]T, doc string) {
	t.Helper()
	var v T
	require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &v), "%T does not decode strictly:\n%s", v, doc)
	*list = append(*list, v)
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// collectorContainer is the pod's one container, which runs the distribution.
func (r *rendered) collectorContainer(t *testing.T) (corev1.PodSpec, corev1.Container) {
	t.Helper()
	pod := r.statefulSets[0].Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	return pod, pod.Containers[0]
}

// relayConfig is the part of the collector config (the ConfigMap's relay
// key) that says where the pod listens and writes.
type relayConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC struct{ Endpoint string }
				HTTP struct{ Endpoint string }
			}
		}
	}
	Exporters struct {
		AuthzPolicy struct {
			Output struct {
				URL         string `json:"url"`
				UnpackedDir string `json:"unpacked_dir"`
				PerCallee   bool   `json:"per_callee"`
			}
			Serve struct{ Endpoint string }
		} `json:"authz_policy"`
	}
	Extensions struct {
		HealthCheck struct{ Endpoint string }  `json:"health_check"`
		FileStorage struct{ Directory string } `json:"file_storage"`
	}
}

func (r *rendered) relay(t *testing.T) (string, relayConfig) {
	t.Helper()
	raw, ok := r.configMaps[0].Data["relay"]
	require.True(t, ok, "the ConfigMap has no relay key")
	var cfg relayConfig
	require.NoError(t, yaml.Unmarshal([]byte(raw), &cfg))
	return raw, cfg
}

// port is an endpoint's port; its host may be a ${env:...} reference.
func port(t *testing.T, endpoint string) string {
	t.Helper()
	i := strings.LastIndex(endpoint, ":")
	require.Positive(t, i, "endpoint %q has no port", endpoint)
	p := endpoint[i+1:]
	_, err := strconv.ParseUint(p, 10, 16)
	require.NoError(t, err, "endpoint %q", endpoint)
	return p
}

// The collector config the chart renders is one the distribution accepts,
// in the environment the pod gives it: every variable it names is set.
func TestE2EHelmRelayConfigValidates(t *testing.T) {
	validateRelay(t, renderChart(t))
}

// validateRelay runs `otelcol-authz validate` on the rendered collector
// config with the pod's environment.
func validateRelay(t *testing.T, r *rendered) {
	t.Helper()
	raw, _ := r.relay(t)
	_, c := r.collectorContainer(t)

	env := []string{"PATH=" + os.Getenv("PATH")}
	set := map[string]bool{}
	for _, e := range c.Env {
		set[e.Name] = true
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && strings.HasSuffix(e.ValueFrom.FieldRef.FieldPath, "IP"):
			env = append(env, e.Name+"=127.0.0.1")
		default:
			env = append(env, e.Name+"="+strings.ReplaceAll(strings.ToLower(e.Name), "_", "-"))
		}
	}
	require.True(t, set["MY_POD_IP"])
	for _, m := range regexp.MustCompile(`\$\{env:([A-Za-z0-9_]+)`).FindAllStringSubmatch(raw, -1) {
		assert.True(t, set[m[1]], "the config reads ${env:%s}, which the pod does not set", m[1])
	}

	file := filepath.Join(t.TempDir(), "relay.yaml")
	require.NoError(t, os.WriteFile(file, []byte(raw), 0o600))
	cmd := exec.Command(binary(t, "OTELCOL_AUTHZ_BIN"), "validate", "--config", file)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "otelcol-authz validate:\n%s\nconfig:\n%s", out, raw)
}

// The pod runs as a restricted pod: not root, a read-only root file
// system, no privileges, the runtime's seccomp profile.
func TestE2EHelmPodHardened(t *testing.T) {
	pod, c := renderChart(t).collectorContainer(t)
	require.NotNil(t, pod.SecurityContext)
	require.NotNil(t, c.SecurityContext)
	psc, sc := pod.SecurityContext, c.SecurityContext

	// The container's settings win over the pod's.
	runAsNonRoot := firstSet(sc.RunAsNonRoot, psc.RunAsNonRoot)
	require.NotNil(t, runAsNonRoot)
	assert.True(t, *runAsNonRoot)
	for name, id := range map[string]*int64{
		"runAsUser":  firstSet(sc.RunAsUser, psc.RunAsUser),
		"runAsGroup": firstSet(sc.RunAsGroup, psc.RunAsGroup),
		"fsGroup":    psc.FSGroup,
	} {
		if assert.NotNil(t, id, name) {
			assert.EqualValues(t, 10001, *id, name)
		}
	}
	if assert.NotNil(t, sc.ReadOnlyRootFilesystem) {
		assert.True(t, *sc.ReadOnlyRootFilesystem)
	}
	if assert.NotNil(t, sc.AllowPrivilegeEscalation, "unset is allowed") {
		assert.False(t, *sc.AllowPrivilegeEscalation)
	}
	if sc.Privileged != nil {
		assert.False(t, *sc.Privileged)
	}
	if assert.NotNil(t, sc.Capabilities) {
		assert.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"))
		assert.Empty(t, sc.Capabilities.Add)
	}
	seccomp := firstSet(sc.SeccompProfile, psc.SeccompProfile)
	if assert.NotNil(t, seccomp) {
		assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, seccomp.Type)
	}
	assert.False(t, pod.HostNetwork)
	assert.False(t, pod.HostPID)
	if assert.NotNil(t, pod.AutomountServiceAccountToken) {
		assert.False(t, *pod.AutomountServiceAccountToken, "the collector does not call the Kubernetes API")
	}

	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, limit := c.Resources.Requests[name], c.Resources.Limits[name]
		assert.False(t, req.IsZero(), "no %s request", name)
		assert.False(t, limit.IsZero(), "no %s limit", name)
		assert.LessOrEqual(t, req.Cmp(limit), 0, "the %s request is above its limit", name)
	}
}

func firstSet[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// The probes ask the health_check extension; the directories the config
// writes are on the StatefulSet's claim, the one thing the pod can write.
func TestE2EHelmProbesAndVolume(t *testing.T) {
	r := renderChart(t)
	_, cfg := r.relay(t)
	_, c := r.collectorContainer(t)

	health := port(t, cfg.Extensions.HealthCheck.Endpoint)
	assert.Equal(t, "13133", health)
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if assert.NotNil(t, p, "no %s probe", name) && assert.NotNil(t, p.HTTPGet, "%s", name) {
			assert.Equal(t, health, p.HTTPGet.Port.String(), "%s probe port", name)
			assert.Equal(t, "/", p.HTTPGet.Path, "%s probe path", name)
		}
	}

	claims := map[string]bool{}
	for _, pvc := range r.statefulSets[0].Spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
	}
	output, err := url.Parse(cfg.Exporters.AuthzPolicy.Output.URL)
	require.NoError(t, err)
	require.Equal(t, "file", output.Scheme, "this check knows where a file output writes")
	for what, dir := range map[string]string{
		"file_storage.directory": cfg.Extensions.FileStorage.Directory,
		"output.url":             output.Path,
		"output.unpacked_dir":    cfg.Exporters.AuthzPolicy.Output.UnpackedDir,
	} {
		require.True(t, filepath.IsAbs(dir), "%s: %q", what, dir)
		onClaim := false
		for _, m := range c.VolumeMounts {
			if (dir == m.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/")) && claims[m.Name] && !m.ReadOnly {
				onClaim = true
			}
		}
		assert.True(t, onClaim, "%s %s is not on a writable mount of a volume claim", what, dir)
	}
}

// The Service is the one the sidecars are pointed at and carries OTLP and
// the bundle server, on the ports the config listens on.
func TestE2EHelmService(t *testing.T) {
	r := renderChart(t)
	_, cfg := r.relay(t)
	_, c := r.collectorContainer(t)
	svc := r.services[0]
	assert.Equal(t, bundlesService, svc.Name)
	assert.Equal(t, helmNamespace, svc.Namespace)
	assert.Equal(t, svc.Name, r.statefulSets[0].Spec.ServiceName)
	assert.True(t, cfg.Exporters.AuthzPolicy.Output.PerCallee, "the sidecars fetch their callee's bundle")

	selected := true
	for k, v := range svc.Spec.Selector {
		selected = selected && r.statefulSets[0].Spec.Template.Labels[k] == v
	}
	assert.True(t, selected, "the Service does not select the collector's pod")

	servicePorts := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		servicePorts[p.TargetPort.String()] = p
	}
	var containerPorts []string
	for _, p := range c.Ports {
		containerPorts = append(containerPorts, strconv.Itoa(int(p.ContainerPort)))
	}
	for what, endpoint := range map[string]string{
		"otlp grpc": cfg.Receivers.OTLP.Protocols.GRPC.Endpoint,
		"otlp http": cfg.Receivers.OTLP.Protocols.HTTP.Endpoint,
		"serve":     cfg.Exporters.AuthzPolicy.Serve.Endpoint,
	} {
		p := port(t, endpoint)
		assert.Contains(t, containerPorts, p, "%s: no container port %s", what, p)
		if assert.Contains(t, servicePorts, p, "%s: the Service does not forward to %s", what, p) {
			assert.Equal(t, p, strconv.Itoa(int(servicePorts[p].Port)), "%s: Service port", what)
			assert.Equal(t, corev1.ProtocolTCP, servicePorts[p].Protocol)
		}
	}
	for _, p := range []string{"4317", "4318", "8090"} {
		assert.Contains(t, servicePorts, p)
	}
	assert.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "bundles" && p.Port == 8090 }))
}

// The replicas' overlay: a StatefulSet of three pods without a claim (their
// names, the replica ids, stay across restarts), behind a headless
// Service, sharing an object store; its config is one the distribution
// accepts.
func TestE2EHelmReplicas(t *testing.T) {
	r := renderChart(t, "values-replicas.yaml")
	require.Len(t, r.statefulSets, 1)
	ss := r.statefulSets[0]
	require.NotNil(t, ss.Spec.Replicas)
	assert.Equal(t, int32(3), *ss.Spec.Replicas)
	assert.Empty(t, ss.Spec.VolumeClaimTemplates, "no claim: a replica resumes from its shard")
	assert.Equal(t, "None", r.services[0].Spec.ClusterIP, "headless: the first tier resolves every replica")
	validateRelay(t, r)

	raw, _ := r.relay(t)
	var cfg struct {
		Exporters struct {
			AuthzPolicy struct {
				Output struct {
					URL       string `json:"url"`
					ReplicaID string `json:"replica_id"`
				}
			} `json:"authz_policy"`
		}
	}
	require.NoError(t, yaml.Unmarshal([]byte(raw), &cfg))
	assert.Equal(t, "${env:MY_POD_NAME}", cfg.Exporters.AuthzPolicy.Output.ReplicaID)
	assert.True(t, strings.HasPrefix(cfg.Exporters.AuthzPolicy.Output.URL, "s3://"), "the replicas share an object store")

	pod, c := r.collectorContainer(t)
	var name *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "MY_POD_NAME" {
			name = &c.Env[i]
		}
	}
	require.NotNil(t, name, "the pod's name reaches the config")
	require.NotNil(t, name.ValueFrom)
	assert.Equal(t, "metadata.name", name.ValueFrom.FieldRef.FieldPath)
	for _, v := range pod.Volumes {
		assert.Nil(t, v.PersistentVolumeClaim, "no claim: a replica resumes from its shard")
	}
}
