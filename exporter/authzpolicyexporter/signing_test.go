package authzpolicyexporter

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
)

// writeRSAKey writes a new RSA private key and returns its file and the
// public key PEM.
func writeRSAKey(t *testing.T) (keyFile, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	keyFile = filepath.Join(t.TempDir(), "signing.pem")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600))
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	return keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func verification(keyID, key, alg string) *bundle.VerificationConfig {
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{keyID: {Key: key, Algorithm: alg}}, keyID, "", nil)
}

// A signed exporter publishes a tarball and an unpacked directory that
// OPA, configured with the public key, verifies.
func TestSignedBundles(t *testing.T) {
	keyFile, public := writeRSAKey(t)
	unpacked := t.TempDir()
	e, dir := newTestExporter(t, func(c *Config) {
		c.Signing.KeyFile = keyFile
		c.Signing.KeyID = "authz"
		c.Output.UnpackedDir = unpacked
	})
	td, now := loadSpans(t, "pixie-http-spans.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))

	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	vc := verification("authz", public, "RS256")
	b, err := bundle.NewReader(bytes.NewReader(raw)).WithBundleVerificationConfig(vc).Read()
	require.NoError(t, err)
	assert.Equal(t, e.lastRevision, b.Manifest.Revision)

	assert.FileExists(t, filepath.Join(unpacked, ".signatures.json"))
	assert.FileExists(t, filepath.Join(unpacked, review.ChangesFile), "review files are signed too")
	d, err := loader.NewFileLoader().WithBundleVerificationConfig(vc).AsBundle(unpacked)
	require.NoError(t, err)
	assert.Equal(t, e.lastRevision, d.Manifest.Revision)

	// Another key does not verify it.
	_, other := writeRSAKey(t)
	_, err = bundle.NewReader(bytes.NewReader(raw)).WithBundleVerificationConfig(verification("authz", other, "RS256")).Read()
	require.Error(t, err)
}

// An HS256 secret is the file's content without its trailing newline.
func TestSigningSecretFile(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef-secret"
	keyFile := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(keyFile, []byte(secret+"\n"), 0o600))
	e, dir := newTestExporter(t, func(c *Config) {
		c.Signing = SigningConfig{KeyFile: keyFile, Algorithm: "HS256", KeyID: "shared"}
	})
	td, now := loadSpans(t, "semconv.json")
	e.now = func() time.Time { return now }
	require.NoError(t, e.consumeTraces(context.Background(), td))
	require.NoError(t, e.flush(context.Background()))
	raw, err := os.ReadFile(filepath.Join(dir, publish.BundleName))
	require.NoError(t, err)
	_, err = bundle.NewReader(bytes.NewReader(raw)).WithBundleVerificationConfig(verification("shared", secret, "HS256")).Read()
	require.NoError(t, err)
}

// A key that cannot be used stops the exporter at creation, naming the key.
func TestSigningKeyErrorsNameTheKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	ecFile := filepath.Join(t.TempDir(), "ec.pem")
	require.NoError(t, os.WriteFile(ecFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))
	short := filepath.Join(t.TempDir(), "short")
	require.NoError(t, os.WriteFile(short, []byte("secret\n"), 0o600))

	for _, tt := range []struct {
		name    string
		signing SigningConfig
		want    string
	}{
		{"missing file", SigningConfig{KeyFile: filepath.Join(t.TempDir(), "nope.pem"), Algorithm: "RS256", KeyID: "k"}, "signing::key_file: open"},
		{"EC key for RS256", SigningConfig{KeyFile: ecFile, Algorithm: "RS256", KeyID: "k"}, "RS256 needs an RSA key"},
		{"short secret", SigningConfig{KeyFile: short, Algorithm: "HS256", KeyID: "k"}, "at least 32 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Output.URL = "file://" + t.TempDir()
			cfg.Signing = tt.signing
			require.NoError(t, cfg.Validate())
			_, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
			require.ErrorContains(t, err, "signing::key_file")
			require.ErrorContains(t, err, tt.want)
		})
	}

	// The same key with the right algorithm works.
	cfg := createDefaultConfig().(*Config)
	cfg.Output.URL = "file://" + t.TempDir()
	cfg.Signing = SigningConfig{KeyFile: ecFile, Algorithm: "ES256", KeyID: "k"}
	_, err = newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
}
