package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// Every bundle written decides every check as the checks file says.
func TestWriteDecidesAsChecksSay(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, write(context.Background(), dir, 10))
	var cs []Check
	require.NoError(t, json.Unmarshal(mustRead(t, dir, ChecksFile), &cs))
	require.Len(t, cs, len(checks(5, 10)))

	for _, tt := range []struct {
		file    string
		trivial bool
	}{{FullFile, false}, {CalleeFile, false}, {TrivialFile, true}} {
		policy := opatest.Load(t, mustRead(t, dir, tt.file))
		for _, c := range cs {
			want := c.Learned
			if tt.trivial {
				want = c.Trivial
			}
			assert.Equal(t, want, policy.Allowed(c.Request), "%s: %s", tt.file, c.Name)
		}
	}
}

// The per-callee bundle knows its callee alone.
func TestCalleeBundleHoldsOneCallee(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, write(context.Background(), dir, 10))
	other := opatest.Request{Destination: service(6), Source: caller(6, 1, 10), Method: "GET", Path: "/api/v1/items"}
	assert.True(t, opatest.Load(t, mustRead(t, dir, FullFile)).Allowed(other))
	assert.False(t, opatest.Load(t, mustRead(t, dir, CalleeFile)).Allowed(other))
}

func mustRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return raw
}

func TestWriteRefusesTinyMesh(t *testing.T) {
	assert.Error(t, write(context.Background(), t.TempDir(), 6))
}
