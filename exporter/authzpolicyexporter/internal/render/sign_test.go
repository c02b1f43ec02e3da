package render

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
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// testKey is a signing key and what OPA verifies it with.
type testKey struct {
	alg     string
	private []byte // PEM, or the HS256 secret
	public  string // PEM, or the HS256 secret
}

func pemBlock(t testing.TB, typ string, der []byte, err error) []byte {
	t.Helper()
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func newRSAKey(t testing.TB) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return testKey{
		alg:     RS256,
		private: pemBlock(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), nil),
		public:  string(pemBlock(t, "PUBLIC KEY", pub, err)),
	}
}

func newECKey(t testing.TB, curve elliptic.Curve) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(k)
	priv := pemBlock(t, "EC PRIVATE KEY", der, err)
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return testKey{alg: ES256, private: priv, public: string(pemBlock(t, "PUBLIC KEY", pub, err))}
}

func newSecret(t testing.TB) testKey {
	t.Helper()
	secret := []byte(strings.Repeat("s3cr3t-", 6)) // 42 bytes
	return testKey{alg: HS256, private: secret, public: string(secret)}
}

func (k testKey) signing(keyID string) *SigningOptions {
	return &SigningOptions{Key: k.private, Algorithm: k.alg, KeyID: keyID}
}

func (k testKey) verification(keyID string) *bundle.VerificationConfig {
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
		keyID: {Key: k.public, Algorithm: k.alg},
	}, keyID, "", nil)
}

func renderSigned(t testing.TB, k testKey) *Bundle {
	t.Helper()
	b, err := Render(context.Background(), bank(), Options{CardinalityThreshold: 10, Signing: k.signing("authz")})
	require.NoError(t, err)
	return b
}

func readVerified(tarball []byte, vc *bundle.VerificationConfig) (bundle.Bundle, error) {
	return bundle.NewReader(bytes.NewReader(tarball)).WithBundleVerificationConfig(vc).Read()
}

// A bundle signed with each algorithm verifies with the matching key, is
// enforced as before, and refuses tampering and other keys.
func TestSignedBundleVerifies(t *testing.T) {
	unsigned := mustRender(t, bank())
	for _, k := range []testKey{newRSAKey(t), newECKey(t, elliptic.P256()), newSecret(t)} {
		t.Run(k.alg, func(t *testing.T) {
			b := renderSigned(t, k)
			assert.NotEqual(t, unsigned.Revision, b.Revision, "signing with a key is a new revision, so stores upload it")
			assert.Equal(t, b.Revision, renderSigned(t, k).Revision, "the revision does not depend on the signature")
			assert.ElementsMatch(t, unsigned.Rules, b.Rules)

			names, files := opatest.Untar(t, b.Tarball)
			assert.Contains(t, names, "/.signatures.json")

			loaded, err := readVerified(b.Tarball, k.verification("authz"))
			require.NoError(t, err)
			assert.Equal(t, b.Revision, loaded.Manifest.Revision)
			assert.Len(t, loaded.Signatures.Signatures, 1)

			// Still the same policy: an observed request is allowed.
			q, err := rego.New(rego.Query("data.envoy.authz.allow"), rego.ParsedBundle("authz", &loaded)).PrepareForEval(context.Background())
			require.NoError(t, err)
			rs, err := q.Eval(context.Background(), rego.EvalInput(request{Destination: balances, Source: frontend, Method: "GET", Path: "/balances/7"}.Input()))
			require.NoError(t, err)
			assert.Equal(t, true, rs[0].Expressions[0].Value)

			// OPA picks the key by the token's kid when not configured with one.
			vc := k.verification("authz")
			vc.KeyID = ""
			_, err = readVerified(b.Tarball, vc)
			require.NoError(t, err)

			// Data changed after signing: an extra grant.
			tampered := map[string][]byte{}
			for n, c := range files {
				tampered[n] = c
			}
			tampered["/data.json"] = bytes.Replace(files["/data.json"], []byte(`"/balances/summary":true`), []byte(`"/balances/summary":true,"/balances/admin":true`), 1)
			require.NotEqual(t, files["/data.json"], tampered["/data.json"])
			_, err = readVerified(opatest.Tar(t, names, tampered), k.verification("authz"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "data.json: digest mismatch")

			// Policy changed after signing: one byte.
			tampered["/data.json"] = files["/data.json"]
			policy := bytes.Clone(files["/"+policyPath])
			policy[bytes.Index(policy, []byte("default allow := false"))+len("default allow := ")] = 't'
			tampered["/"+policyPath] = policy
			_, err = readVerified(opatest.Tar(t, names, tampered), k.verification("authz"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "policy.rego: digest mismatch")

			// The signature removed: OPA configured with a key id refuses it.
			var unsignedNames []string
			for _, n := range names {
				if n != "/.signatures.json" {
					unsignedNames = append(unsignedNames, n)
				}
			}
			_, err = readVerified(opatest.Tar(t, unsignedNames, files), k.verification("authz"))
			require.ErrorContains(t, err, "missing .signatures.json")

			// Another key of the same kind.
			var other testKey
			switch k.alg {
			case RS256:
				other = newRSAKey(t)
			case ES256:
				other = newECKey(t, elliptic.P256())
			default:
				other = testKey{alg: HS256, public: strings.Repeat("another-secret-", 3)}
			}
			_, err = readVerified(b.Tarball, other.verification("authz"))
			require.ErrorContains(t, err, "failed to verify JWT signature")

			// A key id OPA does not know.
			_, err = readVerified(b.Tarball, bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
				"other": {Key: k.public, Algorithm: k.alg},
			}, "", "", nil))
			require.ErrorContains(t, err, "verification key corresponding to ID authz not found")
		})
	}
}

