package render

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Reading a bundle back gives the rules it was rendered from.
func TestReadRules(t *testing.T) {
	b := mustRender(t, bank())
	rules, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	var got []string
	for _, r := range rules {
		got = append(got, r.Key())
	}
	slices.Sort(got)
	var want []string
	for _, r := range bank() {
		want = append(want, r.Destination+" "+r.Source+" "+r.Method+" "+r.Route)
	}
	slices.Sort(want)
	assert.Equal(t, want, got)
	assert.ElementsMatch(t, b.Rules, rules, "the rendered rules are the ones the tarball holds")

	_, err = ReadRules([]byte("not a bundle"))
	assert.Error(t, err)
}
