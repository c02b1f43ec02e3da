package publish

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/memblob"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

func TestCalleeKey(t *testing.T) {
	tests := []struct {
		id, want, err string
	}{
		{id: "spiffe://example.org/ns/bank/sa/balances", want: "callees/example.org/ns/bank/sa/balances/bundle.tar.gz"},
		{id: "spiffe://example.org", want: "callees/example.org/bundle.tar.gz"},
		{id: "spiffe://example.org/a/.bundle.tar.gz.tmp-1", want: "callees/example.org/a/.bundle.tar.gz.tmp-1/bundle.tar.gz"},
		{id: "spiffe://example.org/a/bundle.tar.gz", err: "reserved"},
		{id: "spiffe://bundle.tar.gz/a", err: "reserved"},
		{id: "spiffe://example.org/bundle.tar.gz/a", err: "reserved"},
		{id: "spiffe://example.org/a/../b", err: "dot segment"},
		{id: "spiffe://Example.org/a", err: "trust domain"},
		{id: "example.org/a", err: "spiffe://"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := CalleeKey(tt.id)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := CalleeKey("spiffe://example.org/bundle.tar.gz")
	assert.ErrorIs(t, err, ErrReservedName)
}

// Two callees' objects never collide: their keys differ, and neither is
// below the other as a directory, which a file output could not hold.
func FuzzCalleeKey(f *testing.F) {
	f.Add("spiffe://td/a", "spiffe://td/a/bundle.tar.gz")
	f.Add("spiffe://td/a", "spiffe://td/a/b")
	f.Add("spiffe://td/bundle.tar.gz", "spiffe://td")
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, errA := CalleeKey(a)
		kb, errB := CalleeKey(b)
		if errA != nil || errB != nil || a == b {
			return
		}
		if ka == kb || strings.HasPrefix(kb, ka+"/") || strings.HasPrefix(ka, kb+"/") {
			t.Fatalf("%s and %s collide: %s, %s", a, b, ka, kb)
		}
		if !strings.HasPrefix(ka, CalleesDir+"/") || strings.Contains(ka, "..") || strings.Contains(ka, "//") {
			t.Fatalf("%s: key %s leaves %s/", a, ka, CalleesDir)
		}
		if spiffeid.Validate(a) != nil {
			t.Fatalf("%s is no valid ID but has a key", a)
		}
	})
}

func calleeBundle(id, revision string) *render.CalleeBundle {
	return &render.CalleeBundle{ID: id, Revision: revision, Tarball: []byte(id + " " + revision)}
}

const reserved = "spiffe://example.org/ns/bank/sa/balances/bundle.tar.gz"

// counting counts the objects a publisher is asked to write.
type counting struct {
	Publisher
	calls int
	fail  error
}

func (c *counting) PublishObject(ctx context.Context, key, revision string, tarball []byte) (bool, error) {
	c.calls++
	if c.fail != nil {
		return false, c.fail
	}
	return c.Publisher.PublishObject(ctx, key, revision, tarball)
}

