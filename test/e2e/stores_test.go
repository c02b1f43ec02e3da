//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// Test credentials for servers on loopback only.
const (
	s3Key    = "authz-e2e"
	s3Secret = "authz-e2e-secret-key"
	// Azurite's documented development account.
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// The object the exporter publishes, and its content type.
const (
	bundleKey   = "prod/bundle.tar.gz"
	bundleCType = "application/gzip"
)

// readObject reads the published bundle and its content type, through
// gocloud's URL for the bucket (the exporter's URL with ?prefix= instead of
// a path).
func readObject(t *testing.T, bucketURL string) (raw []byte, contentType string, err error) {
	t.Helper()
	withBucket(t, bucketURL, func(ctx context.Context, b *blob.Bucket) {
		var attrs *blob.Attributes
		if attrs, err = b.Attributes(ctx, bundleKey); err != nil {
			return
		}
		contentType = attrs.ContentType
		raw, err = b.ReadAll(ctx, bundleKey)
	})
	return raw, contentType, err
}

// withBucket opens the bucket for f, for five seconds at most.
func withBucket(t *testing.T, bucketURL string, f func(context.Context, *blob.Bucket)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := blob.OpenBucket(ctx, bucketURL)
	require.NoError(t, err)
	defer b.Close()
	f(ctx, b)
}

// waitForObject waits until the bundle in the store allows r.
func waitForObject(t *testing.T, bucketURL string, r opatest.Request) []byte {
	t.Helper()
	var raw []byte
	require.Eventually(t, func() bool {
		var err error
		var ctype string
		raw, ctype, err = readObject(t, bucketURL)
		return err == nil && ctype == bundleCType && opatest.Load(t, raw).Allowed(r)
	}, 60*time.Second, 250*time.Millisecond, "the store never held a bundle allowing %+v", r)
	return raw
}

// checkDecision calls OPA-Envoy's ext_authz v3 Check, as Envoy does.
func checkDecision(t *testing.T, conn *grpc.ClientConn, r opatest.Request) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest(r))
	require.NoError(t, err)
	return codes.Code(resp.GetStatus().GetCode())
}

// checkRequest is the ext_authz v3 request Envoy sends for r.
func checkRequest(r opatest.Request) *authv3.CheckRequest {
	headers := map[string]string{}
	if !r.NoHeader {
		headers["x-forwarded-client-cert"] = r.Header
		if r.Header == "" {
			headers["x-forwarded-client-cert"] = "By=" + r.Destination + ";Hash=0f1e2d;Subject=\"\";URI=" + r.Source
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: r.SourcePrincipal},
		Destination: &authv3.AttributeContext_Peer{Principal: r.DestinationPrincipal},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Path: r.Path, Headers: headers, Protocol: "HTTP/1.1", Host: "balances:8080",
		}},
	}}
}

// s3Server is versitygw on 127.0.0.1 with one bucket, authz, and the
// credentials' environment set for the test and what it starts; query is
// gocloud's S3 options for it.
type s3Server struct {
	t                 *testing.T
	addr, root, query string
	env               []string
	store             *process
}

func startS3(t *testing.T) *s3Server {
	t.Helper()
	s := &s3Server{t: t, addr: freePort(t), root: t.TempDir(),
		env: []string{"AWS_ACCESS_KEY_ID=" + s3Key, "AWS_SECRET_ACCESS_KEY=" + s3Secret, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}}
	s.query = "region=us-east-1&use_path_style=true&endpoint=" + url.QueryEscape("http://"+s.addr)
	s.start()
	require.NoError(t, os.Mkdir(filepath.Join(s.root, "authz"), 0o755)) // a posix bucket is a directory
	for _, kv := range s.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return s
}

// start runs the server, again after it was killed, on the same data.
func (s *s3Server) start() {
	s.t.Helper()
	s.store = startProcess(s.t, "versitygw", []string{"ROOT_ACCESS_KEY=" + s3Key, "ROOT_SECRET_KEY=" + s3Secret},
		binary(s.t, "OTELCOL_AUTHZ_VERSITYGW"), "--port", s.addr, "posix", s.root)
	waitTCP(s.t, s.addr)
}

