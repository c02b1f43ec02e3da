package deploy

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"
)

// pxlExports reads a PxL script with Python's own parser (PxL is Python
// syntax) and prints, for each px.export call, the data frame it exports,
// its endpoint, the keys of its resource and of each span's attributes,
// each span's kind, and the data frames the values are read from. A key
// that is not a string literal fails: the test must see every name.
const pxlExports = `
import ast, json, sys

def dotted(n):
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    if isinstance(n, ast.Name):
        parts.append(n.id)
    return '.'.join(reversed(parts))

def keywords(call):
    return {k.arg: k.value for k in call.keywords}

def frames(nodes):
    return sorted({n.value.id for v in nodes for n in ast.walk(v)
                   if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id != 'px'})

def keys(d):
    if not isinstance(d, ast.Dict):
        sys.exit('line %d: not a dict literal' % d.lineno)
    for k in d.keys:
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            sys.exit('line %d: a key that is not a string literal' % d.lineno)
    return [k.value for k in d.keys]

out = []
tree = ast.parse(open(sys.argv[1]).read(), sys.argv[1])
for call in ast.walk(tree):
    if not (isinstance(call, ast.Call) and dotted(call.func) == 'px.export'):
        continue
    df, data = call.args
    kw = keywords(data)
    endpoint = keywords(kw['endpoint'])
    spans = []
    for span in kw['data'].elts:
        if dotted(span.func) != 'px.otel.trace.Span':
            sys.exit('line %d: not a span' % span.lineno)
        skw = keywords(span)
        spans.append({'attributes': keys(skw['attributes']), 'kind': dotted(skw['kind']),
                      'frames': frames(skw.values())})
    out.append({'frame': df.id, 'endpoint': endpoint['url'].value, 'insecure': endpoint['insecure'].value,
                'resource': keys(kw['resource']), 'resource_frames': frames(kw['resource'].values),
                'spans': spans})
print(json.dumps(out))
`

type pxlExport struct {
	Frame, Endpoint string
	Insecure        bool
	Resource        []string
	ResourceFrames  []string `json:"resource_frames"`
	Spans           []struct {
		Attributes []string
		Kind       string
		Frames     []string
	}
}

// The PxL script exports what the exporter reads with its default
// configuration, and nothing it does not. Pixie cannot run here (it needs
// a Kubernetes cluster and its eBPF agents): the script is checked by
// parsing it, not by running it. make test installs python3 when missing.
func TestPixieScript(t *testing.T) {
	python, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 reads the PxL script (make test installs it)")
	out, err := exec.Command(python, "-c", pxlExports, filepath.Join("pixie", "authz-spans.pxl")).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("parsing the script: %v\n%s", err, exitErr.Stderr)
	}
	require.NoError(t, err)
	var exports []pxlExport
	require.NoError(t, json.Unmarshal(out, &exports))
	require.Len(t, exports, 2, "plain HTTP, and gRPC with its status")

	cfg, ok := authzpolicyexporter.NewFactory().CreateDefaultConfig().(*authzpolicyexporter.Config)
	require.True(t, ok)
	attrs := cfg.Attributes
	read := map[string]bool{}
	v := reflect.ValueOf(attrs)
	for i := range v.NumField() {
		if names, ok := v.Field(i).Interface().([]string); ok {
			for _, n := range names {
				read[n] = true
			}
		}
	}
	// Resource attributes the exporter does not read: Pixie refuses an
	// export without service.name, and the pod's names tell a reader of
	// the spans where they come from.
	context := map[string]bool{"service.name": true, "k8s.namespace.name": true, "k8s.pod.name": true}
	anyOf := func(got []string, names []string) bool {
		for _, n := range names {
			for _, g := range got {
				if g == n {
					return true
				}
			}
		}
		return false
	}

	grpc := 0
	for _, e := range exports {
		assert.Equal(t, "otelcol-authz.authz.svc:4317", e.Endpoint, "the collector's OTLP gRPC receiver")
		assert.True(t, e.Insecure, "the receiver listens without TLS")
		assert.Contains(t, e.Resource, "service.name", "Pixie refuses an export without it")
		for _, r := range e.Resource {
			assert.True(t, read[r] || context[r], "resource attribute %s is read by no default", r)
		}
		assert.Equal(t, []string{e.Frame}, e.ResourceFrames, "the resource is read from the exported frame")
		require.Len(t, e.Spans, 1)
		span := e.Spans[0]
		assert.Equal(t, "px.otel.trace.SPAN_KIND_SERVER", span.Kind, "the exporter learns only the callee's SERVER spans")
		assert.Equal(t, []string{e.Frame}, span.Frames, "the span is read from the exported frame")
		for _, a := range span.Attributes {
			assert.True(t, read[a], "span attribute %s is read by no default", a)
		}
		// What the exporter requires (Config.Validate), and the status
		// without which refused requests would be learned.
		identity := anyOf(span.Attributes, attrs.XFCC) || anyOf(span.Attributes, attrs.RequestHeaders) ||
			anyOf(span.Attributes, attrs.XFCCBy) && anyOf(span.Attributes, attrs.XFCCURI)
		assert.True(t, identity, "an identity attribute")
		assert.True(t, anyOf(span.Attributes, attrs.Method), "a method attribute")
		assert.True(t, anyOf(span.Attributes, attrs.Path) || anyOf(span.Attributes, attrs.URL), "a path attribute")
		assert.True(t, anyOf(span.Attributes, attrs.StatusCode), "a status attribute")
		assert.True(t, anyOf(span.Attributes, attrs.ContentType), "a content type: a gRPC call without its status is not learned")
		if anyOf(span.Attributes, attrs.GRPCStatusCode) {
			grpc++
		}
	}
	assert.Equal(t, 1, grpc, "one export carries the gRPC status, the other none (an empty one says nothing)")
}
