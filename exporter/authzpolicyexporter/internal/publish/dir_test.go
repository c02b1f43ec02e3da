package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

const (
	frontend = "spiffe://example.org/ns/bank/sa/frontend"
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
	ledger   = "spiffe://example.org/ns/bank/sa/ledger"
	replica  = ledger + "/replica"
	partner  = "spiffe://partner.example/ns/shop/sa/orders"
)

// past is a modification time no write in the test can produce, so an
// unchanged mtime proves a file was left alone.
var past = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func rec(dst, src, method, rt string) aggregate.Record {
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return aggregate.Record{
		Key:   aggregate.Key{Destination: dst, Source: src, Method: method, Route: rt},
		Stats: aggregate.Stats{Count: 1, FirstSeen: t, LastSeen: t},
	}
}

// grants renders a bundle in which each of dsts is called by frontend.
func grants(t testing.TB, dsts ...string) *render.Bundle {
	t.Helper()
	var records []aggregate.Record
	for _, d := range dsts {
		records = append(records, rec(d, frontend, "GET", "/status"))
	}
	return mustRender(t, records)
}

func mustRender(t testing.TB, records []aggregate.Record) *render.Bundle {
	t.Helper()
	b, err := render.Render(context.Background(), records, render.Options{CardinalityThreshold: 10})
	require.NoError(t, err)
	require.Zero(t, b.Skipped)
	return b
}

// fakeBundle is a tarball-only bundle whose bytes differ for every i, in
// size as well as content, so a torn read cannot pass for another bundle.
func fakeBundle(i int) *render.Bundle {
	header := fmt.Sprintf("bundle %03d\n", i)
	body := bytes.Repeat([]byte{byte('a' + i%26)}, 64<<10+i*1031)
	return &render.Bundle{Revision: fmt.Sprint(i), Tarball: append([]byte(header), body...)}
}

// grantsDir is the unpacked directory of a destination, slash-separated.
func grantsDir(id string) string {
	return path.Join(render.Root, "grants", strings.TrimPrefix(id, "spiffe://"))
}

// dataFile is a destination's callers in the unpacked directory.
func dataFile(id string) string { return grantsDir(id) + "/@callers/data.json" }

// readTree returns every regular file below dir, keyed by slash path.
func readTree(dir string) (map[string][]byte, error) {
	tree := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		tree[filepath.ToSlash(rel)] = content
		return err
	})
	return tree, err
}

// assertTree compares file trees by name, then by content, keeping failure
// messages short.
func assertTree(t *testing.T, want, got map[string][]byte, msgAndArgs ...any) bool {
	t.Helper()
	if !assert.ElementsMatch(t, slices.Collect(maps.Keys(want)), slices.Collect(maps.Keys(got)), msgAndArgs...) {
		return false
	}
	ok := true
	for name, content := range want {
		ok = assert.True(t, bytes.Equal(content, got[name]), "%s: content differs", name) && ok
	}
	return ok
}

func mustReadTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	tree, err := readTree(dir)
	require.NoError(t, err)
	return tree
}

func readRevision(dir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ".manifest"))
	if err != nil {
		return "", err
	}
	var m struct {
		Revision string `json:"revision"`
	}
	err = json.Unmarshal(raw, &m)
	return m.Revision, err
}

// tempFiles lists leftovers of atomic writes below root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && strings.Contains(e.Name(), ".tmp-") {
			found = append(found, p)
		}
		return err
	}))
	return found
}

// writeFiles creates files below root, keyed by slash path.
func writeFiles(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, content, 0o644))
	}
}

