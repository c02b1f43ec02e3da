package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// chartSchema is the opentelemetry-collector chart's values schema, which
// the workspace keeps beside the repository (as CI has it).
var chartSchema = filepath.Join("..", "..", "shared", "helm", "opentelemetry-collector.values.schema.json")

func TestHelmValues(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("helm", "values.yaml"))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(raw)
	require.NoError(t, err)
	values, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	require.NoError(t, err)

	_, err = os.Stat(chartSchema)
	require.NoError(t, err, "the chart's values schema is not beside the repository")
	c := jsonschema.NewCompiler()
	schema, err := c.Compile(chartSchema)
	require.NoError(t, err)
	require.NoError(t, schema.Validate(values))

	// What the chart itself insists on for a custom distribution.
	var v struct {
		Image   struct{ Repository string }
		Command struct{ Name string }
		Config  struct {
			Receivers map[string]any
			Service   struct {
				Extensions []string
				Pipelines  map[string]any
			}
		}
	}
	require.NoError(t, json.Unmarshal(js, &v))
	assert.NotEmpty(t, v.Image.Repository)
	assert.Equal(t, "otelcol-authz", v.Command.Name, "the chart runs /<command.name>; ocb names the binary otelcol-authz")
	assert.Contains(t, v.Config.Service.Extensions, "health_check")
	for _, r := range []string{"jaeger", "zipkin", "prometheus"} {
		assert.Contains(t, v.Config.Receivers, r)
		assert.Nil(t, v.Config.Receivers[r], "%s is not in the distribution and must be turned off", r)
	}
	assert.Nil(t, v.Config.Service.Pipelines["metrics"])
	assert.Nil(t, v.Config.Service.Pipelines["logs"])
}
