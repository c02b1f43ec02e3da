package render

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"
)

// Signing algorithms a bundle can be signed with.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	HS256 = "HS256"
)

// Algorithms lists the supported signing algorithms.
var Algorithms = []string{RS256, ES256, HS256}

// SignaturesFile is the bundle's signature file, at its root.
const SignaturesFile = "." + bundle.SignaturesFile

// minSecretLen is RFC 7518's minimum HS256 key size: as long as the hash.
const minSecretLen = 32

// SigningOptions sign the bundle the way `opa sign` does: a JWT in
// /.signatures.json listing every file's SHA-256, verified by an OPA
// configured with the matching key.
type SigningOptions struct {
	// Key is a PEM private key (RSA for RS256, P-256 ECDSA for ES256; PKCS#1,
	// SEC 1 or PKCS#8) or, for HS256, the shared secret itself.
	Key []byte
	// Algorithm is RS256, ES256 or HS256.
	Algorithm string
	// KeyID names the key in the token ("kid" header and "keyid" claim);
	// OPA picks its verification key by it unless configured with one.
	KeyID string
	// FilesDir is where Files will be written. OPA names a directory
	// bundle's files by the path it is given (`opa run -b DIR` checks
	// "DIR/.manifest", with any leading "/" removed), so the unpacked
	// bundle's signature names them the same way, as `opa sign --bundle
	// DIR` would. Empty: relative to the bundle root, as in the tarball.
	FilesDir string
}

// Check parses the key for the algorithm, so that a bad key is reported when
// the exporter starts rather than at the first flush.
func (s *SigningOptions) Check() error {
	_, err := s.config()
	return err
}

// config returns OPA's signing configuration for s. A PEM key is reduced to
// its private key block, which OPA's signer requires first in its input
// (openssl writes EC PARAMETERS before the key).
func (s *SigningOptions) config() (*bundle.SigningConfig, error) {
	if s.KeyID == "" {
		return nil, errors.New("key id must not be empty")
	}
	switch s.Algorithm {
	case HS256:
		secret := string(s.Key)
		if len(secret) < minSecretLen {
			return nil, fmt.Errorf("an HS256 secret needs at least %d bytes, got %d", minSecretLen, len(secret))
		}
		// OPA's signer reads a secret that is not PEM and names a file as
		// that file; refuse a secret it would not use as given.
		if !strings.HasPrefix(secret, "-----BEGIN") {
			if _, err := os.Stat(secret); !errors.Is(err, fs.ErrNotExist) {
				return nil, errors.New("this HS256 secret cannot be used: OPA's signer would read it as a file path")
			}
		}
		return bundle.NewSigningConfig(secret, HS256, ""), nil
	case RS256, ES256:
		block, err := privateKeyBlock(s.Key)
		if err != nil {
			return nil, err
		}
		var key any
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the %s: %w", strings.ToLower(block.Type), err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if s.Algorithm != RS256 {
				return nil, fmt.Errorf("%s needs an ECDSA P-256 key, got an RSA key", s.Algorithm)
			}
		case *ecdsa.PrivateKey:
			if s.Algorithm != ES256 {
				return nil, fmt.Errorf("%s needs an RSA key, got an ECDSA key", s.Algorithm)
			}
			if k.Curve != elliptic.P256() {
				return nil, fmt.Errorf("ES256 needs a P-256 key, got %s", k.Curve.Params().Name)
			}
		default:
			return nil, fmt.Errorf("%s cannot sign with a %T", s.Algorithm, key)
		}
		return bundle.NewSigningConfig(string(pem.EncodeToMemory(block)), s.Algorithm, ""), nil
	default:
		return nil, fmt.Errorf("algorithm %q is not supported (want one of %s)", s.Algorithm, strings.Join(Algorithms, ", "))
	}
}

// privateKeyBlock returns the first private key block of a PEM file.
func privateKeyBlock(raw []byte) (*pem.Block, error) {
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		switch {
		case block == nil:
			return nil, errors.New("no PEM private key found (want RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)")
		case block.Headers["Proc-Type"] != "":
			return nil, errors.New("encrypted PEM keys are not supported")
		case block.Type == "RSA PRIVATE KEY" || block.Type == "EC PRIVATE KEY" || block.Type == "PRIVATE KEY":
			return block, nil
		case block.Type == "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted PEM keys are not supported")
		}
	}
}

// sign adds the signature to b, before it is written, and a signature for
// the unpacked files to files. The revision is already set and does not
// depend on the signature.
func sign(b *bundle.Bundle, files map[string][]byte, s *SigningOptions) error {
	sc, err := signTarball(b, s)
	if err != nil {
		return err
	}
	return signUnpacked(files, files, s, sc)
}

// signTarball gives b the signature its tarball carries.
func signTarball(b *bundle.Bundle, s *SigningOptions) (*bundle.SigningConfig, error) {
	sc, err := s.config()
	if err != nil {
		return nil, err
	}
	// The signature hashes b.Data as it is in memory; OPA hashes data.json
	// as it decodes it. Give the bundle the decoded form, so both agree by
	// construction.
	canonical, err := json.Marshal(b.Data)
	if err != nil {
		return nil, err
	}
	var data map[string]any
	if err := util.UnmarshalJSON(canonical, &data); err != nil {
		return nil, err
	}
	b.Data = data
	if err := b.GenerateSignature(sc, s.KeyID, false); err != nil {
		return nil, fmt.Errorf("signing the bundle: %w", err)
	}
	return sc, nil
}

// signUnpacked signs files as `opa sign --bundle DIR` would and puts the
// signature into into.
func signUnpacked(into, files map[string][]byte, s *SigningOptions, sc *bundle.SigningConfig) error {
	token, err := signFiles(files, s.FilesDir, sc, s.KeyID)
	if err != nil {
		return fmt.Errorf("signing the unpacked bundle: %w", err)
	}
	sigs, err := json.MarshalIndent(bundle.SignaturesConfig{Signatures: []string{token}}, "", "  ")
	if err != nil {
		return err
	}
	into[SignaturesFile] = append(sigs, '\n')
	return nil
}

// AddReview adds the files written beside the unpacked bundle. OPA verifies
// every file of a signed directory, so a signed bundle's unpacked signature
// is made again to cover them too; the tarball is unchanged.
func (b *Bundle) AddReview(files map[string][]byte, s *SigningOptions) error {
	b.Review = files
	if s == nil {
		return nil
	}
	sc, err := s.config()
	if err != nil {
		return err
	}
	all := maps.Clone(b.Files)
	maps.Copy(all, files)
	return signUnpacked(b.Files, all, s, sc)
}

// signFiles signs the unpacked bundle as `opa sign --bundle DIR` would: one
// entry per file, named as OPA names it when loading DIR, JSON hashed as OPA
// decodes it and anything else as bytes.
func signFiles(files map[string][]byte, dir string, sc *bundle.SigningConfig, keyID string) (string, error) {
	hasher, err := bundle.NewSignatureHasher(bundle.SHA256)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if name != SignaturesFile {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	infos := make([]bundle.FileInfo, 0, len(names))
	for _, name := range names {
		var value any = files[name]
		if bundle.IsStructuredDoc(name) {
			if err := util.Unmarshal(files[name], &value); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
		}
		sum, err := hasher.HashFile(value)
		if err != nil {
			return "", err
		}
		if dir != "" {
			name = strings.TrimPrefix(path.Join(filepath.ToSlash(dir), name), "/")
		}
		infos = append(infos, bundle.NewFile(name, hex.EncodeToString(sum), bundle.SHA256.String()))
	}
	return bundle.GenerateSignedToken(infos, sc, keyID)
}
