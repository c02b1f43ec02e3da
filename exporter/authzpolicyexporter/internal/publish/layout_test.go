package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// collidingIDs are valid SPIFFE IDs that continue one another by the names
// of the unpacked bundle's own files and directories, or are named like
// them. (IDs that differ only in case are left out: a case-insensitive file
// system folds them.)
var collidingIDs = []string{
	balances,
	balances + "/data.json",
	balances + "/data.json/x",
	balances + "/data.json/data.json",
	balances + "/data.json/data.json/data.json",
	balances + "/policy.rego",
	balances + "/.manifest",
	balances + "/.signatures.json",
	balances + "/data.yaml",
	balances + "/data.yml",
	balances + "/patch.json",
	balances + "/grants",
	balances + "/callers",
	balances + "/_callers",
	balances + "/.data.json.tmp-1",
	balances + "/...",
	"spiffe://example.org",
	"spiffe://example.org/data.json",
	"spiffe://example.org/grants/example.org/ns/bank/sa/balances",
	"spiffe://example.org/envoy/authz/policy.rego",
	"spiffe://data.json",
	"spiffe://data.json/data.json",
	"spiffe://data.json/ns/bank/sa/balances",
	"spiffe://grants/data.json",
	"spiffe://envoy/authz/data.json",
	"spiffe://policy.rego",
	"spiffe://manifest/.manifest",
}

// callersLookalikes spell the directory of a callee's files; no SPIFFE ID
// holds '@'.
var callersLookalikes = []string{
	balances + "/@callers",
	balances + "/@callers/data.json",
	"spiffe://example.org/@callers",
	"spiffe://example.org/ns/bank/sa/a@callers",
}

// collidingBundle has every colliding ID call frontend and be called by it;
// the lookalikes are refused.
func collidingBundle(t *testing.T) *render.Bundle {
	t.Helper()
	var records []aggregate.Record
	for _, id := range collidingIDs {
		require.NoError(t, spiffeid.Validate(id))
		records = append(records, rec(id, frontend, "GET", "/status"), rec(frontend, id, "POST", "/calls"))
	}
	for _, id := range callersLookalikes {
		require.Error(t, spiffeid.Validate(id), id)
		records = append(records, rec(id, frontend, "GET", "/status"))
	}
	b, err := render.Render(context.Background(), records, render.Options{CardinalityThreshold: 10})
	require.NoError(t, err)
	require.Equal(t, len(callersLookalikes), b.Skipped)
	return b
}

// The unpacked directory can be written whatever IDs were learned, and OPA
// reads from it exactly the tarball's data and decisions.
func TestPublishUnpackedCollidingIDs(t *testing.T) {
	b := collidingBundle(t)
	unpacked := t.TempDir()
	_, err := WithReview(NewDir(t.TempDir()), unpacked).Publish(context.Background(), b)
	require.NoError(t, err)
	assertTree(t, b.Files, mustReadTree(t, unpacked))

	tar, err := bundle.NewReader(bytes.NewReader(b.Tarball)).Read()
	require.NoError(t, err)
	dir := opatest.ReadDir(t, unpacked)
	assert.Equal(t, tar.Data, dir.Data, "the unpacked directory holds the tarball's data")

	fromTar, fromDir := opatest.LoadBundle(t, &tar), opatest.LoadBundle(t, dir)
	ids := append(append([]string{frontend, payments}, collidingIDs...), callersLookalikes...)
	granted := map[[2]string]string{}
	for _, id := range collidingIDs {
		granted[[2]string{id, frontend}] = "GET /status"
		granted[[2]string{frontend, id}] = "POST /calls"
	}
	for _, dst := range ids {
		for _, src := range ids {
			for _, call := range []string{"GET /status", "POST /calls"} {
				method, path, _ := strings.Cut(call, " ")
				r := opatest.Request{NoHeader: true, SourcePrincipal: src, DestinationPrincipal: dst, Method: method, Path: path}
				want := granted[[2]string{dst, src}] == call
				if !assert.Equal(t, want, fromTar.Allowed(r), "tarball: %s -> %s %s", src, dst, call) ||
					!assert.Equal(t, want, fromDir.Allowed(r), "unpacked: %s -> %s %s", src, dst, call) {
					return
				}
			}
		}
	}
}

