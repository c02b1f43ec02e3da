//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The collector signs its bundles with an RSA key; OPA-Envoy, configured
// with deploy/opa-envoy/http-signed.yaml and the public key, enforces them,
// refuses a copy whose data was changed after signing and one without a
// signature, keeps enforcing the last bundle that verified, and takes the
// next signed publication.
func TestE2ESignedBundle(t *testing.T) {
	keyFile, publicFile := writeSigningKey(t)
	c := startCollector(t, "", "AUTHZ_SIGNING_KEY_FILE="+keyFile, "AUTHZ_SIGNING_KEY_ID=authz")

	// The bundle server serves the exporter's directory, unless a
	// replacement is set.
	var replacement atomic.Pointer[[]byte]
	files := http.FileServer(http.Dir(c.outDir))
	bundles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := replacement.Load(); b != nil && r.URL.Path == "/bundle.tar.gz" {
			w.Header().Set("Content-Type", "application/gzip")
			_, _ = w.Write(*b)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer bundles.Close()
	addr, opa := startSignedOPAEnvoy(t, publicFile, "services.authz.url="+bundles.URL)

	replay(t, c.otlp)
	seen := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/12"}
	require.Eventually(t, func() bool { return opaAllows(t, addr, seen) }, 30*time.Second, 200*time.Millisecond,
		"OPA never allowed an observed request from the signed bundle")
	assert.Contains(t, c.log.String(), "Bundles will be signed")
	signed, err := os.ReadFile(filepath.Join(c.outDir, "bundle.tar.gz"))
	require.NoError(t, err)
	names, content := opatest.Untar(t, signed)
	require.Contains(t, names, "/.signatures.json")

	// A copy that grants frontend GET /balances/admin, the signature kept.
	admin := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/admin"}
	require.False(t, opaAllows(t, addr, admin))
	tampered := map[string][]byte{}
	for n, b := range content {
		tampered[n] = b
	}
	tampered["/data.json"] = addGrant(t, content["/data.json"], balances, frontend, "GET", "/balances/admin")
	forged := opatest.Tar(t, names, tampered)
	// Without verification the forgery would grant it.
	assert.True(t, allowsUnverified(t, forged, admin), "the tampered bundle does not grant the extra access")

	replacement.Store(&forged)
	require.Eventually(t, func() bool { return strings.Contains(opa.log.String(), "data.json: digest mismatch") }, 30*time.Second, 200*time.Millisecond,
		"OPA never reported the tampered bundle")
	assert.False(t, opaAllows(t, addr, admin), "OPA enforced a tampered bundle")
	assert.True(t, opaAllows(t, addr, seen), "OPA dropped the last verified bundle")

	// The same bundle without its signature.
	var unsignedNames []string
	for _, n := range names {
		if n != "/.signatures.json" {
			unsignedNames = append(unsignedNames, n)
		}
	}
	unsigned := opatest.Tar(t, unsignedNames, tampered)
	replacement.Store(&unsigned)
	require.Eventually(t, func() bool { return strings.Contains(opa.log.String(), "bundle missing .signatures.json file") }, 30*time.Second, 200*time.Millisecond,
		"OPA never reported the unsigned bundle")
	assert.False(t, opaAllows(t, addr, admin), "OPA enforced an unsigned bundle")
	assert.True(t, opaAllows(t, addr, seen), "OPA dropped the last verified bundle")

	// Back to the exporter's bundles: the next signed publication is
	// enforced.
	replacement.Store(nil)
	replay(t, c.otlp, newAccessFile(t, "/balances/export"))
	export := opatest.Request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/export"}
	require.Eventually(t, func() bool { return opaAllows(t, addr, export) }, 30*time.Second, 200*time.Millisecond,
		"OPA never picked up the next signed publication")
	assert.False(t, opaAllows(t, addr, admin))
}

// writeSigningKey writes a new RSA private key and its public key as PEM
// files.
func writeSigningKey(t *testing.T) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	dir := t.TempDir()
	private, public = filepath.Join(dir, "signing.pem"), filepath.Join(dir, "signing.pub")
	require.NoError(t, os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600))
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return private, public
}

// startSignedOPAEnvoy runs opa-envoy-plugin with deploy/opa-envoy/http-signed.yaml
// and the public key, overriding addresses and the polling delay like
// startOPAEnvoy, and with console status reports. It returns the REST
// address and the process, whose log shows refused bundles.
func startSignedOPAEnvoy(t *testing.T, publicKeyFile string, set ...string) (string, *process) {
	t.Helper()
	bin := binary(t, "OTELCOL_AUTHZ_OPA_ENVOY")
	rest := freePort(t)
	args := []string{"run", "--server", "--addr", rest,
		"--config-file", filepath.Join(repoRoot(t), "deploy", "opa-envoy", "http-signed.yaml"),
		// A PEM key spans lines, which --set cannot carry.
		"--set-file", "keys.authz.key=" + publicKeyFile,
		"--set", "plugins.envoy_ext_authz_grpc.addr=" + freePort(t),
		"--set", "bundles.authz.polling.min_delay_seconds=1",
		"--set", "bundles.authz.polling.max_delay_seconds=2",
		// Bundle errors reach the log through the status plugin.
		"--set", "status.console=true"}
	for _, kv := range set {
		args = append(args, "--set", kv)
	}
	p := startProcess(t, "opa-envoy-plugin", nil, bin, args...)
	waitHTTP(t, "http://"+rest+"/health", http.StatusOK)
	return rest, p
}

// addGrant adds a literal route to data.json, where the policy looks for
// it: grants[<trust domain>][<path segments>...]["@callers"][caller][method].paths.
func addGrant(t *testing.T, data []byte, callee, caller, method, route string) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	node := doc["envoy"].(map[string]any)["authz"].(map[string]any)["grants"].(map[string]any)
	for _, seg := range strings.Split(strings.TrimPrefix(callee, "spiffe://"), "/") {
		node = node[seg].(map[string]any)
	}
	m := node["@callers"].(map[string]any)[caller].(map[string]any)[method].(map[string]any)
	paths, _ := m["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
		m["paths"] = paths
	}
	paths[route] = true
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return out
}

// allowsUnverified evaluates r against a bundle read without checking its
// signature.
func allowsUnverified(t *testing.T, tarball []byte, r opatest.Request) bool {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).WithSkipBundleVerification(true).Read()
	require.NoError(t, err)
	q, err := rego.New(rego.Query(opatest.Query), rego.ParsedBundle("authz", &b)).PrepareForEval(context.Background())
	require.NoError(t, err)
	rs, err := q.Eval(context.Background(), rego.EvalInput(r.Input()))
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0].Expressions[0].Value == true
}