// S3 end to end: the distribution publishes to an S3 server on loopback,
// OPA-Envoy configured with deploy/opa-envoy/s3.yaml (SigV4 signing) loads
// the bundle and answers ext_authz Check calls, a second publication reaches
// it, and a store that is down during flushes ends with the right bundle.
func TestE2ES3(t *testing.T) {
	s3 := startS3(t)
	store := s3.store
	s3Addr, root, awsEnv, query := s3.addr, s3.root, s3.env, s3.query
	outputURL, bucketURL := "s3://authz/prod?"+query, "s3://authz?"+query
	c := startCollector(t, outputURL, append(awsEnv, "AUTHZ_OUTPUT_TIMEOUT=2s", "AUTHZ_KEEP_REVISIONS=3")...)
	replay(t, c.otlp)
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}
	first := waitForObject(t, bucketURL, seen)

	rest, grpcAddr := startOPAEnvoy(t, "s3.yaml", awsEnv, "services.s3.url=http://"+s3Addr+"/authz")
	require.Eventually(t, func() bool { return opaAllows(t, rest, seen) }, 30*time.Second, 200*time.Millisecond,
		"OPA-Envoy never loaded the bundle from S3")

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, tt := range []struct {
		name string
		r    opatest.Request
		want codes.Code
	}{
		{"observed, XFCC", seen, codes.OK},
		{"observed, Istio header with query", opatest.Request{Header: "By=" + balances + ";Hash=ab;Subject=\"\";URI=" + frontend, Method: "GET", Path: "/balances/summary?x=1"}, codes.OK},
		{"observed, principals", opatest.Request{NoHeader: true, SourcePrincipal: payments, DestinationPrincipal: backend, Method: "POST", Path: "/ledger/entries"}, codes.OK},
		{"other caller", opatest.Request{Destination: balances, Source: payments, Method: "GET", Path: "/balances/12"}, codes.PermissionDenied},
		{"other method", opatest.Request{Destination: balances, Source: frontend, Method: "DELETE", Path: "/balances/12"}, codes.PermissionDenied},
		{"longer path", opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12/admin"}, codes.PermissionDenied},
		{"foreign trust domain", opatest.Request{Destination: balances, Source: "spiffe://evil.org/ns/bank/sa/frontend", Method: "GET", Path: "/balances/12"}, codes.PermissionDenied},
		{"spoofed header with principals", opatest.Request{Destination: backend, Source: payments, SourcePrincipal: frontend, DestinationPrincipal: backend, Method: "POST", Path: "/ledger/entries"}, codes.PermissionDenied},
		{"answered 403 when observed", opatest.Request{Destination: payments, Source: balances, Method: "POST", Path: "/payments"}, codes.PermissionDenied},
	} {
		assert.Equal(t, tt.want, checkDecision(t, conn, tt.r), tt.name)
	}

	// A second publication reaches OPA-Envoy on its next poll.
	replay(t, c.otlp, newAccessFile(t, "/balances/export"))
	export := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"}
	require.Eventually(t, func() bool { return checkDecision(t, conn, export) == codes.OK }, 30*time.Second, 200*time.Millisecond,
		"OPA-Envoy never enforced the second publication")

	// Old revisions are kept for rollback, no more than configured.
	revisions, err := filepath.Glob(filepath.Join(root, "authz", "prod", "revisions", "*.tar.gz"))
	require.NoError(t, err)
	assert.Len(t, revisions, 2, "one revision per publication so far")

	// The store goes down; learning goes on, flushes fail (logged once),
	// and when the store is back the next flush publishes the current state.
	store.kill()
	replay(t, c.otlp, newAccessFile(t, "/balances/history"))
	require.Eventually(t, func() bool { return strings.Contains(c.log.String(), "Publishing the bundle failed") }, 30*time.Second, 200*time.Millisecond)
	time.Sleep(3 * time.Second) // several failing flushes
	assert.Equal(t, 1, strings.Count(c.log.String(), "Publishing the bundle failed"), "an outage is logged once")
	s3.start()
	history := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/history"}
	last := waitForObject(t, bucketURL, history)
	assert.NotEqual(t, first, last)
	assert.True(t, opatest.Load(t, last).Allowed(export), "the bundle kept what was learned before the outage")
	require.Eventually(t, func() bool { return strings.Contains(c.log.String(), "Publishing recovered") }, 30*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool { return checkDecision(t, conn, history) == codes.OK }, 30*time.Second, 200*time.Millisecond)
}

// GCS with fake-gcs-server: publish and read back.
func TestE2EGCS(t *testing.T) {
	bin := binary(t, "OTELCOL_AUTHZ_FAKE_GCS")
	addr := freePort(t)
	host, port, _ := strings.Cut(addr, ":")
	startProcess(t, "fake-gcs-server", nil, bin, "-scheme", "http", "-host", host, "-port", port,
		"-backend", "memory", "-public-host", addr, "-log-level", "warn")
	waitTCP(t, addr)
	resp, err := http.Post("http://"+addr+"/storage/v1/b?project=e2e", "application/json", strings.NewReader(`{"name":"authz"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	t.Setenv("STORAGE_EMULATOR_HOST", addr)
	c := startCollector(t, "gs://authz/prod", "STORAGE_EMULATOR_HOST="+addr)
	replay(t, c.otlp)
	raw := waitForObject(t, "gs://authz", opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"})

	// What OPA's GCS service fetches: the object by escaped name, ?alt=media.
	got, err := http.Get("http://" + addr + "/storage/v1/b/authz/o/" + url.PathEscape(bundleKey) + "?alt=media")
	require.NoError(t, err)
	defer got.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(got.Body)
	require.NoError(t, err)
	assert.Equal(t, raw, body.Bytes())
}

// Azure Blob with Azurite: publish and read back.
func TestE2EAzure(t *testing.T) {
	bin := binary(t, "OTELCOL_AUTHZ_AZURITE")
	addr := freePort(t)
	host, port, _ := strings.Cut(addr, ":")
	startProcess(t, "azurite", nil, bin, "--blobHost", host, "--blobPort", port, "--location", t.TempDir(),
		"--loose", "--skipApiVersionCheck", "--silent")
	waitTCP(t, addr)

	cred, err := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	require.NoError(t, err)
	client, err := azblob.NewClientWithSharedKeyCredential(fmt.Sprintf("http://%s/%s", addr, azuriteAccount), cred, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.CreateContainer(ctx, "authz", nil)
	require.NoError(t, err)

	azEnv := []string{"AZURE_STORAGE_ACCOUNT=" + azuriteAccount, "AZURE_STORAGE_KEY=" + azuriteKey}
	for _, kv := range azEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	query := "protocol=http&localemu=true&domain=" + url.QueryEscape(addr)
	c := startCollector(t, "azblob://authz/prod?"+query, azEnv...)
	replay(t, c.otlp)
	raw := waitForObject(t, "azblob://authz?"+query, opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"})

	// The same object through Azure's own client.
	dl, err := client.DownloadStream(ctx, "authz", bundleKey, nil)
	require.NoError(t, err)
	var body bytes.Buffer
	_, err = body.ReadFrom(dl.Body)
	require.NoError(t, err)
	assert.Equal(t, raw, body.Bytes())
	assert.Equal(t, bundleCType, *dl.ContentType)
}
