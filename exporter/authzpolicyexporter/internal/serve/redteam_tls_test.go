package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
)

func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// serve::tls is applied by Listen (plain HTTP is refused), and a long poll
// over HTTP/2 outlives write_timeout too.
func TestRedteamHoldsTLSAppliedAndH2LongPoll(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	s, addr := listen(t, 10, func(c *confighttp.ServerConfig) {
		tc := configtls.NewDefaultServerConfig()
		tc.CertFile, tc.KeyFile = certFile, keyFile
		c.TLS = configoptional.Some(tc)
		c.WriteTimeout = 500 * time.Millisecond
	})
	s.Set("bundle.tar.gz", "r1", []byte("full"))

	resp, err := http.Get("http://" + addr + "/bundle.tar.gz")
	if err == nil {
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP to the TLS server")
		resp.Body.Close()
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}} //nolint:gosec // test
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/bundle.tar.gz", nil)
	req.Header.Set("If-None-Match", `"r1"`)
	req.Header.Set("Prefer", "wait=2")
	start := time.Now()
	resp, err = client.Do(req)
	require.NoError(t, err, "a long poll over TLS beyond write_timeout")
	resp.Body.Close()
	t.Logf("protocol %s, status %d after %v", resp.Proto, resp.StatusCode, time.Since(start))
	assert.Equal(t, 304, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second)
}
