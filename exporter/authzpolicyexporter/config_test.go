package authzpolicyexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.FlushInterval = 10 * time.Second
	custom.Window = 24 * time.Hour
	custom.MaxEntries = 5000
	custom.MaxEntriesPerCaller = 200
	custom.MaxEntriesPerSource = 1000
	custom.SkipStatusCodes = []int{401, 403, 407}
	custom.SkipGRPCStatusCodes = []int{7, 16}
	custom.LearnUnspecifiedKind = false
	custom.TruncationLimits = []int{4096, 8192}
	custom.Output = OutputConfig{URL: "s3://policies/prod/authz?region=eu-west-1", Timeout: 20 * time.Second, KeepRevisions: 5, UnpackedDir: "/srv/policy-review", PerCallee: true}
	custom.Routes = RoutesConfig{
		Templates:            []string{"/users/{id}", "/orders/{order:id}/items/{item:int}"},
		CardinalityThreshold: 20,
		MaxPathLength:        1024,
		MaxSegments:          16,
		OpenAPI: []OpenAPIConfig{
			{Callee: "spiffe://example.org/ns/shop/**", Spec: "testdata/openapi/shop.yaml", Strict: true},
			{Callee: "spiffe://example.org/ns/bank/sa/ledger", Spec: "testdata/openapi/shop.yaml"},
		},
	}
	custom.Attributes = AttributesConfig{
		XFCC:            []string{"envoy.xfcc"},
		RequestHeaders:  []string{},
		XFCCBy:          []string{},
		XFCCURI:         []string{},
		Method:          []string{"http.request.method"},
		Path:            []string{"url.path"},
		URL:             []string{},
		Route:           []string{"http.route"},
		StatusCode:      []string{"http.response.status_code"},
		GRPCStatusCode:  []string{"rpc.grpc.status_code"},
		ResponseHeaders: []string{},
		RPCSystem:       []string{"rpc.system.name"},
		ContentType:     []string{},
		Version:         []string{"service.version"},
	}
	custom.RelearnPeriod = 2 * time.Hour
	custom.UnseenCallees = "deny"
	custom.Modes = []ModeConfig{
		{Callees: []string{"spiffe://example.org/ns/payments/**"}, Mode: "audit"},
		{Callees: []string{"spiffe://example.org/ns/bank/sa/ledger"}, Mode: "enforce"},
	}
	custom.OverridesFile = "testdata/overrides.yaml"

	signed := createDefaultConfig().(*Config)
	signed.Signing = SigningConfig{KeyFile: "/etc/otelcol-authz/bundle-signing.pem", Algorithm: "ES256", KeyID: "authz"}
	signedDefaults := createDefaultConfig().(*Config)
	signedDefaults.Signing.KeyFile = "/etc/otelcol-authz/bundle-signing.pem"

	served := createDefaultConfig().(*Config)
	served.Serve.NetAddr.Endpoint = "0.0.0.0:8090"
	served.Serve.MaxWaiting = 50
	served.Serve.WriteTimeout = 10 * time.Second

	replica := createDefaultConfig().(*Config)
	replica.Output.URL = "s3://policies/prod?region=eu-west-1"
	replica.Output.ReplicaID = "otelcol-authz-7f9c-2"
	replica.Output.ReplicaTimeout = 2 * time.Minute

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{id: component.NewIDWithName(metadata.Type, "bad_interval"), wantErr: "flush_interval must be positive"},
		{id: component.NewIDWithName(metadata.Type, "bad_scheme"), wantErr: `output::url: scheme "ftp" is not supported`},
		{id: component.NewIDWithName(metadata.Type, "bad_template"), wantErr: "routes::templates"},
		{id: component.NewIDWithName(metadata.Type, "bad_threshold"), wantErr: "routes::cardinality_threshold"},
		{id: component.NewIDWithName(metadata.Type, "half_pair"), wantErr: "xfcc_by and xfcc_uri go together"},
		{id: component.NewIDWithName(metadata.Type, "relative_unpacked"), wantErr: "output::unpacked_dir"},
		{id: component.NewIDWithName(metadata.Type, "bucketless"), wantErr: "output::url: gs URL needs a bucket"},
		{id: component.NewIDWithName(metadata.Type, "keep_on_file"), wantErr: "output::keep_revisions applies to object stores only"},
		{id: component.NewIDWithName(metadata.Type, "bad_trust_domain"), wantErr: `trust_domains: "Example.org"`},
		{id: component.NewIDWithName(metadata.Type, "no_evidence"), wantErr: "min_observations must be at least 1"},
		{id: component.NewIDWithName(metadata.Type, "bad_shrink"), wantErr: "max_shrink: 1.5"},
		{id: component.NewIDWithName(metadata.Type, "learning_without_storage"), wantErr: "learning_period needs storage"},
		{id: component.NewIDWithName(metadata.Type, "unknown_key"), wantErr: "flush_every"},
		{id: component.NewIDWithName(metadata.Type, "signed"), want: signed},
		{id: component.NewIDWithName(metadata.Type, "signed_defaults"), want: signedDefaults},
		{id: component.NewIDWithName(metadata.Type, "bad_algorithm"), wantErr: `signing::algorithm: "PS256" is not supported`},
		{id: component.NewIDWithName(metadata.Type, "empty_key_id"), wantErr: "signing::key_id must not be empty"},
		{id: component.NewIDWithName(metadata.Type, "bad_grpc_status"), wantErr: "skip_grpc_status_codes: 17 is not a gRPC status code"},
		{id: component.NewIDWithName(metadata.Type, "bad_per_caller"), wantErr: "max_entries_per_caller must be positive"},
		{id: component.NewIDWithName(metadata.Type, "bad_per_source"), wantErr: "max_entries_per_source must be positive"},
		{id: component.NewIDWithName(metadata.Type, "bad_truncation_limit"), wantErr: "truncation_limits: -1 must be positive"},
		{id: component.NewIDWithName(metadata.Type, "bad_mode"), wantErr: `modes[0]: mode "learn" must be audit or enforce`},
		{id: component.NewIDWithName(metadata.Type, "bad_mode_pattern"), wantErr: "modes[0]::callees: spiffeid: invalid SPIFFE ID pattern"},
		{id: component.NewIDWithName(metadata.Type, "no_mode_callees"), wantErr: "modes[0]: callees must name at least one callee"},
		{id: component.NewIDWithName(metadata.Type, "bad_unseen"), wantErr: `unseen_callees: "allow" must be audit or deny`},
		{id: component.NewIDWithName(metadata.Type, "bad_relearn"), wantErr: "relearn_period must not be negative"},
		{id: component.NewIDWithName(metadata.Type, "bad_overrides"), wantErr: "overrides_file: testdata/overrides-bad.yaml:4: deny[0].methods"},
		{id: component.NewIDWithName(metadata.Type, "broken_spec"), wantErr: `routes::openapi[0]::spec: openapi spec testdata/openapi/broken.yaml: path parameter not declared: GET /orders/{orderId}`},
		{id: component.NewIDWithName(metadata.Type, "missing_spec"), wantErr: "routes::openapi[0]::spec: open testdata/openapi/no-such-spec.yaml: no such file or directory"},
		{id: component.NewIDWithName(metadata.Type, "bad_spec_callee"), wantErr: "routes::openapi[0]::callee: spiffeid: invalid SPIFFE ID pattern"},
		{id: component.NewIDWithName(metadata.Type, "spec_without_file"), wantErr: "routes::openapi[0]::spec must name a file"},
		{id: component.NewIDWithName(metadata.Type, "served"), want: served},
		{id: component.NewIDWithName(metadata.Type, "bad_waiting"), wantErr: "serve::max_waiting must not be negative"},
		{id: component.NewIDWithName(metadata.Type, "unknown_serve_key"), wantErr: "long_poll"},
		{id: component.NewIDWithName(metadata.Type, "replica"), want: replica},
		{id: component.NewIDWithName(metadata.Type, "bad_replica"), wantErr: `output::replica_id: replica id "Replica_1"`},
		{id: component.NewIDWithName(metadata.Type, "missing_overrides"), wantErr: "overrides_file: open testdata/no-such-overrides.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			err = sub.Unmarshal(cfg)
			if err == nil {
				err = confmap.Validate(cfg)
			}
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, confmap.Validate(createDefaultConfig()))
}
