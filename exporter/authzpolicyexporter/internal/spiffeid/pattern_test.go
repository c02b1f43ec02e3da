package spiffeid

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern  string
		segments []string
		rest     bool
		exact    string
		wantErr  string // substring of the error; empty means valid
	}{
		{pattern: "*", rest: true},
		{pattern: "spiffe://example.org", segments: []string{"example.org"}, exact: "spiffe://example.org"},
		{pattern: "spiffe://example.org/ns/bank/sa/balances", segments: []string{"example.org", "ns", "bank", "sa", "balances"}, exact: "spiffe://example.org/ns/bank/sa/balances"},
		{pattern: "spiffe://example.org/ns/bank/sa/*", segments: []string{"example.org", "ns", "bank", "sa", "*"}},
		{pattern: "spiffe://*/ns/x/sa/y", segments: []string{"*", "ns", "x", "sa", "y"}},
		{pattern: "spiffe://example.org/ns/payments/**", segments: []string{"example.org", "ns", "payments"}, rest: true},
		{pattern: "spiffe://example.org/**", segments: []string{"example.org"}, rest: true},
		{pattern: "spiffe://*/**", segments: []string{"*"}, rest: true},
		{pattern: "spiffe://*/*/**", segments: []string{"*", "*"}, rest: true},

		{pattern: "", wantErr: `invalid SPIFFE ID pattern "": must be "*" or start with "spiffe://"`},
		{pattern: "**", wantErr: "start with"},
		{pattern: "SPIFFE://example.org", wantErr: "start with"},
		{pattern: "spiffe://**", wantErr: `"**" is allowed only as a last path segment`},
		{pattern: "spiffe://td/**/x", wantErr: `"**" is allowed only`},
		{pattern: "spiffe://td/**/**", wantErr: `"**" is allowed only`},
		{pattern: "spiffe://td/sa-*", wantErr: `"*" must be a whole segment`},
		{pattern: "spiffe://*.example.org/x", wantErr: `"*" must be a whole segment`},
		{pattern: "spiffe://td/a**", wantErr: `"*" must be a whole segment`},
		{pattern: "spiffe://td/***", wantErr: `"*" must be a whole segment`},
		{pattern: "spiffe://", wantErr: "empty trust domain"},
		{pattern: "spiffe:///**", wantErr: "empty trust domain"},
		{pattern: "spiffe://Example.org/*", wantErr: `invalid character "E" in trust domain at offset 9`},
		{pattern: "spiffe://*/a b", wantErr: `invalid character " " in path at offset 12`},
		{pattern: "spiffe://td/*/", wantErr: "trailing slash"},
		{pattern: "spiffe://td//*", wantErr: "empty path segment"},
		{pattern: "spiffe://td/*/../x", wantErr: "dot segment at offset 14"},
		{pattern: "spiffe://./**", wantErr: "trust domain starts or ends with"},
		{pattern: "spiffe://td/" + strings.Repeat("a", maxLen), wantErr: "exceeds 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), "spiffeid: invalid SPIFFE ID pattern")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.pattern, p.String())
			assert.Equal(t, tt.segments, p.Segments())
			assert.Equal(t, tt.rest, p.Rest())
			exact, ok := p.Exact()
			assert.Equal(t, tt.exact, exact)
			assert.Equal(t, tt.exact != "", ok)
		})
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{
			pattern: "*",
			match:   []string{"spiffe://example.org", "spiffe://td/a/b/c"},
			noMatch: []string{"", "*", "spiffe://", "spiffe://td/", "spiffe://TD/x", "spiffe://td//x", "spiffe://td/./x", "spiffe://.td/x", "https://td/x"},
		},
		{
			pattern: "spiffe://example.org/ns/bank/sa/balances",
			match:   []string{"spiffe://example.org/ns/bank/sa/balances"},
			noMatch: []string{"spiffe://example.org/ns/bank/sa/balances/x", "spiffe://example.org/ns/bank/sa", "spiffe://example.org/ns/bank/sa/balances/", "spiffe://example.org/ns/bank/sa/Balances"},
		},
		{
			pattern: "spiffe://example.org/ns/bank/sa/*",
			match:   []string{"spiffe://example.org/ns/bank/sa/balances", "spiffe://example.org/ns/bank/sa/x"},
			noMatch: []string{"spiffe://example.org/ns/bank/sa", "spiffe://example.org/ns/bank/sa/", "spiffe://example.org/ns/bank/sa/a/b", "spiffe://example.org/ns/bank/sa/..", "spiffe://example.org/ns/bank/sa/a b", "spiffe://example.org/ns/other/sa/x"},
		},
		{
			pattern: "spiffe://*/ns/x/sa/y",
			match:   []string{"spiffe://a/ns/x/sa/y", "spiffe://cluster.local/ns/x/sa/y"},
			noMatch: []string{"spiffe:///ns/x/sa/y", "spiffe://A/ns/x/sa/y", "spiffe://a./ns/x/sa/y", "spiffe://a/b/ns/x/sa/y"},
		},
		{
			pattern: "spiffe://example.org/ns/payments/**",
			match:   []string{"spiffe://example.org/ns/payments", "spiffe://example.org/ns/payments/sa/x", "spiffe://example.org/ns/payments/a/b/c"},
			noMatch: []string{"spiffe://example.org/ns", "spiffe://example.org/ns/payments/", "spiffe://example.org/ns/payments//x", "spiffe://example.org/ns/payments/a/..", "spiffe://example.org/ns/paymentsx", "spiffe://example.org/ns/payments/" + strings.Repeat("a", maxLen)},
		},
		{
			pattern: "spiffe://*/**",
			match:   []string{"spiffe://td", "spiffe://td/a/b"},
			noMatch: []string{"spiffe://", "spiffe://td/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			require.NoError(t, err)
			for _, id := range tt.match {
				assert.True(t, p.Match(id), "%s should match %s", tt.pattern, id)
			}
			for _, id := range tt.noMatch {
				assert.False(t, p.Match(id), "%s should not match %s", tt.pattern, id)
			}
		})
	}
}

