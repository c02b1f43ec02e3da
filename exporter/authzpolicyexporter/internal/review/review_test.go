package review

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	frontend = "spiffe://example.org/ns/shop/sa/frontend"
	checkout = "spiffe://example.org/ns/shop/sa/checkout"
	orders   = "spiffe://example.org/ns/shop/sa/orders"
	stock    = "spiffe://example.org/ns/shop/sa/stock"
)

var day = time.Date(2026, 11, 2, 9, 30, 15, 0, time.UTC)

// golden compares got with testdata/name; with -update it rewrites the file
// instead, for a deliberate change whose diff is then reviewed.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

// shuffled returns rules in a random order.
func shuffled(rules []Rule) []Rule {
	s := slices.Clone(rules)
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}