// The same aggregate and key give the same bytes for RS256 and HS256;
// ES256 signatures are randomized, but the revision stays the same, which
// is what decides whether a bundle is published again.
func TestSignedRenderIsDeterministic(t *testing.T) {
	for _, k := range []testKey{newRSAKey(t), newSecret(t)} {
		t.Run(k.alg, func(t *testing.T) {
			a, b := renderSigned(t, k), renderSigned(t, k)
			assert.Equal(t, a.Revision, b.Revision)
			assert.True(t, bytes.Equal(a.Tarball, b.Tarball), "tarball bytes differ")
			assert.Equal(t, a.Files, b.Files)
		})
	}
	t.Run(ES256, func(t *testing.T) {
		k := newECKey(t, elliptic.P256())
		a, b := renderSigned(t, k), renderSigned(t, k)
		assert.Equal(t, a.Revision, b.Revision)
		assert.NotEqual(t, a.Files[SignaturesFile], b.Files[SignaturesFile], "ES256 signatures are randomized")
		for _, x := range []*Bundle{a, b} {
			_, err := readVerified(x.Tarball, k.verification("authz"))
			require.NoError(t, err)
		}
	})
}

// The unpacked files carry their own signature, naming them as OPA does
// when given the directory's path (`opa run -b DIR`).
func TestSignedFilesVerifyAsDirectory(t *testing.T) {
	k := newRSAKey(t)
	dir := filepath.Join(t.TempDir(), "review")
	opts := k.signing("authz")
	opts.FilesDir = dir
	b, err := Render(context.Background(), bank(), Options{CardinalityThreshold: 10, Signing: opts})
	require.NoError(t, err)
	require.Contains(t, b.Files, SignaturesFile)
	assert.Equal(t, renderSigned(t, k).Tarball, b.Tarball, "FilesDir does not change the tarball")

	for name, content := range b.Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, content, 0o644))
	}
	load := func() (*bundle.Bundle, error) {
		return loader.NewFileLoader().WithBundleVerificationConfig(k.verification("authz")).AsBundle(dir)
	}
	loaded, err := load()
	require.NoError(t, err)
	assert.Equal(t, b.Revision, loaded.Manifest.Revision)

	// Only whitespace changed: JSON is hashed as decoded, so it still verifies.
	name := filepath.Join(dir, "envoy", "authz", "grants", "example.org", "ns", "bank", "sa", "balances", "@callers", "data.json")
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(name, bytes.ReplaceAll(raw, []byte("\n"), []byte("\n\n")), 0o644))
	_, err = load()
	require.NoError(t, err)

	// An extra grant in one destination's file is refused.
	require.NoError(t, os.WriteFile(name, bytes.Replace(raw, []byte(`"/balances/summary": true`), []byte(`"/balances/summary": true, "/balances/admin": true`), 1), 0o644))
	_, err = load()
	require.ErrorContains(t, err, "data.json: digest mismatch")

	// So is a file the signature does not list.
	require.NoError(t, os.WriteFile(name, raw, 0o644))
	extra := filepath.Join(dir, "envoy", "authz", "grants", "example.org", "ns", "bank", "sa", "admin", "@callers", "data.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(extra), 0o755))
	require.NoError(t, os.WriteFile(extra, []byte(`{}`), 0o644))
	_, err = load()
	require.ErrorContains(t, err, "not included in bundle signature")
}