// Each callee's bundle is written once per revision, on a file output and
// on an object store; reserved names are refused and counted; a failure
// leaves the rest for the next call.
func TestCalleePublisher(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bucket := memblob.OpenBucket(nil)
	read := map[string]func(key string) string{
		"file": func(key string) string {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
			require.NoError(t, err)
			return string(b)
		},
		"blob": func(key string) string {
			b, err := bucket.ReadAll(ctx, key)
			require.NoError(t, err)
			return string(b)
		},
	}
	for name, p := range map[string]Publisher{"file": NewDir(dir), "blob": newBlob(bucket, 0)} {
		t.Run(name, func(t *testing.T) {
			out := &counting{Publisher: p}
			c := NewCalleePublisher(out, nil)
			unseen := calleeBundle("", "u1")
			res, err := c.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r1"), calleeBundle(ledger, "r1"), calleeBundle(reserved, "r1")}, Unseen: unseen})
			require.NoError(t, err)
			assert.Equal(t, CalleeResult{Written: 2, Refused: []string{reserved}}, res)
			assert.Equal(t, balances+" r1", read[name]("callees/example.org/ns/bank/sa/balances/bundle.tar.gz"))
			assert.Equal(t, " u1", read[name](UnseenName))
			discovery := read[name](DiscoveryName)
			assert.Equal(t, 4, out.calls, "two callees, the unseen bundle and the discovery bundle")

			res, err = c.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r1"), calleeBundle(ledger, "r2")}, Unseen: unseen})
			require.NoError(t, err)
			assert.Equal(t, CalleeResult{Written: 1, Unchanged: 1}, res)
			assert.Equal(t, 5, out.calls, "an unchanged bundle costs no request")
			assert.Equal(t, ledger+" r2", read[name]("callees/example.org/ns/bank/sa/ledger/bundle.tar.gz"))
			assert.Equal(t, discovery, read[name](DiscoveryName), "the same callees are in place")

			// A new publisher finds the bundles in place.
			again := NewCalleePublisher(p, nil)
			res, err = again.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r1"), calleeBundle(ledger, "r2")}, Unseen: unseen})
			require.NoError(t, err)
			assert.Equal(t, CalleeResult{Unchanged: 2}, res)

			out.fail = errors.New("store down")
			_, err = c.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r3"), calleeBundle(ledger, "r3")}})
			require.ErrorContains(t, err, "bundle of "+balances+": store down")
			require.ErrorContains(t, err, "bundle of "+ledger+": store down")
			assert.Equal(t, 8, out.calls, "a failure does not stop the others, nor the discovery bundle")
			out.fail = nil
			res, err = c.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r3"), calleeBundle(ledger, "r3")}, Unseen: unseen})
			require.NoError(t, err)
			assert.Equal(t, CalleeResult{Written: 2}, res)
			assert.Equal(t, balances+" r3", read[name]("callees/example.org/ns/bank/sa/balances/bundle.tar.gz"))

			// A callee the bundle no longer knows gets the unseen bundle,
			// which decides for it as the full bundle does; the discovery
			// bundle lists the callees in place.
			_, err = c.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r3"), calleeBundle(payments, "r1")}, Unseen: unseen})
			require.NoError(t, err)
			assert.Equal(t, " u1", read[name]("callees/example.org/ns/bank/sa/ledger/bundle.tar.gz"))
			assert.NotEqual(t, discovery, read[name](DiscoveryName))
			_, files := untar(t, read[name](DiscoveryName))
			assert.JSONEq(t, `{"authz":{"discovery":{"callees":{"example.org/ns/bank/sa/balances":true,"example.org/ns/bank/sa/payments":true}}}}`, files["/data.json"])

			// So does one a publisher finds in place at its start.
			fresh := NewCalleePublisher(p, nil)
			_, err = fresh.Publish(ctx, &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(ledger, "r4")}, Unseen: calleeBundle("", "u2")})
			require.NoError(t, err)
			assert.Equal(t, " u2", read[name]("callees/example.org/ns/bank/sa/balances/bundle.tar.gz"))
			assert.Equal(t, ledger+" r4", read[name]("callees/example.org/ns/bank/sa/ledger/bundle.tar.gz"))
		})
	}
}

func untar(t *testing.T, tarball string) ([]string, map[string]string) {
	t.Helper()
	names, files := opatest.Untar(t, []byte(tarball))
	out := map[string]string{}
	for n, b := range files {
		out[n] = string(b)
	}
	return names, out
}

// An object removed out of band is written again within verifyEvery
// publications; a name too long to store is refused.
func TestCalleePublisherVerifiesObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := NewCalleePublisher(NewDir(dir), nil)
	b := &render.Bundle{Callees: []*render.CalleeBundle{calleeBundle(balances, "r1"), calleeBundle("spiffe://example.org/"+strings.Repeat("a", 256), "r1")}}
	res, err := c.Publish(ctx, b)
	require.NoError(t, err)
	assert.Len(t, res.Refused, 1)
	name := filepath.Join(dir, "callees", "example.org", "ns", "bank", "sa", "balances", BundleName)
	require.NoError(t, os.Remove(name))
	for range verifyEvery {
		_, err := c.Publish(ctx, b)
		require.NoError(t, err)
	}
	_, err = os.Stat(name)
	assert.NoError(t, err, "written again")
	_, err = CalleeKey("spiffe://example.org/" + strings.Repeat("a/", 449) + "a")
	assert.ErrorIs(t, err, ErrNameTooLong)
}