func TestPublishBundle(t *testing.T) {
	tests := []struct {
		name string
		dir  func(tmp string) string
	}{
		{"existing directory", func(tmp string) string { return tmp }},
		{"missing directory", func(tmp string) string { return filepath.Join(tmp, "out") }},
		{"missing nested directories", func(tmp string) string { return filepath.Join(tmp, "a", "b", "out") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := tt.dir(tmp)
			target := filepath.Join(dir, BundleName)
			d := NewDir(dir)
			first, second := fakeBundle(1), fakeBundle(2)

			changed, err := d.Publish(context.Background(), first)
			require.NoError(t, err)
			assert.True(t, changed, "first publish")
			got, err := os.ReadFile(target)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(first.Tarball, got), "published bytes differ")
			info, err := os.Stat(target)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o644), info.Mode())

			// The same bytes again: nothing is written.
			require.NoError(t, os.Chtimes(target, past, past))
			before, err := os.Stat(target)
			require.NoError(t, err)
			changed, err = d.Publish(context.Background(), &render.Bundle{Revision: "copy", Tarball: bytes.Clone(first.Tarball)})
			require.NoError(t, err)
			assert.False(t, changed, "identical bytes")
			after, err := os.Stat(target)
			require.NoError(t, err)
			assert.True(t, os.SameFile(before, after), "file was replaced")
			assert.True(t, after.ModTime().Equal(past), "file was rewritten: mtime %v", after.ModTime())

			// Different bytes replace the file.
			changed, err = d.Publish(context.Background(), second)
			require.NoError(t, err)
			assert.True(t, changed, "changed bundle")
			got, err = os.ReadFile(target)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(second.Tarball, got), "published bytes differ")
			replaced, err := os.Stat(target)
			require.NoError(t, err)
			assert.False(t, os.SameFile(before, replaced), "file was overwritten in place, not replaced")
			assert.Equal(t, fs.FileMode(0o644), replaced.Mode())

			assert.Empty(t, tempFiles(t, tmp))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			assert.Equal(t, BundleName, entries[0].Name())
		})
	}
}

// TestPublishConcurrentReader checks that a reader never sees a torn bundle
// and never goes back to an older one.
func TestPublishConcurrentReader(t *testing.T) {
	const n = 50
	bundles := make([]*render.Bundle, n)
	index := map[string]int{}
	for i := range bundles {
		bundles[i] = fakeBundle(i)
		index[string(bundles[i].Tarball)] = i
	}
	dir := t.TempDir()
	target := filepath.Join(dir, BundleName)
	d := NewDir(dir)
	_, err := d.Publish(context.Background(), bundles[0])
	require.NoError(t, err)

	type result struct {
		reads int
		err   error
	}
	stop := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		var r result
		last := 0
		defer func() { done <- r }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(target)
			if err != nil {
				r.err = err
				return
			}
			r.reads++
			i, ok := index[string(got)]
			if !ok {
				r.err = fmt.Errorf("read %d bytes that are no published bundle (starting %q)", len(got), got[:min(len(got), 12)])
				return
			}
			if i < last {
				r.err = fmt.Errorf("read bundle %d after bundle %d", i, last)
				return
			}
			last = i
		}
	}()

	for _, b := range bundles[1:] {
		changed, err := d.Publish(context.Background(), b)
		if !assert.NoError(t, err) || !assert.True(t, changed, "bundle %s", b.Revision) {
			break
		}
	}
	close(stop)
	r := <-done
	require.NoError(t, r.err)
	assert.Positive(t, r.reads)
	t.Logf("%d concurrent reads", r.reads)

	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(bundles[n-1].Tarball, got), "last bundle not in place")
	assert.Empty(t, tempFiles(t, dir))
}

// TestPublishUnwritable checks that a bundle that cannot be written is an
// error that leaves what is in place alone.
func TestPublishUnwritable(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares tmp and returns the output directory.
		setup func(t *testing.T, tmp string) string
	}{
		{
			name: "output path is a file",
			setup: func(t *testing.T, tmp string) string {
				writeFiles(t, tmp, map[string][]byte{"out": []byte("not a directory")})
				return filepath.Join(tmp, "out")
			},
		},
		{
			name: "output parent is a file",
			setup: func(t *testing.T, tmp string) string {
				writeFiles(t, tmp, map[string][]byte{"parent": []byte("not a directory")})
				return filepath.Join(tmp, "parent", "out")
			},
		},
		{
			name: "bundle path is a non-empty directory",
			setup: func(t *testing.T, tmp string) string {
				writeFiles(t, tmp, map[string][]byte{"out/" + BundleName + "/keep": []byte("user data")})
				return filepath.Join(tmp, "out")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := tt.setup(t, tmp)
			before := mustReadTree(t, tmp)

			changed, err := NewDir(dir).Publish(context.Background(), fakeBundle(1))
			require.Error(t, err)
			assert.False(t, changed)
			assertTree(t, before, mustReadTree(t, tmp), "files changed")
		})
	}
}

