package authzctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/loader"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// maxBundle bounds what is read of a bundle from anywhere.
const maxBundle = 512 << 20

// fetchTimeout bounds fetching a bundle from a store or a server.
const fetchTimeout = 60 * time.Second

// loaded is a bundle as OPA reads it, and what the exporter's reader makes
// of its grants and modes.
type loaded struct {
	name      string
	bundle    *bundle.Bundle
	published render.Published
}

// revision is the bundle's manifest revision, "" when it has none.
func (l *loaded) revision() string { return l.bundle.Manifest.Revision }

// load reads the bundle src names: a file, a directory, an output URL or
// the collector's bundle server.
func (e *env) load(src string) (*loaded, error) {
	if src == "" {
		return nil, errors.New("no bundle given")
	}
	vc, err := e.verification()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, fetchTimeout)
	defer cancel()
	var b *bundle.Bundle
	var tarball []byte
	switch u, err := url.Parse(src); {
	case err == nil && (u.Scheme == "http" || u.Scheme == "https"):
		tarball, err = fetchHTTP(ctx, u)
		if err != nil {
			return nil, err
		}
	case err == nil && u.Scheme != "" && len(u.Scheme) > 1:
		// An output URL; a one-letter scheme is a Windows drive.
		tarball, err = fetchOutput(ctx, src)
		if err != nil {
			return nil, err
		}
	default:
		fi, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			inner := filepath.Join(src, publish.BundleName)
			if _, err := os.Stat(inner); err == nil {
				src = inner
			} else if errors.Is(err, fs.ErrNotExist) {
				// An unpacked bundle, read as `opa run -b DIR` reads it:
				// its files are signed by the path as given.
				fl := loader.NewFileLoader().WithSkipBundleVerification(vc == nil).WithBundleVerificationConfig(vc)
				if b, err = fl.AsBundle(src); err != nil {
					return nil, fmt.Errorf("%s: %w", src, err)
				}
			} else {
				return nil, err
			}
		}
		if b == nil {
			if tarball, err = readFile(src, maxBundle); err != nil {
				return nil, err
			}
		}
	}
	if b == nil {
		r := bundle.NewReader(bytes.NewReader(tarball)).WithSkipBundleVerification(vc == nil).WithBundleVerificationConfig(vc)
		read, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: not a bundle: %w", src, err)
		}
		b = &read
	}
	// The grants are read from what OPA made of the bundle, written again
	// as one data.json: OPA merges every data.json of a tarball, the
	// exporter's reader reads the root one, and a grant in a nested file
	// must not be enforced and unseen.
	var canonical bytes.Buffer
	if err := bundle.NewWriter(&canonical).Write(*b); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	p, err := render.Read(canonical.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: not an authz_policy bundle: %w", src, err)
	}
	return &loaded{name: src, bundle: b, published: p}, nil
}

// verification is the signature check --verification-key asks for, nil
// for none: then signed and unsigned bundles are read alike.
func (e *env) verification() (*bundle.VerificationConfig, error) {
	if e.verificationKey == "" {
		return nil, nil
	}
	key, err := os.ReadFile(e.verificationKey)
	if err != nil {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	k := string(key)
	if e.verificationAlgorithm == "HS256" {
		k = strings.TrimSuffix(strings.TrimSuffix(k, "\n"), "\r")
	}
	cfg := &keys.Config{Key: k, Algorithm: e.verificationAlgorithm}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{e.verificationKeyID: cfg}, e.verificationKeyID, "", nil), nil
}

// readFile reads at most limit bytes of file name.
func readFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return publish.ReadLimited(f, name, limit)
}

// fetchOutput reads bundle.tar.gz of an output URL, with the store's own
// credentials and the URL's query options.
func fetchOutput(ctx context.Context, rawURL string) ([]byte, error) {
	p, err := publish.Open(ctx, rawURL, "", 0)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	b, err := p.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(rawURL), err)
	}
	if b == nil {
		return nil, fmt.Errorf("%s: no %s", redact(rawURL), publish.BundleName)
	}
	return b, nil
}

// fetchHTTP GETs a bundle from a bundle server: the URL itself when it
// names a .tar.gz, else bundle.tar.gz below it.
func fetchHTTP(ctx context.Context, u *url.URL) ([]byte, error) {
	if !strings.HasSuffix(u.Path, ".tar.gz") {
		u = u.JoinPath(publish.BundleName)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact(u.String()), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redact(u.String()), resp.Status)
	}
	return publish.ReadLimited(resp.Body, redact(u.String()), maxBundle)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact drops a URL's user information and query, which may hold
// credentials, from messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the URL"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
