//go:generate sh -c "go -C ../../internal/tools tool mdatagen $(pwd)/metadata.yaml"

// Package authzpolicyexporter learns service-to-service authorization from
// HTTP spans and publishes it as an OPA bundle for OPA-Envoy.
package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// NewFactory returns the factory for the authz_policy exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithTraces(createTraces, metadata.TracesStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		FlushInterval:        30 * time.Second,
		Window:               168 * time.Hour,
		MaxEntries:           100_000,
		MaxEntriesPerCaller:  1000,
		MaxEntriesPerSource:  20_000,
		MaxShrink:            0.2,
		MinObservations:      1,
		TimeBucket:           time.Hour,
		SkipStatusCodes:      []int{401, 403, 404, 405},
		SkipGRPCStatusCodes:  []int{7, 16, 12}, // PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED
		LearnUnspecifiedKind: true,
		// Where pipelines cut values: Pixie's gRPC header fields (100
		// bytes for gRPC-C, 128 for Go) and header maps (8 KiB), and the
		// round limits SDKs and processors are usually given.
		TruncationLimits: []int{100, 128, 1024, 2048, 4096, 8192, 16384},
		Output:           OutputConfig{URL: "file:///var/lib/otelcol-authz", Timeout: 30 * time.Second},
		Signing:          SigningConfig{Algorithm: render.RS256, KeyID: "default"},
		Serve:            defaultServeConfig(),
		Routes: RoutesConfig{
			CardinalityThreshold: 10,
			MaxPathLength:        2048,
			MaxSegments:          32,
		},
		Attributes: AttributesConfig{
			XFCC:           []string{"http.request.header.x-forwarded-client-cert"},
			RequestHeaders: []string{"http.req_headers"},
			XFCCBy:         []string{"http.xfcc_by"},
			XFCCURI:        []string{"http.xfcc_uri"},
			Method:         []string{"http.request.method", "http.method"},
			Path:           []string{"url.path", "http.target"},
			URL:            []string{"url.full", "http.url"},
			Route:          []string{"http.route"},
			StatusCode:     []string{"http.response.status_code", "http.status_code"},
			// grpc.status_code: Envoy's and OpenCensus' name; Connect's
			// error codes are gRPC's code names.
			GRPCStatusCode:  []string{"rpc.grpc.status_code", "rpc.response.status_code", "grpc.status_code", "rpc.connect_rpc.error_code"},
			ResponseHeaders: []string{"http.resp_headers"},
			RPCSystem:       []string{"rpc.system", "rpc.system.name"},
			ContentType:     []string{"http.request.header.content-type", "http.response.header.content-type"},
			Version:         []string{"service.version", "k8s.replicaset.name"},
		},
	}
}

// defaultServeConfig is off (no endpoint), with a collector HTTP server's
// defaults once an endpoint is set.
func defaultServeConfig() ServeConfig {
	return ServeConfig{ServerConfig: confighttp.NewDefaultServerConfig(), MaxWaiting: 1000}
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	e, err := newExporter(cfg.(*Config), set)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewTraces(ctx, set, cfg, e.consumeTraces,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		// Ingest is an in-memory update that cannot fail transiently:
		// no queue, no retry, no timeout.
		exporterhelper.WithQueue(configoptional.None[exporterhelper.QueueBatchConfig]()),
		exporterhelper.WithRetry(configretry.BackOffConfig{Enabled: false}),
		exporterhelper.WithTimeout(exporterhelper.TimeoutConfig{Timeout: 0}),
	)
}
