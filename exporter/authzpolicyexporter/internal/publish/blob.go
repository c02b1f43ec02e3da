package publish

import (
	"context"
	"crypto/md5" //nolint:gosec // Content-MD5 is the stores' integrity check, not a security measure.
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/s3blob"    // s3://
	"gocloud.dev/gcerrors"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

const (
	// ContentType is what OPA's bundle downloader expects.
	ContentType = "application/gzip"
	// revisionKey is the object metadata that carries the bundle revision,
	// so an unchanged bundle is recognized without downloading it.
	revisionKey = "revision"
	// revisionsDir holds older bundles for rollback.
	revisionsDir = "revisions/"
)

// Blob publishes to an object store through gocloud.dev/blob: S3 and
// S3-compatible stores, Google Cloud Storage and Azure Blob Storage.
// Credentials come from each cloud's standard chain (environment, shared
// configuration, workload identity), never from the URL.
type Blob struct {
	bucket *blob.Bucket
	keep   int
}

// OpenBlob opens an output URL of the form scheme://BUCKET/PREFIX?options,
// where the options are gocloud's for that scheme (for S3: region,
// endpoint, use_path_style). keep is how many revisions to keep under
// PREFIX/revisions/ for rollback; 0 keeps none.
func OpenBlob(ctx context.Context, rawURL string, keep int) (*Blob, error) {
	u, err := BucketURL(rawURL)
	if err != nil {
		return nil, err
	}
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open %s bucket: %w", strings.SplitN(u, ":", 2)[0], err)
	}
	return newBlob(b, keep), nil
}

func newBlob(b *blob.Bucket, keep int) *Blob { return &Blob{bucket: b, keep: keep} }

// BucketURL turns scheme://BUCKET/PREFIX?options into the URL gocloud
// opens, with the prefix as its "prefix" option.
func BucketURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "s3", "gs", "azblob":
	default:
		return "", fmt.Errorf("scheme %q is not an object store (want s3, gs or azblob)", u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%s URL needs a bucket: %s://BUCKET/PREFIX", u.Scheme, u.Scheme)
	}
	q := u.Query()
	if q.Has("prefix") {
		return "", errors.New("give the prefix as the URL path, not as ?prefix=")
	}
	if prefix := strings.Trim(u.Path, "/"); prefix != "" {
		q.Set("prefix", prefix+"/")
	}
	u.Path, u.RawPath, u.RawQuery = "", "", q.Encode()
	return u.String(), nil
}

// Publish uploads b as bundle.tar.gz unless the object in place already
// carries its revision, so OPA's conditional polling keeps getting 304s.
func (p *Blob) Publish(ctx context.Context, b *render.Bundle) (bool, error) {
	if same, err := p.inPlace(ctx, BundleName, b.Revision); same || err != nil {
		return false, err
	}
	opts := writerOptions(b.Revision, b.Tarball)
	if p.keep > 0 {
		if err := p.bucket.WriteAll(ctx, revisionsDir+b.Revision+".tar.gz", b.Tarball, opts); err != nil {
			return false, err
		}
	}
	if err := p.bucket.WriteAll(ctx, BundleName, b.Tarball, opts); err != nil {
		return false, err
	}
	if p.keep > 0 {
		if err := p.prune(ctx); err != nil {
			return true, fmt.Errorf("pruning old revisions: %w", err)
		}
	}
	return true, nil
}

// inPlace reports whether the object at key carries revision.
func (p *Blob) inPlace(ctx context.Context, key, revision string) (bool, error) {
	attrs, err := p.bucket.Attributes(ctx, key)
	switch {
	case err == nil:
		return attrs.Metadata[revisionKey] == revision, nil
	case gcerrors.Code(err) == gcerrors.NotFound:
		return false, nil
	default:
		return false, err
	}
}

// writerOptions are an uploaded bundle's: what OPA expects as its content
// type, the stores' integrity check, and its revision as metadata.
func writerOptions(revision string, tarball []byte) *blob.WriterOptions {
	sum := md5.Sum(tarball) //nolint:gosec // see import
	return &blob.WriterOptions{
		ContentType: ContentType,
		ContentMD5:  sum[:],
		Metadata:    map[string]string{revisionKey: revision},
	}
}

// prune keeps the newest p.keep revisions.
func (p *Blob) prune(ctx context.Context) error {
	var objs []*blob.ListObject
	it := p.bucket.List(&blob.ListOptions{Prefix: revisionsDir})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if !obj.IsDir {
			objs = append(objs, obj)
		}
	}
	slices.SortFunc(objs, func(a, b *blob.ListObject) int {
		if c := b.ModTime.Compare(a.ModTime); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, obj := range objs[min(p.keep, len(objs)):] {
		if err := p.DeleteObject(ctx, obj.Key); err != nil {
			return err
		}
	}
	return nil
}

// Fetch reads the bundle in place.
func (p *Blob) Fetch(ctx context.Context) ([]byte, error) {
	b, err := p.bucket.ReadAll(ctx, BundleName)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	return b, err
}

// Close releases the bucket.
func (p *Blob) Close() error { return p.bucket.Close() }