// previousLayout is b's unpacked directory as the previous version wrote
// it: each callee's data.json at the callee's own path, holding
// {"@callers": ...}.
func previousLayout(t *testing.T, b *render.Bundle) map[string][]byte {
	t.Helper()
	old := map[string][]byte{}
	for name, content := range b.Files {
		callee, ok := strings.CutSuffix(name, "/@callers/data.json")
		if !ok {
			old[name] = content
			continue
		}
		var callers any
		require.NoError(t, json.Unmarshal(content, &callers))
		wrapped, err := json.MarshalIndent(map[string]any{"@callers": callers}, "", "  ")
		require.NoError(t, err)
		old[callee+"/data.json"] = append(wrapped, '\n')
	}
	return old
}

// A directory the previous version wrote ends up exactly the new bundle's
// files, the user's own files kept, even where an old callee's data.json
// stands where a new callee needs a directory.
func TestPublishUnpackedReplacesPreviousLayout(t *testing.T) {
	tests := []struct {
		name          string
		before, after *render.Bundle
	}{
		{"same grants", grants(t, balances, payments, ledger, replica, partner), grants(t, balances, payments, ledger, replica, partner)},
		{"callees gone", grants(t, balances, payments, ledger, replica, partner), grants(t, payments, replica)},
		{"old data.json where a new callee's directory goes", grants(t, balances, ledger), grants(t, balances, balances+"/data.json", ledger+"/data.json/x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unpacked := t.TempDir()
			old := previousLayout(t, tt.before)
			writeFiles(t, unpacked, old)
			user := maps.Clone(userFiles)
			delete(user, ".git/objects/info/data.json") // data outside the bundle's roots: no bundle
			writeFiles(t, unpacked, user)
			// The previous layout is a bundle with the same data.
			require.Equal(t, opatest.ReadDir(t, unpacked).Data, readTarData(t, tt.before.Tarball))

			_, err := WithReview(NewDir(t.TempDir()), unpacked).Publish(context.Background(), tt.after)
			require.NoError(t, err)
			want := maps.Clone(tt.after.Files)
			maps.Copy(want, user)
			assertTree(t, want, mustReadTree(t, unpacked))
			assert.Equal(t, readTarData(t, tt.after.Tarball), opatest.ReadDir(t, unpacked).Data)
			assert.Empty(t, tempFiles(t, unpacked))
		})
	}
}

func readTarData(t *testing.T, tarball []byte) map[string]any {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	require.NoError(t, err)
	return b.Data
}

// A @callers directory holds only the bundle's files: anything else there
// (a file of a later version, a temporary file left by a crash) is removed
// with the stale data, and the destination's directory with it.
func TestPublishUnpackedOwnsCallersDirs(t *testing.T) {
	unpacked := t.TempDir()
	d := WithReview(NewDir(t.TempDir()), unpacked)
	_, err := d.Publish(context.Background(), grants(t, balances, payments))
	require.NoError(t, err)
	writeFiles(t, unpacked, map[string][]byte{
		grantsDir(balances) + "/@callers/routes.json":         []byte("{}\n"),
		grantsDir(payments) + "/@callers/.data.json.tmp-4711": []byte("{"),
		grantsDir(payments) + "/@callers/old/data.json":       []byte("{}\n"),
		grantsDir(payments) + "/NOTES.md":                     []byte("kept\n"),
	})

	after := grants(t, payments)
	_, err = d.Publish(context.Background(), after)
	require.NoError(t, err)
	want := maps.Clone(after.Files)
	want[grantsDir(payments)+"/NOTES.md"] = []byte("kept\n")
	assertTree(t, want, mustReadTree(t, unpacked))
	assert.NoDirExists(t, filepath.Join(unpacked, filepath.FromSlash(grantsDir(balances))))
	assert.NoDirExists(t, filepath.Join(unpacked, filepath.FromSlash(grantsDir(payments)+"/@callers/old")))
}