// TestUnpackedFailureDoesNotHoldBackEnforcement checks that a publish
// failing in the unpacked (review) directory still publishes the bundle OPA
// enforces, and leaves the unpacked manifest at the last complete revision.
func TestUnpackedFailureDoesNotHoldBackEnforcement(t *testing.T) {
	tests := []struct {
		name     string
		next     []string
		sabotage func(t *testing.T, unpacked string)
	}{
		{
			name: "unpacked dir is a file",
			next: []string{balances, payments},
			sabotage: func(t *testing.T, unpacked string) {
				require.NoError(t, os.RemoveAll(unpacked))
				require.NoError(t, os.WriteFile(unpacked, []byte("not a directory"), 0o644))
			},
		},
		{
			name: "new destination's directory is a file",
			next: []string{balances, ledger},
			sabotage: func(t *testing.T, unpacked string) {
				writeFiles(t, unpacked, map[string][]byte{grantsDir(ledger): []byte("not a directory")})
			},
		},
		{
			name: "new destination's data.json is a directory",
			next: []string{balances, ledger},
			sabotage: func(t *testing.T, unpacked string) {
				writeFiles(t, unpacked, map[string][]byte{dataFile(ledger) + "/keep": []byte("user data")})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, unpacked := t.TempDir(), filepath.Join(t.TempDir(), "unpacked")
			d := WithReview(NewDir(out), unpacked)
			prev := grants(t, balances)
			_, err := d.Publish(context.Background(), prev)
			require.NoError(t, err)
			tt.sabotage(t, unpacked)

			next := grants(t, tt.next...)
			changed, err := d.Publish(context.Background(), next)
			require.Error(t, err)
			assert.True(t, changed)
			got, err := os.ReadFile(filepath.Join(out, BundleName))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(next.Tarball, got), "the enforced bundle was held back")
			if info, err := os.Stat(unpacked); err == nil && info.IsDir() {
				rev, err := readRevision(unpacked)
				require.NoError(t, err)
				assert.Equal(t, prev.Revision, rev, "manifest names a revision that was not fully written")
			}
			assert.Empty(t, tempFiles(t, filepath.Dir(unpacked)))
			assert.Empty(t, tempFiles(t, out))
		})
	}
}

func TestPublishUnpacked(t *testing.T) {
	out, unpacked := t.TempDir(), filepath.Join(t.TempDir(), "repo", "policy")
	d := WithReview(NewDir(out), unpacked)
	first := grants(t, balances, payments, ledger, replica, partner)
	require.Contains(t, first.Files, dataFile(replica))

	changed, err := d.Publish(context.Background(), first)
	require.NoError(t, err)
	assert.True(t, changed)
	assertTree(t, first.Files, mustReadTree(t, unpacked))
	rev, err := readRevision(unpacked)
	require.NoError(t, err)
	assert.Equal(t, first.Revision, rev)
	for name := range first.Files {
		info, err := os.Stat(filepath.Join(unpacked, filepath.FromSlash(name)))
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o644), info.Mode(), name)
	}

	// Republishing the same bundle touches nothing.
	require.NoError(t, filepath.WalkDir(unpacked, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, past, past)
	}))
	changed, err = d.Publish(context.Background(), first)
	require.NoError(t, err)
	assert.False(t, changed)
	for name := range first.Files {
		info, err := os.Stat(filepath.Join(unpacked, filepath.FromSlash(name)))
		require.NoError(t, err)
		assert.True(t, info.ModTime().Equal(past), "%s rewritten", name)
	}

	// A bundle in which only payments changes rewrites payments and the
	// manifest, nothing else.
	second := mustRender(t, []aggregate.Record{
		rec(balances, frontend, "GET", "/status"),
		rec(payments, frontend, "GET", "/status"),
		rec(payments, frontend, "POST", "/payments"),
		rec(ledger, frontend, "GET", "/status"),
		rec(replica, frontend, "GET", "/status"),
		rec(partner, frontend, "GET", "/status"),
	})
	changed, err = d.Publish(context.Background(), second)
	require.NoError(t, err)
	assert.True(t, changed)
	assertTree(t, second.Files, mustReadTree(t, unpacked))
	for name := range second.Files {
		info, err := os.Stat(filepath.Join(unpacked, filepath.FromSlash(name)))
		require.NoError(t, err)
		rewritten := !bytes.Equal(first.Files[name], second.Files[name])
		assert.Equal(t, rewritten, !info.ModTime().Equal(past), "%s: rewritten should be %v", name, rewritten)
	}
	assert.ElementsMatch(t, []string{".manifest", dataFile(payments)}, changedNames(first.Files, second.Files))
	assert.Empty(t, tempFiles(t, filepath.Dir(unpacked)))
}

