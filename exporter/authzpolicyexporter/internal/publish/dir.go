// Package publish writes rendered bundles where OPA can load them.
package publish

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// BundleName is the object every output holds.
const BundleName = "bundle.tar.gz"

// manifestName is the unpacked bundle's manifest, which carries the revision.
const manifestName = ".manifest"

// Publisher puts a rendered bundle where OPA fetches it.
type Publisher interface {
	// Publish reports false, and writes nothing, when the bundle in place
	// already has the same revision.
	Publish(ctx context.Context, b *render.Bundle) (changed bool, err error)
	// PublishObject writes another bundle, a callee's own, at key below
	// the output, and reports false when the one in place has revision.
	PublishObject(ctx context.Context, key, revision string, tarball []byte) (changed bool, err error)
	// ListObjects lists the keys below prefix.
	ListObjects(ctx context.Context, prefix string) ([]string, error)
	// ReadObject reads the object at key, nil when there is none, and
	// refuses one bigger than limit bytes (ErrTooLarge).
	ReadObject(ctx context.Context, key string, limit int64) ([]byte, error)
	// DeleteObject removes the object at key; one already gone is no error.
	DeleteObject(ctx context.Context, key string) error
	// Fetch returns the bundle in place, or nil if there is none.
	Fetch(ctx context.Context) ([]byte, error)
	Close() error
}

// Open returns the publisher for an output URL (file://, s3://, gs:// or
// azblob://), writing the unpacked bundle to unpackedDir too when set.
func Open(ctx context.Context, rawURL, unpackedDir string, keep int) (Publisher, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var p Publisher
	if u.Scheme == "file" {
		p = NewDir(u.Path)
	} else {
		b, err := OpenBlob(ctx, rawURL, keep)
		if err != nil {
			return nil, err
		}
		p = b
	}
	if unpackedDir != "" {
		p = WithReview(p, unpackedDir)
	}
	return p, nil
}

// Dir publishes to a local directory. Every file is replaced atomically, so
// OPA never reads a half-written bundle.
type Dir struct {
	dir string
}

// NewDir returns a publisher writing dir/bundle.tar.gz.
func NewDir(dir string) *Dir { return &Dir{dir: dir} }

// Publish writes b unless the file in place already has the same bytes.
func (d *Dir) Publish(_ context.Context, b *render.Bundle) (bool, error) {
	return writeIfChanged(filepath.Join(d.dir, BundleName), b.Tarball)
}

// Fetch reads the bundle in place.
func (d *Dir) Fetch(context.Context) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, BundleName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Close does nothing.
func (*Dir) Close() error { return nil }

// review also writes each published bundle unpacked, for review in version
// control.
type review struct {
	Publisher
	dir string
}

// WithReview makes p also write the bundle's files unpacked below dir. The
// bundle OPA enforces is published first: a failure to write the review
// copy is reported but never holds back enforcement.
func WithReview(p Publisher, dir string) Publisher { return &review{Publisher: p, dir: dir} }

func (r *review) Publish(ctx context.Context, b *render.Bundle) (bool, error) {
	changed, err := r.Publisher.Publish(ctx, b)
	if err != nil {
		return false, err
	}
	files := b.Files
	if len(b.Review) > 0 {
		files = maps.Clone(b.Files)
		maps.Copy(files, b.Review)
	}
	if err := writeUnpacked(r.dir, files); err != nil {
		return changed, &ReviewError{Err: err}
	}
	return changed, nil
}

// ReviewError reports that the bundle was published but its unpacked
// review copy could not be written.
type ReviewError struct{ Err error }

func (e *ReviewError) Error() string { return "unpacked bundle: " + e.Err.Error() }
func (e *ReviewError) Unwrap() error { return e.Err }

// writeUnpacked makes dir hold exactly the bundle's files: new and changed
// files are replaced one by one, then the files of destinations that are
// gone are removed. The manifest, which carries the revision, goes last.
func writeUnpacked(dir string, files map[string][]byte) error {
	grants := filepath.Join(dir, filepath.FromSlash(render.Root), "grants")
	stale, err := staleFiles(dir, grants, files)
	if err != nil {
		return err
	}
	// A stale file standing where a new file needs a directory (a
	// data.json of the previous layout, .../balances/data.json, where the
	// callee .../balances/data.json now has its own directory) goes first.
	dirs := map[string]bool{}
	for name := range files {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var blocking, rest []string
	for _, p := range stale {
		rel, _ := filepath.Rel(dir, p)
		if dirs[filepath.ToSlash(rel)] {
			blocking = append(blocking, p)
		} else {
			rest = append(rest, p)
		}
	}
	if err := removeStale(grants, blocking); err != nil {
		return err
	}

	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == manifestName {
			continue // written last, below
		}
		if _, err := writeIfChanged(filepath.Join(dir, filepath.FromSlash(name)), files[name]); err != nil {
			return err
		}
	}
	if err := removeStale(grants, rest); err != nil {
		return err
	}
	// Only now that the data files are exactly the bundle's does the
	// manifest name its revision.
	if manifest, ok := files[manifestName]; ok {
		if _, err := writeIfChanged(filepath.Join(dir, manifestName), manifest); err != nil {
			return err
		}
	}
	return nil
}

// staleFiles lists the files below grants that are the exporter's and not
// the bundle's: every data.json (the previous layout put one at each
// destination's own path) and everything below a @callers directory, which
// holds only the bundle's files (no SPIFFE ID has a segment with '@').
func staleFiles(dir, grants string, files map[string][]byte) ([]string, error) {
	var stale []string
	err := filepath.WalkDir(grants, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		ours := e.Name() == "data.json" || strings.Contains(rel, "/"+render.CallersDir+"/")
		if _, keep := files[rel]; ours && !keep {
			stale = append(stale, p)
		}
		return nil
	})
	return stale, err
}

// removeStale removes files, then the directories they leave empty, up to
// grants/.
func removeStale(grants string, stale []string) error {
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
		for parent := filepath.Dir(p); strings.HasPrefix(parent, grants+string(filepath.Separator)); parent = filepath.Dir(parent) {
			if os.Remove(parent) != nil {
				break
			}
		}
	}
	return nil
}

// writeIfChanged atomically replaces path with content unless it already
// holds exactly that.
func writeIfChanged(path string, content []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return false, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	// Make the rename itself durable.
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
	return true, nil
}
