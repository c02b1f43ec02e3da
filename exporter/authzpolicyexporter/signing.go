package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// SigningConfig signs every bundle, as `opa sign` does, so that an OPA
// configured with the matching key refuses a bundle changed after it left
// the exporter.
type SigningConfig struct {
	// KeyFile holds the signing key: a PEM private key for RS256 (RSA) and
	// ES256 (ECDSA P-256), or the shared secret for HS256 (at least 32
	// bytes; a trailing newline is ignored). Empty: bundles are not signed.
	// The file is read once, when the exporter is created.
	KeyFile string `mapstructure:"key_file"`
	// Algorithm is RS256, ES256 or HS256. RS256 and HS256 signatures are
	// deterministic; ES256 signatures change at every publication (the
	// revision does not).
	Algorithm string `mapstructure:"algorithm"`
	// KeyID names the key in the signature; OPA's verification key must
	// have this name (keys.<key_id>, bundles.<name>.signing.keyid).
	KeyID string `mapstructure:"key_id"`
}

// validate checks the fields; the key itself is loaded and checked when the
// exporter is created.
func (s SigningConfig) validate() (errs []error) {
	if !slices.Contains(render.Algorithms, s.Algorithm) {
		errs = append(errs, fmt.Errorf("signing::algorithm: %q is not supported (want one of %s)", s.Algorithm, strings.Join(render.Algorithms, ", ")))
	}
	if s.KeyFile != "" && s.KeyID == "" {
		errs = append(errs, errors.New("signing::key_id must not be empty when signing::key_file is set"))
	}
	return errs
}

// load reads and checks the key. It returns nil when signing is off.
// unpackedDir is where the unpacked bundle, and its own signature, go.
func (s SigningConfig) load(unpackedDir string) (*render.SigningOptions, error) {
	if s.KeyFile == "" {
		return nil, nil
	}
	key, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing::key_file: %w", err)
	}
	if s.Algorithm == render.HS256 {
		// A secret written with echo or an editor ends with a newline that
		// is not part of it.
		key = bytes.TrimSuffix(bytes.TrimSuffix(key, []byte("\n")), []byte("\r"))
	}
	opts := &render.SigningOptions{Key: key, Algorithm: s.Algorithm, KeyID: s.KeyID, FilesDir: unpackedDir}
	if err := opts.Check(); err != nil {
		return nil, fmt.Errorf("signing::key_file %s: %w", s.KeyFile, err)
	}
	return opts, nil
}
