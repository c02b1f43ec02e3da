//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// objectAt reads key from the bucket, nil when it is not there.
func objectAt(t *testing.T, bucketURL, key string) (raw []byte) {
	t.Helper()
	withBucket(t, bucketURL, func(ctx context.Context, b *blob.Bucket) { raw, _ = b.ReadAll(ctx, key) })
	return raw
}

// Three built collectors share one S3 bucket as replicas: each half of
// the traffic reaches another replica, and the bundle they publish is,
// byte for byte, the one a collector alone publishes from all of it;
// OPA-Envoy enforces it. The publishing replica is killed with SIGKILL:
// the next takes over, new traffic reaching a third replica is published,
// and the killed replica's access stays. Started again without its volume,
// it resumes from its shard.
func TestE2EReplicasShareOneBucket(t *testing.T) {
	s3 := startS3(t)
	bucketURL := "s3://authz?" + s3.query
	replica := func(id string) *collector {
		return startConfigured(t, map[string]any{"output": map[string]any{"url": "s3://authz/prod?" + s3.query, "replica_id": id}})
	}
	alone := startConfigured(t, map[string]any{"output": map[string]any{"url": "s3://authz/alone?" + s3.query}})
	r0, r1, r2 := replica("replica-0"), replica("replica-1"), replica("replica-2")

	var first, second []access
	for _, p := range []string{"/balances/1", "/balances/2", "/balances/3", "/balances/4", "/balances/5", "/balances/6"} {
		first = append(first, access{balances, frontend, "GET", p})
	}
	for _, p := range []string{"/balances/7", "/balances/8", "/balances/9", "/balances/10", "/balances/11", "/balances/summary"} {
		second = append(second, access{balances, frontend, "GET", p})
	}
	second = append(second, access{payments, frontend, "POST", "/payments"})
	sendAccesses(t, alone.otlp, append(append([]access{}, first...), second...)...)
	sendAccesses(t, r0.otlp, first...)
	sendAccesses(t, r1.otlp, second...)

	var want []byte
	require.Eventually(t, func() bool {
		want = objectAt(t, bucketURL, "alone/bundle.tar.gz")
		got := objectAt(t, bucketURL, "prod/bundle.tar.gz")
		return want != nil && bytes.Equal(want, got)
	}, waitFor, 200*time.Millisecond, "the replicas never published the bundle of a collector alone")
	p := opatest.Load(t, want)
	generalized := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/4242"}
	require.True(t, p.Allowed(generalized), "the halves together generalize as the whole does")

	rest, grpcAddr := startOPAEnvoy(t, "s3.yaml", s3.env, "services.s3.url=http://"+s3.addr+"/authz")
	require.Eventually(t, func() bool { return opaAllows(t, rest, generalized) }, waitFor, 200*time.Millisecond)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	assert.Equal(t, codes.OK, checkDecision(t, conn, generalized))
	assert.Equal(t, codes.PermissionDenied, checkDecision(t, conn, opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/1"}))

	// The publisher (the lowest id) is killed; after the timeout (three
	// flushes) replica-1 publishes what replica-2 learns next, with the
	// killed replica's access still merged from its shard.
	r0.kill()
	ledgerEntry := opatest.Request{Destination: "spiffe://example.org/ns/bank/sa/ledger", Source: payments, Method: "POST", Path: "/ledger/entries"}
	sendAccesses(t, r2.otlp, access{ledgerEntry.Destination, payments, "POST", "/ledger/entries"})
	require.Eventually(t, func() bool { return checkDecision(t, conn, ledgerEntry) == codes.OK }, waitFor, 200*time.Millisecond,
		"the new access was not published after the publisher died")
	assert.Equal(t, codes.OK, checkDecision(t, conn, opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/3"}),
		"the killed replica's access stays")

	// Started again with an empty volume, replica-0 resumes from its shard.
	again := replica("replica-0")
	require.Eventually(t, func() bool { return strings.Contains(again.log.String(), "Resumed from this replica's shard") }, waitFor, 100*time.Millisecond)
	assert.NotContains(t, again.log.String(), `"entries": 0`)
	assert.Equal(t, codes.OK, checkDecision(t, conn, ledgerEntry))
}

// The first tier (deploy/tier, its own distribution with contrib's
// loadbalancingexporter) spreads the spans over two replicas sharing a
// directory, each callee's to one: they publish the bundle of a collector
// alone. The tier's own config (deploy/tier/collector-config.yaml) is one
// its distribution accepts; the test runs it with a static list of
// replicas in place of the headless Service's DNS name.
func TestE2ETierSpreadsSpansOverReplicas(t *testing.T) {
	tier := binary(t, "OTELCOL_AUTHZ_TIER")
	out, err := exec.Command(tier, "validate", "--config", filepath.Join(repoRoot(t), "deploy", "tier", "collector-config.yaml")).CombinedOutput()
	require.NoError(t, err, "%s", out)

	shared := t.TempDir()
	alone := startConfigured(t, nil)
	replica := func(id string) *collector {
		return startConfigured(t, map[string]any{"output": map[string]any{"url": "file://" + shared, "replica_id": id}})
	}
	r0, r1 := replica("replica-0"), replica("replica-1")

	otlp, health := freePort(t), freePort(t)
	cfg, err := yaml.Marshal(map[string]any{
		"extensions": map[string]any{"health_check": map[string]any{"endpoint": health}},
		"receivers":  map[string]any{"otlp": map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": otlp}}}},
		"exporters": map[string]any{"loadbalancing": map[string]any{
			"routing_key": "service",
			"protocol":    map[string]any{"otlp": map[string]any{"tls": map[string]any{"insecure": true}}},
			"resolver":    map[string]any{"static": map[string]any{"hostnames": []string{r0.otlp, r1.otlp}}},
		}},
		"service": map[string]any{
			"extensions": []string{"health_check"},
			"telemetry":  map[string]any{"metrics": map[string]any{"level": "none"}},
			"pipelines":  map[string]any{"traces": map[string]any{"receivers": []string{"otlp"}, "exporters": []string{"loadbalancing"}}},
		},
	})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "tier.yaml")
	require.NoError(t, os.WriteFile(file, cfg, 0o600))
	startProcess(t, "tier", nil, tier, "--config", file)
	waitHTTP(t, "http://"+health+"/", http.StatusOK)

	var accesses []access
	for _, callee := range []string{balances, payments, "spiffe://example.org/ns/bank/sa/ledger", "spiffe://example.org/ns/bank/sa/cards"} {
		for i := range 12 {
			accesses = append(accesses, access{callee, frontend, "GET", fmt.Sprintf("/items/%d", i)})
		}
	}
	sendAccesses(t, alone.otlp, accesses...)
	sendAccesses(t, otlp, accesses...)
	require.Eventually(t, func() bool {
		want, _ := os.ReadFile(filepath.Join(alone.outDir, "bundle.tar.gz"))
		got, _ := os.ReadFile(filepath.Join(shared, "bundle.tar.gz"))
		return want != nil && bytes.Equal(want, got)
	}, waitFor, 200*time.Millisecond, "the replicas behind the tier never published the bundle of a collector alone")
}
