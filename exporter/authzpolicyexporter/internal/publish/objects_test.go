package publish

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/memblob"
)

// Objects other than bundles (the replicas' shards) are read back with a
// bound and deleted, alike on a directory and in a bucket (memblob is
// gocloud's in-memory driver, the Bucket API the stores implement).
func TestObjects(t *testing.T) {
	for name, p := range map[string]Publisher{
		"dir":  NewDir(t.TempDir()),
		"blob": newBlob(memblob.OpenBucket(nil), 0),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const key = "shards/replica-0.json"
			none, err := p.ReadObject(ctx, key, 100)
			require.NoError(t, err)
			assert.Nil(t, none)

			_, err = p.PublishObject(ctx, key, "r1", []byte("0123456789"))
			require.NoError(t, err)
			got, err := p.ReadObject(ctx, key, 10)
			require.NoError(t, err)
			assert.Equal(t, "0123456789", string(got))
			_, err = p.ReadObject(ctx, key, 9)
			require.ErrorIs(t, err, ErrTooLarge)

			keys, err := p.ListObjects(ctx, "shards/")
			require.NoError(t, err)
			assert.Equal(t, []string{key}, keys)
			require.NoError(t, p.DeleteObject(ctx, key))
			require.NoError(t, p.DeleteObject(ctx, key), "deleting what is gone is no error")
			none, err = p.ReadObject(ctx, key, 100)
			require.NoError(t, err)
			assert.Nil(t, none)
			require.NoError(t, p.Close())
		})
	}
}