func TestZeroPatternMatchesNothing(t *testing.T) {
	assert.False(t, Pattern{}.Match("spiffe://td/x"))
	_, ok := Pattern{}.Exact()
	assert.False(t, ok)
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	p, err := ParsePattern("spiffe://*/ns/*/**")
	require.NoError(t, err)
	for _, id := range []string{"spiffe://td/ns/bank/sa/x", "spiffe://td/ns", "not an id"} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { p.Match(id) }), id)
	}
}

func FuzzPattern(f *testing.F) {
	for _, seed := range [][2]string{
		{"*", "spiffe://td/a"},
		{"spiffe://td/a", "spiffe://td/a"},
		{"spiffe://td/*", "spiffe://td/a"},
		{"spiffe://*/a/**", "spiffe://td/a/b/c"},
		{"spiffe://td/**", "spiffe://td/"},
		{"spiffe://td/a-*", "spiffe://td/a-b"},
		{"spiffe://td/**/a", "spiffe://td/x/a"},
		{"spiffe://*/*", "spiffe://./x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, id string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			if p.Match(id) {
				t.Fatalf("the zero Pattern from a failed parse of %q matches %q", pattern, id)
			}
			return
		}
		got := p.Match(id)
		if want := reference(p, id); got != want {
			t.Fatalf("ParsePattern(%q).Match(%q) = %v, want %v", pattern, id, got, want)
		}
		if exact, ok := p.Exact(); ok {
			if !p.Match(exact) || got != (id == exact) {
				t.Fatalf("exact pattern %q: Match(%q) = %v", exact, id, got)
			}
		}
		// An ID a pattern admits is valid, and so is the pattern's own
		// text with its wildcards filled in.
		if got && Validate(id) != nil {
			t.Fatalf("%q matched invalid ID %q", pattern, id)
		}
		if filled := fill(p); !p.Match(filled) {
			t.Fatalf("%q does not match %q", pattern, filled)
		}
	})
}

// reference is Match written plainly over Validate and Segments, the way
// the policy compares IDs.
func reference(p Pattern, id string) bool {
	if Validate(id) != nil {
		return false
	}
	segs := Segments(id)
	if len(segs) < len(p.Segments()) || !p.Rest() && len(segs) != len(p.Segments()) {
		return false
	}
	for i, want := range p.Segments() {
		if want != "*" && want != segs[i] {
			return false
		}
	}
	return true
}

func fill(p Pattern) string {
	segs := p.Segments()
	if segs == nil {
		segs = []string{"td"}
	}
	return scheme + strings.ReplaceAll(strings.Join(segs, "/"), "*", "x")
}
