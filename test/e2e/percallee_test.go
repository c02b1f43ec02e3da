//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The object output.per_callee writes for balances below s3://authz/prod.
const balancesKey = "prod/callees/example.org/ns/bank/sa/balances/bundle.tar.gz"

// objectRevision is the revision the exporter stamped on an object.
func objectRevision(t *testing.T, bucketURL, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := blob.OpenBucket(ctx, bucketURL)
	require.NoError(t, err)
	defer b.Close()
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		return ""
	}
	return attrs.Metadata["revision"]
}

// calleesLoaded are the callees the bundle OPA-Envoy holds knows.
func calleesLoaded(t *testing.T, rest string) []string {
	t.Helper()
	resp, err := http.Get("http://" + rest + "/v1/data/envoy/authz/callees")
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Result map[string]any `json:"result"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	ids := make([]string, 0, len(out.Result))
	for id := range out.Result {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// startPerCallee runs an S3 server on loopback and the distribution
// publishing to s3://authz/prod with output.per_callee and the given
// exporter settings. It returns the collector, the server's address, the
// bucket's URL for gocloud and the credentials' environment.
func startPerCallee(t *testing.T, exporter map[string]any) (c *collector, s3Addr, bucketURL string, awsEnv []string) {
	t.Helper()
	s3 := startS3(t)
	settings := map[string]any{"output": map[string]any{"url": "s3://authz/prod?" + s3.query, "per_callee": true}}
	maps.Copy(settings, exporter)
	return startConfigured(t, settings), s3.addr, "s3://authz?" + s3.query, s3.env
}

// Per-callee bundles end to end: the distribution publishes each callee's
// own bundle to an S3 server on loopback; OPA-Envoy configured with
// deploy/opa-envoy/per-callee.yaml, its namespace and service account in
// its environment as the downward API sets them, loads its callee's bundle
// alone, enforces it through ext_authz Check, and takes its next revision,
// which a change to another callee does not cause.
func TestE2EPerCalleeBundles(t *testing.T) {
	c, s3Addr, bucketURL, awsEnv := startPerCallee(t, nil)

	ledger := "spiffe://example.org/ns/bank/sa/ledger"
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}
	toLedger := opatest.Request{Destination: ledger, Source: payments, Method: "POST", Path: "/ledger/entries"}
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/12"}, access{ledger, payments, "POST", "/ledger/entries"})
	require.Eventually(t, func() bool { return objectRevision(t, bucketURL, balancesKey) != "" }, waitFor, 200*time.Millisecond,
		"balances' own bundle never reached the store")

	rest, grpcAddr := startOPAEnvoy(t, "per-callee.yaml",
		append(awsEnv, "TRUST_DOMAIN=example.org", "POD_NAMESPACE=bank", "POD_SERVICE_ACCOUNT=balances"),
		"services.s3.url=http://"+s3Addr+"/authz")
	require.Eventually(t, func() bool { return opaAllows(t, rest, seen) }, waitFor, 200*time.Millisecond,
		"OPA-Envoy never loaded balances' bundle")
	assert.Equal(t, []string{balances}, calleesLoaded(t, rest), "the sidecar holds its callee alone")

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, tt := range []struct {
		name string
		r    opatest.Request
		want codes.Code
	}{
		{"observed, XFCC", seen, codes.OK},
		{"observed, principals", opatest.Request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: balances, Method: "GET", Path: "/balances/7"}, codes.OK},
		{"other caller", opatest.Request{NoHeader: true, SourcePrincipal: payments, DestinationPrincipal: balances, Method: "GET", Path: "/balances/7"}, codes.PermissionDenied},
		{"other method", opatest.Request{Destination: balances, Source: frontend, Method: "DELETE", Path: "/balances/12"}, codes.PermissionDenied},
		{"longer path", opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12/admin"}, codes.PermissionDenied},
		{"another callee's access, named in the header", toLedger, codes.PermissionDenied},
	} {
		assert.Equal(t, tt.want, checkDecision(t, conn, tt.r), tt.name)
	}

	// A change to ledger alone leaves balances' object as it was.
	before := objectRevision(t, bucketURL, balancesKey)
	ledgerKey := "prod/callees/example.org/ns/bank/sa/ledger/bundle.tar.gz"
	ledgerBefore := objectRevision(t, bucketURL, ledgerKey)
	sendAccesses(t, c.otlp, access{ledger, payments, "GET", "/ledger/accounts"})
	require.Eventually(t, func() bool { return objectRevision(t, bucketURL, ledgerKey) != ledgerBefore }, waitFor, 200*time.Millisecond)
	assert.Equal(t, before, objectRevision(t, bucketURL, balancesKey), "balances' bundle is not written again")

	// A new route of balances reaches its sidecar with the next revision.
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/export"})
	export := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"}
	require.Eventually(t, func() bool { return checkDecision(t, conn, export) == codes.OK }, waitFor, 200*time.Millisecond,
		"OPA-Envoy never enforced balances' next revision")
	assert.NotEqual(t, before, objectRevision(t, bucketURL, balancesKey))
	assert.Equal(t, codes.OK, checkDecision(t, conn, seen))
}

// A callee the exporter has not seen yet: OPA-Envoy configured with
// deploy/opa-envoy/per-callee-discovery.yaml finds, through the discovery
// bundle, the unseen bundle, which audits the new callee (Envoy names it),
// so that its traffic passes and is learned; once the exporter published
// the callee's own bundle, the discovery bundle points the sidecar at it.
func TestE2EPerCalleeDiscovery(t *testing.T) {
	c, s3Addr, _, awsEnv := startPerCallee(t, map[string]any{"learning_period": "1h"})
	fresh := "spiffe://example.org/ns/bank/sa/fresh"
	sendAccesses(t, c.otlp, access{balances, frontend, "GET", "/balances/12"})

	rest, grpcAddr := startOPAEnvoy(t, "per-callee-discovery.yaml",
		append(awsEnv, "TRUST_DOMAIN=example.org", "POD_NAMESPACE=bank", "POD_SERVICE_ACCOUNT=fresh"),
		"services.s3.url=http://"+s3Addr+"/authz")
	require.Eventually(t, func() bool { return slices.Equal(calleesLoaded(t, rest), []string{balances}) }, waitFor, 200*time.Millisecond,
		"OPA-Envoy never loaded the unseen bundle")

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	first := opatest.Request{NoHeader: true, SourcePrincipal: frontend, DestinationPrincipal: fresh, Method: "GET", Path: "/fresh/1"}
	assert.Equal(t, codes.OK, checkDecision(t, conn, first), "a new callee is audited, so its access can be learned")
	assert.Equal(t, codes.PermissionDenied, checkDecision(t, conn, opatest.Request{Destination: fresh, Source: frontend, Method: "GET", Path: "/fresh/1"}),
		"only the callee Envoy names is unseen")

	// Its access is learned; its own bundle follows.
	sendAccesses(t, c.otlp, access{fresh, frontend, "GET", "/fresh/1"})
	require.Eventually(t, func() bool { return slices.Equal(calleesLoaded(t, rest), []string{fresh}) }, waitFor, 200*time.Millisecond,
		"OPA-Envoy never switched to the callee's own bundle")
	assert.Equal(t, codes.OK, checkDecision(t, conn, first))
}
