package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// Beside bundle.tar.gz, output.per_callee writes: each callee's own bundle
// below callees/, the bundle of callees that have none yet, and the
// discovery bundle that points each sidecar at one of them. No SPIFFE ID
// maps to a key outside callees/.
const (
	CalleesDir    = "callees"
	UnseenName    = "unseen.tar.gz"
	DiscoveryName = "discovery.tar.gz"
)

// ErrReservedName refuses a callee whose object could collide with
// another's; ErrNameTooLong one whose key no store could hold.
var (
	ErrReservedName = errors.New("a segment named " + BundleName + " is reserved")
	ErrNameTooLong  = fmt.Errorf("a segment longer than %d bytes or a key longer than %d bytes cannot be stored", maxSegment, maxKey)
)

// File systems cap a name at 255 bytes; S3, GCS and Azure cap a key at
// 1024, which leaves room for the output's prefix.
const (
	maxSegment = 255
	maxKey     = 900
)

// CalleeKey is where a callee's own bundle goes below the output:
// callees/<trust domain>/<path>/bundle.tar.gz. Below callees/ a directory
// holds segment directories and at most one bundle.tar.gz, so the objects
// of two valid SPIFFE IDs never collide, also on a file output, where one
// ID's object could otherwise stand where another's directory must be
// (spiffe://td/a and spiffe://td/a/bundle.tar.gz): an ID with a segment
// named bundle.tar.gz gets no object, nor does one too long to store.
func CalleeKey(id string) (string, error) {
	if err := spiffeid.Validate(id); err != nil {
		return "", err
	}
	segs := spiffeid.Segments(id)
	for _, s := range segs {
		if s == BundleName {
			return "", fmt.Errorf("callee %s: %w", id, ErrReservedName)
		}
		if len(s) > maxSegment {
			return "", fmt.Errorf("callee %.64s...: %w", id, ErrNameTooLong)
		}
	}
	key := CalleesDir + "/" + strings.Join(segs, "/") + "/" + BundleName
	if len(key) > maxKey {
		return "", fmt.Errorf("callee %.64s...: %w", id, ErrNameTooLong)
	}
	return key, nil
}

// verifyEvery is how many publications trust what was written before the
// objects in place are compared again, so that one removed or replaced
// out of band is written again.
const verifyEvery = 20

// CalleePublisher writes the objects of output.per_callee, each only when
// its revision changed. It remembers what it wrote (or found in place), so
// that a flush costs a request only for what changed, and every
// verifyEvery publications it checks the objects in place again.
type CalleePublisher struct {
	p       Publisher
	signing *render.SigningOptions
	written map[string]string // key -> revision in place
	// keys are the callees' objects in place, found at the first
	// publication or written since: an object whose callee the bundle no
	// longer knows is given the unseen bundle, which decides for it as the
	// full bundle does, never left with grants the full bundle dropped.
	keys  map[string]bool
	found bool
	calls int
	// discovery is the discovery bundle as it was last made, for ids.
	discovery *render.CalleeBundle
	ids       string
}

// NewCalleePublisher writes callees' bundles below p's output, signing
// the discovery bundle with s when set.
func NewCalleePublisher(p Publisher, s *render.SigningOptions) *CalleePublisher {
	return &CalleePublisher{p: p, signing: s, written: map[string]string{}, keys: map[string]bool{}}
}

// CalleeResult counts what one Publish did.
type CalleeResult struct {
	Written, Unchanged int
	// Refused are the callees with a reserved or too long name (see
	// CalleeKey).
	Refused []string
}

// Publish makes the objects mirror b: each callee's bundle whose revision
// differs from the one in place, the unseen bundle, and at the keys of
// callees b no longer knows the unseen bundle too; then the discovery
// bundle, which lists the callees whose current bundle is in place. A
// failure does not stop the others; what was not written is tried again
// at the next call.
func (c *CalleePublisher) Publish(ctx context.Context, b *render.Bundle) (CalleeResult, error) {
	var res CalleeResult
	if !c.found {
		keys, err := c.p.ListObjects(ctx, CalleesDir+"/")
		if err != nil {
			return res, fmt.Errorf("listing the callees' bundles in place: %w", err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/"+BundleName) {
				c.keys[k] = true
			}
		}
		c.found = true
	}
	if c.calls++; c.calls%verifyEvery == 0 {
		clear(c.written)
	}
	var errs []error
	current := make(map[string]bool, len(b.Callees))
	var listed []string
	for _, cb := range b.Callees {
		key, err := CalleeKey(cb.ID)
		if err != nil {
			res.Refused = append(res.Refused, cb.ID)
			continue
		}
		current[key] = true
		c.keys[key] = true
		changed, err := c.object(ctx, key, cb)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("bundle of %s: %w", cb.ID, err))
			continue
		case changed:
			res.Written++
		default:
			res.Unchanged++
		}
		listed = append(listed, cb.ID)
	}
	if b.Unseen != nil {
		if _, err := c.object(ctx, UnseenName, b.Unseen); err != nil {
			errs = append(errs, fmt.Errorf("unseen callees' bundle: %w", err))
		}
		for key := range c.keys {
			if current[key] {
				continue
			}
			if _, err := c.object(ctx, key, b.Unseen); err != nil {
				errs = append(errs, fmt.Errorf("%s of a callee no longer known: %w", key, err))
			}
		}
	}
	if ids := strings.Join(listed, " "); c.discovery == nil || ids != c.ids {
		d, err := render.Discovery(ctx, listed, c.signing)
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		c.discovery, c.ids = d, ids
	}
	if _, err := c.object(ctx, DiscoveryName, c.discovery); err != nil {
		errs = append(errs, fmt.Errorf("discovery bundle: %w", err))
	}
	return res, errors.Join(errs...)
}

// object writes b at key unless it is the revision written there last.
func (c *CalleePublisher) object(ctx context.Context, key string, b *render.CalleeBundle) (bool, error) {
	if c.written[key] == b.Revision {
		return false, nil
	}
	delete(c.written, key)
	changed, err := c.p.PublishObject(ctx, key, b.Revision, b.Tarball)
	if err != nil {
		return false, err
	}
	c.written[key] = b.Revision
	return changed, nil
}

// PublishObject writes a callee's bundle at key below the directory unless
// the file in place already has the same bytes.
func (d *Dir) PublishObject(_ context.Context, key, _ string, tarball []byte) (bool, error) {
	return writeIfChanged(filepath.Join(d.dir, filepath.FromSlash(key)), tarball)
}

// PublishObject uploads a callee's bundle at key unless the object in
// place already carries its revision.
func (p *Blob) PublishObject(ctx context.Context, key, revision string, tarball []byte) (bool, error) {
	if same, err := p.inPlace(ctx, key, revision); same || err != nil {
		return false, err
	}
	return true, p.bucket.WriteAll(ctx, key, tarball, writerOptions(revision, tarball))
}

// ListObjects lists the files below prefix in the directory, as keys.
func (d *Dir) ListObjects(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	root := filepath.Join(d.dir, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(d.dir, p)
		keys = append(keys, filepath.ToSlash(rel))
		return err
	})
	return keys, err
}

// ListObjects lists the objects below prefix.
func (p *Blob) ListObjects(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	it := p.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, obj.Key)
	}
}