func changedNames(a, b map[string][]byte) []string {
	var names []string
	for name := range b {
		if !bytes.Equal(a[name], b[name]) {
			names = append(names, name)
		}
	}
	return names
}

// userFiles live in the unpacked directory without being the bundle's.
var userFiles = map[string][]byte{
	"README.md":                           []byte("# policy\n"),
	".git/HEAD":                           []byte("ref: refs/heads/main\n"),
	".git/objects/info/data.json":         []byte("{}\n"),
	render.Root + "/grants/notes.json":    []byte("{\"note\": true}\n"),
	render.Root + "/grants/data.json.bak": []byte("{}\n"),
}

func TestPublishUnpackedRemovesStale(t *testing.T) {
	tests := []struct {
		name          string
		before, after []string
		// extra are user files added after the first publish, besides
		// userFiles unless bare.
		extra map[string][]byte
		bare  bool
		// gone and kept are slash paths below the unpacked directory.
		gone, kept []string
	}{
		{
			name:   "destination removed",
			before: []string{balances, payments},
			after:  []string{payments},
			gone:   []string{dataFile(balances), grantsDir(balances)},
			kept:   []string{dataFile(payments), path.Dir(grantsDir(balances))},
		},
		{
			name:   "nested destination removed",
			before: []string{ledger, replica},
			after:  []string{ledger},
			gone:   []string{grantsDir(replica)},
			kept:   []string{dataFile(ledger)},
		},
		{
			name:   "destination with a nested one removed",
			before: []string{ledger, replica},
			after:  []string{replica},
			gone:   []string{dataFile(ledger)},
			kept:   []string{dataFile(replica)},
		},
		{
			name:   "destination and nested one removed",
			before: []string{payments, ledger, replica},
			after:  []string{payments},
			gone:   []string{grantsDir(ledger)},
			kept:   []string{dataFile(payments)},
		},
		{
			name:   "only destination of a trust domain removed",
			before: []string{balances, partner},
			after:  []string{balances},
			gone:   []string{render.Root + "/grants/partner.example"},
			kept:   []string{dataFile(balances)},
		},
		{
			name:   "all destinations removed",
			before: []string{balances, ledger, replica, partner},
			after:  nil,
			gone:   []string{render.Root + "/grants/example.org", render.Root + "/grants/partner.example"},
			kept:   []string{render.Root + "/grants"},
		},
		{
			name:   "all destinations removed, no user files",
			before: []string{balances, replica},
			after:  nil,
			bare:   true,
			gone:   []string{render.Root + "/grants/example.org"},
			kept:   []string{render.Root + "/grants"},
		},
		{
			name:   "removed destination's directory holds a user file",
			before: []string{balances, payments},
			after:  []string{payments},
			extra:  map[string][]byte{grantsDir(balances) + "/notes.json": []byte("keep me\n")},
			gone:   []string{dataFile(balances)},
			kept:   []string{grantsDir(balances)},
		},
		{
			name:   "removed destination's directory holds a user directory",
			before: []string{ledger},
			after:  []string{balances},
			extra:  map[string][]byte{grantsDir(ledger) + "/old/README": []byte("keep me\n")},
			gone:   []string{dataFile(ledger)},
			kept:   []string{grantsDir(ledger) + "/old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unpacked := t.TempDir()
			d := WithReview(NewDir(t.TempDir()), unpacked)
			before, after := grants(t, tt.before...), grants(t, tt.after...)
			for _, name := range tt.gone {
				if strings.HasSuffix(name, "/data.json") {
					require.Contains(t, before.Files, name, "bad test case")
				}
			}

			_, err := d.Publish(context.Background(), before)
			require.NoError(t, err)
			user := maps.Clone(tt.extra)
			if !tt.bare {
				user = maps.Clone(userFiles)
				maps.Copy(user, tt.extra)
			}
			writeFiles(t, unpacked, user)

			changed, err := d.Publish(context.Background(), after)
			require.NoError(t, err)
			assert.True(t, changed)

			want := maps.Clone(after.Files)
			maps.Copy(want, user)
			assertTree(t, want, mustReadTree(t, unpacked))
			rev, err := readRevision(unpacked)
			require.NoError(t, err)
			assert.Equal(t, after.Revision, rev)
			for _, name := range tt.gone {
				_, err := os.Lstat(filepath.Join(unpacked, filepath.FromSlash(name)))
				assert.ErrorIs(t, err, fs.ErrNotExist, "%s should be gone", name)
			}
			for _, name := range tt.kept {
				_, err := os.Lstat(filepath.Join(unpacked, filepath.FromSlash(name)))
				assert.NoError(t, err, "%s should be kept", name)
			}
			assert.Empty(t, tempFiles(t, unpacked))

			// And back: the removed destinations return.
			_, err = d.Publish(context.Background(), before)
			require.NoError(t, err)
			want = maps.Clone(before.Files)
			maps.Copy(want, user)
			assertTree(t, want, mustReadTree(t, unpacked))
		})
	}
}

