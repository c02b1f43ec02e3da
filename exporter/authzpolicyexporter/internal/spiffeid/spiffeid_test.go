package spiffeid

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr string // substring of the error; empty means valid
	}{
		{name: "trust domain only", id: "spiffe://example.org"},
		{name: "istio", id: "spiffe://cluster.local/ns/foo/sa/curl"},
		{name: "all allowed characters", id: "spiffe://a-b_c.9/A-Z_a.z-0_9/..x/x.."},
		{name: "max length", id: "spiffe://td/" + strings.Repeat("a", maxLen-len("spiffe://td/"))},

		{name: "empty", id: "", wantErr: "scheme"},
		{name: "no scheme", id: "example.org/ns/foo", wantErr: "scheme"},
		{name: "other scheme", id: "https://example.org/x", wantErr: "scheme"},
		{name: "uppercase scheme", id: "SPIFFE://example.org/x", wantErr: "scheme"},
		{name: "single slash", id: "spiffe:/example.org/x", wantErr: "scheme"},
		{name: "empty trust domain", id: "spiffe://", wantErr: "empty trust domain"},
		{name: "empty trust domain with path", id: "spiffe:///x", wantErr: "empty trust domain"},
		{name: "uppercase trust domain", id: "spiffe://Example.org/x", wantErr: "trust domain at offset 9"},
		{name: "port", id: "spiffe://td:8080/x", wantErr: `":" in trust domain`},
		{name: "userinfo", id: "spiffe://u@td/x", wantErr: `"@" in trust domain`},
		{name: "query", id: "spiffe://td/x?a=b", wantErr: `"?" in path`},
		{name: "query on trust domain", id: "spiffe://td?a", wantErr: `"?" in trust domain`},
		{name: "fragment", id: "spiffe://td/x#f", wantErr: `"#" in path`},
		{name: "trailing slash", id: "spiffe://td/", wantErr: "trailing slash"},
		{name: "trailing slash after path", id: "spiffe://td/a/", wantErr: "trailing slash"},
		{name: "empty segment", id: "spiffe://td//a", wantErr: "empty path segment at offset 12"},
		{name: "dot segment", id: "spiffe://td/a/./b", wantErr: "dot segment at offset 14"},
		{name: "dot dot segment", id: "spiffe://td/a/../b", wantErr: "dot segment at offset 14"},
		{name: "dot-dot trust domain", id: "spiffe://../grants/x", wantErr: "trust domain starts or ends with"},
		{name: "dot trust domain", id: "spiffe://./x", wantErr: "trust domain starts or ends with"},
		{name: "trailing dot trust domain", id: "spiffe://example.org./x", wantErr: "trust domain starts or ends with"},
		{name: "final dot dot segment", id: "spiffe://td/a/..", wantErr: "dot segment"},
		{name: "comma", id: "spiffe://td/a,b", wantErr: `","`},
		{name: "double quote", id: `spiffe://td/a"b`, wantErr: `"\""`},
		{name: "backslash", id: `spiffe://td/a\b`, wantErr: `"\\"`},
		{name: "semicolon", id: "spiffe://td/a;b", wantErr: `";"`},
		{name: "equals", id: "spiffe://td/a=b", wantErr: `"="`},
		{name: "space", id: "spiffe://td/a b", wantErr: `" "`},
		{name: "tab", id: "spiffe://td/a\tb", wantErr: `"\t"`},
		{name: "newline", id: "spiffe://td/a\n", wantErr: `"\n"`},
		{name: "leading space", id: " spiffe://td/a", wantErr: "scheme"},
		{name: "percent-encoded dot", id: "spiffe://td/%2e", wantErr: `"%"`},
		{name: "invalid UTF-8", id: "spiffe://td/a\xff", wantErr: `"\xff" in path`},
		{name: "non-ASCII", id: "spiffe://td/é", wantErr: "in path"},
		{name: "non-ASCII trust domain", id: "spiffe://tè/x", wantErr: "in trust domain"},
		{name: "too long", id: "spiffe://td/" + strings.Repeat("a", maxLen), wantErr: "exceeds 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.id)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestValidateTruncatesLongInput(t *testing.T) {
	id := "spiffe://td/" + strings.Repeat("a", 100) + "," + strings.Repeat("b", 3000)
	err := Validate(id)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "bbb")
	assert.Less(t, len(err.Error()), 200)

	err = Validate(id[:200])
	require.ErrorContains(t, err, `"`+id[:maxQuoted]+`"...`)
	assert.ErrorContains(t, err, `"," in path at offset 112`)
}

func TestSplit(t *testing.T) {
	tests := []struct {
		id       string
		td       string
		segments []string
	}{
		{id: "spiffe://example.org", td: "example.org", segments: []string{"example.org"}},
		{id: "spiffe://cluster.local/ns/foo/sa/curl", td: "cluster.local", segments: []string{"cluster.local", "ns", "foo", "sa", "curl"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			require.NoError(t, Validate(tt.id))
			assert.Equal(t, tt.td, TrustDomain(tt.id))
			assert.Equal(t, tt.segments, Segments(tt.id))
		})
	}
}
