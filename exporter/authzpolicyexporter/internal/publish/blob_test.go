package publish

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

func TestBucketURL(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "s3://bundles/prod/authz?region=eu-west-1", want: "s3://bundles?prefix=prod%2Fauthz%2F&region=eu-west-1"},
		{in: "s3://bundles?endpoint=http%3A%2F%2F127.0.0.1%3A9000&use_path_style=true", want: "s3://bundles?endpoint=http%3A%2F%2F127.0.0.1%3A9000&use_path_style=true"},
		{in: "gs://bundles/", want: "gs://bundles"},
		{in: "azblob://container/a/b/?protocol=http", want: "azblob://container?prefix=a%2Fb%2F&protocol=http"},
		{in: "gs:///prod", err: "needs a bucket"},
		{in: "s3://bundles?prefix=x/", err: "as the URL path"},
		{in: "file:///tmp", err: "not an object store"},
		{in: "ftp://x/y", err: "not an object store"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := BucketURL(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func fakeRevision(i int) *render.Bundle {
	return &render.Bundle{Revision: fmt.Sprintf("rev%02d", i), Tarball: []byte(fmt.Sprintf("bundle %d", i))}
}

// memblob is gocloud's in-memory driver: the same Bucket API the S3, GCS
// and Azure drivers implement; the end-to-end tests use the real servers.
func TestBlobPublish(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	p := newBlob(bucket, 0)
	defer p.Close()

	none, err := p.Fetch(ctx)
	require.NoError(t, err)
	assert.Nil(t, none)
	changed, err := p.Publish(ctx, fakeRevision(1))
	require.NoError(t, err)
	assert.True(t, changed)
	fetched, err := p.Fetch(ctx)
	require.NoError(t, err)
	assert.Equal(t, "bundle 1", string(fetched))
	attrs, err := bucket.Attributes(ctx, BundleName)
	require.NoError(t, err)
	assert.Equal(t, ContentType, attrs.ContentType)
	assert.Equal(t, "rev01", attrs.Metadata[revisionKey])
	got, err := bucket.ReadAll(ctx, BundleName)
	require.NoError(t, err)
	assert.Equal(t, "bundle 1", string(got))

	// Same revision: nothing is uploaded, the object keeps its ETag.
	changed, err = p.Publish(ctx, fakeRevision(1))
	require.NoError(t, err)
	assert.False(t, changed)
	again, err := bucket.Attributes(ctx, BundleName)
	require.NoError(t, err)
	assert.Equal(t, attrs.ETag, again.ETag)
	assert.Equal(t, attrs.ModTime, again.ModTime)

	changed, err = p.Publish(ctx, fakeRevision(2))
	require.NoError(t, err)
	assert.True(t, changed)
	exists, err := bucket.Exists(ctx, revisionsDir+"rev02.tar.gz")
	require.NoError(t, err)
	assert.False(t, exists, "revisions are kept only on request")
}

func TestBlobKeepsRevisions(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	p := newBlob(bucket, 2)
	for i := 1; i <= 5; i++ {
		_, err := p.Publish(ctx, fakeRevision(i))
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond) // distinct modification times
	}
	var keys []string
	it := bucket.List(&blob.ListOptions{Prefix: revisionsDir})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			break
		}
		keys = append(keys, obj.Key)
	}
	assert.Equal(t, []string{revisionsDir + "rev04.tar.gz", revisionsDir + "rev05.tar.gz"}, keys)
	got, err := bucket.ReadAll(ctx, revisionsDir+"rev05.tar.gz")
	require.NoError(t, err)
	assert.Equal(t, "bundle 5", string(got))
}