// TestPublishUnpackedManifestLast watches the unpacked directory while
// bundles that add and remove destinations are published: once the manifest
// names a revision, the directory must hold exactly that revision's files.
func TestPublishUnpackedManifestLast(t *testing.T) {
	unpacked := t.TempDir()
	d := WithReview(NewDir(t.TempDir()), unpacked)
	bundles := []*render.Bundle{
		grants(t, balances, payments, ledger, replica),
		grants(t, balances),
		grants(t, payments, replica, partner),
		grants(t, ledger),
	}
	_, err := d.Publish(context.Background(), bundles[0])
	require.NoError(t, err)

	type observation struct {
		tree map[string][]byte
		err  error
	}
	// observe reports the directory as soon as the manifest names want.
	observe := func(want string, stop <-chan struct{}) <-chan observation {
		seen := make(chan observation, 1)
		go func() {
			for {
				select {
				case <-stop:
					seen <- observation{err: errors.New("stopped")}
					return
				default:
				}
				if rev, _ := readRevision(unpacked); rev == want {
					tree, err := readTree(unpacked)
					seen <- observation{tree, err}
					return
				}
			}
		}()
		return seen
	}

	for round := range 10 {
		for i, b := range bundles {
			prev := bundles[(i+len(bundles)-1)%len(bundles)]
			if round == 0 && i == 0 {
				continue
			}
			stop := make(chan struct{})
			seen := observe(b.Revision, stop)
			_, err := d.Publish(context.Background(), b)
			if err != nil {
				close(stop)
				require.NoError(t, err)
			}
			select {
			case o := <-seen:
				require.NoError(t, o.err)
				if !assertTree(t, b.Files, o.tree, "round %d: manifest shows %s, files are not all %s's (previous: %s)", round, b.Revision, b.Revision, prev.Revision) {
					t.FailNow()
				}
			case <-time.After(time.Minute):
				close(stop)
				t.Fatalf("manifest never showed revision %s", b.Revision)
			}
		}
	}
}