func TestSigningKeyChecks(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t), newECKey(t, elliptic.P256())
	p384 := newECKey(t, elliptic.P384())

	// openssl ecparam -genkey writes EC PARAMETERS before the key; PKCS#8
	// keys work for both algorithms.
	withParams := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), ecKey.private...)
	require.NoError(t, (&SigningOptions{Key: withParams, Algorithm: ES256, KeyID: "k"}).Check())
	for _, k := range []testKey{rsaKey, ecKey} {
		block, _ := pem.Decode(k.private)
		var key any
		var err error
		if k.alg == RS256 {
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		} else {
			key, err = x509.ParseECPrivateKey(block.Bytes)
		}
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		pkcs8 := testKey{alg: k.alg, private: pemBlock(t, "PRIVATE KEY", der, err), public: k.public}
		require.NoError(t, pkcs8.signing("k").Check(), k.alg)
		_, err = readVerified(renderSigned(t, pkcs8).Tarball, pkcs8.verification("authz"))
		require.NoError(t, err, k.alg)
	}

	for _, tt := range []struct {
		name string
		opts SigningOptions
		want string
	}{
		{"unknown algorithm", SigningOptions{Key: rsaKey.private, Algorithm: "RS512", KeyID: "k"}, `algorithm "RS512" is not supported`},
		{"no key id", SigningOptions{Key: rsaKey.private, Algorithm: RS256}, "key id must not be empty"},
		{"RSA key for ES256", SigningOptions{Key: rsaKey.private, Algorithm: ES256, KeyID: "k"}, "ES256 needs an ECDSA P-256 key"},
		{"EC key for RS256", SigningOptions{Key: ecKey.private, Algorithm: RS256, KeyID: "k"}, "RS256 needs an RSA key"},
		{"P-384 key for ES256", SigningOptions{Key: p384.private, Algorithm: ES256, KeyID: "k"}, "ES256 needs a P-256 key, got P-384"},
		{"public key", SigningOptions{Key: []byte(rsaKey.public), Algorithm: RS256, KeyID: "k"}, "no PEM private key found"},
		{"not PEM", SigningOptions{Key: []byte("hello"), Algorithm: RS256, KeyID: "k"}, "no PEM private key found"},
		{"encrypted", SigningOptions{Key: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), Algorithm: RS256, KeyID: "k"}, "encrypted PEM keys are not supported"},
		{"corrupt", SigningOptions{Key: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2, 3}}), Algorithm: RS256, KeyID: "k"}, "parsing the rsa private key"},
		{"short secret", SigningOptions{Key: []byte("secret"), Algorithm: HS256, KeyID: "k"}, "at least 32 bytes"},
		{"secret naming a file", SigningOptions{Key: []byte(filepath.Join(t.TempDir(), strings.Repeat("x", 32))), Algorithm: HS256, KeyID: "k"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "" { // a secret that is the path of an existing file
				require.NoError(t, os.WriteFile(string(tt.opts.Key), []byte("x"), 0o600))
				tt.want = "read it as a file path"
			}
			err := tt.opts.Check()
			require.ErrorContains(t, err, tt.want)
			_, err = Render(context.Background(), bank(), Options{Signing: &tt.opts})
			require.ErrorContains(t, err, tt.want)
		})
	}
}
