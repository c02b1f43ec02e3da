package xfcc

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	istioHeader = `By=spiffe://cluster.local/ns/foo/sa/httpbin;` +
		`Hash=c1f0b7b6e5b0e1d2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6;` +
		`Subject="";URI=spiffe://cluster.local/ns/foo/sa/curl`
	chainHeader = `By=spiffe://example.org/ns/default/sa/gateway;Hash=aa;URI=spiffe://example.org/ns/default/sa/client,` +
		`By=spiffe://example.org/ns/default/sa/frontend;Hash=bb;Subject="CN=gateway,O=Example";URI=spiffe://example.org/ns/default/sa/gateway,` +
		`By=spiffe://example.org/ns/default/sa/backend;Hash=cc;URI=spiffe://example.org/ns/default/sa/frontend`
)

type parseTest struct {
	name   string
	header string
	want   []Element
	// wantErr is a substring of the error; ErrSyntax is implied.
	wantErr string
}

var parseTests = []parseTest{
	{
		name:   "envoy example",
		header: `By=spiffe://example.org/ns/default/sa/default/backend;Hash=a9;URI=spiffe://example.org/ns/default/sa/default/frontend`,
		want: []Element{{
			{"by", "spiffe://example.org/ns/default/sa/default/backend"},
			{"hash", "a9"},
			{"uri", "spiffe://example.org/ns/default/sa/default/frontend"},
		}},
	},
	{
		name:   "istio",
		header: istioHeader,
		want: []Element{{
			{"by", "spiffe://cluster.local/ns/foo/sa/httpbin"},
			{"hash", "c1f0b7b6e5b0e1d2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6"},
			{"subject", ""},
			{"uri", "spiffe://cluster.local/ns/foo/sa/curl"},
		}},
	},
	{
		name:   "quoted separators and escaped quote",
		header: `By=test;URI="a,b,c;\"e;f;g=x";DNS=example.com`,
		want:   []Element{{{"by", "test"}, {"uri", `a,b,c;"e;f;g=x`}, {"dns", "example.com"}}},
	},
	{
		name:   "subject with commas",
		header: `Subject="emailAddress=a@b.com,CN=Test,OU=Eng,O=Lyft,L=SF,ST=CA,C=US"`,
		want:   []Element{{{"subject", "emailAddress=a@b.com,CN=Test,OU=Eng,O=Lyft,L=SF,ST=CA,C=US"}}},
	},
	{
		name:   "two elements",
		header: `By=a;Hash=x;URI=b,Hash=y;URI=c`,
		want:   []Element{{{"by", "a"}, {"hash", "x"}, {"uri", "b"}}, {{"hash", "y"}, {"uri", "c"}}},
	},
	{
		name:   "repeated keys",
		header: `By=a;By=b;Hash=h;URI=c;URI=d`,
		want:   []Element{{{"by", "a"}, {"by", "b"}, {"hash", "h"}, {"uri", "c"}, {"uri", "d"}}},
	},
	{
		name:   "mixed case keys",
		header: `by=a;uRi=b;HASH=c;Dns=d;CERT="e";chain="f"`,
		want:   []Element{{{"by", "a"}, {"uri", "b"}, {"hash", "c"}, {"dns", "d"}, {"cert", "e"}, {"chain", "f"}}},
	},
	{
		name:   "legacy SAN",
		header: `By=a;SAN=spiffe://td/x`,
		want:   []Element{{{"by", "a"}, {"uri", "spiffe://td/x"}}},
	},
	{
		name:   "unknown key kept",
		header: `By=a;FooBar=b`,
		want:   []Element{{{"by", "a"}, {"foobar", "b"}}},
	},
	{
		name:   "empty values",
		header: `By=a;URI=;Subject="";DNS=`,
		want:   []Element{{{"by", "a"}, {"uri", ""}, {"subject", ""}, {"dns", ""}}},
	},
	{
		name:   "spaces around separators",
		header: " By=a ;\tURI=\"b\" , Hash=c\t; URI=d ",
		want:   []Element{{{"by", "a"}, {"uri", "b"}}, {{"hash", "c"}, {"uri", "d"}}},
	},
	{
		name:   "space inside unquoted value",
		header: `By=a b;URI= c`,
		want:   []Element{{{"by", "a b"}, {"uri", " c"}}},
	},
	{
		name:   "quoted SPIFFE ID",
		header: `By="spiffe://td/b";URI="spiffe://td/a"`,
		want:   []Element{{{"by", "spiffe://td/b"}, {"uri", "spiffe://td/a"}}},
	},
	{
		name:   "escaped backslash",
		header: `Subject="a\\b\\";URI="\x"`,
		want:   []Element{{{"subject", `a\b\`}, {"uri", "x"}}},
	},
	{
		name:   "backslash outside quotes",
		header: `URI=a\b`,
		want:   []Element{{{"uri", `a\b`}}},
	},
	{
		name:   "unquoted equals",
		header: `URI=https://x/?a=b;DNS=c`,
		want:   []Element{{{"uri", "https://x/?a=b"}, {"dns", "c"}}},
	},
	{
		name:   "invalid UTF-8 value",
		header: "By=\xff\xfe;URI=spiffe://td/\xc3",
		want:   []Element{{{"by", "\xff\xfe"}, {"uri", "spiffe://td/\xc3"}}},
	},
	{
		name:   "crafted earlier element",
		header: `By=spiffe://x/evil;URI=spiffe://x/admin,By=spiffe://example.org/b;URI=spiffe://example.org/a`,
		want: []Element{
			{{"by", "spiffe://x/evil"}, {"uri", "spiffe://x/admin"}},
			{{"by", "spiffe://example.org/b"}, {"uri", "spiffe://example.org/a"}},
		},
	},
	{
		name:   "element boundary inside quoted subject",
		header: `By=spiffe://example.org/b;Subject="CN=x,By=spiffe://evil/y;URI=spiffe://evil/z";URI=spiffe://example.org/a`,
		want: []Element{{
			{"by", "spiffe://example.org/b"},
			{"subject", "CN=x,By=spiffe://evil/y;URI=spiffe://evil/z"},
			{"uri", "spiffe://example.org/a"},
		}},
	},

	{name: "empty header", header: "", wantErr: "empty header"},
	{name: "blank header", header: " \t", wantErr: "empty header"},
	{name: "unterminated quote", header: `By=test;URI="abc;DNS=example.com`, wantErr: "unterminated quoted value at offset 12"},
	{name: "unterminated escape", header: `URI="abc\`, wantErr: "unterminated quoted value at offset 4"},
	{name: "quote inside unquoted value", header: `URI=ab"c"`, wantErr: "quote inside unquoted value at offset 6"},
	{name: "quote after space", header: `URI= "c"`, wantErr: "quote inside unquoted value"},
	{name: "text after closing quote", header: `URI="a"b;By=c`, wantErr: "unexpected character after quoted value at offset 7"},
	{name: "quote after closing quote", header: `URI="a""b"`, wantErr: "unexpected character after quoted value"},
	{name: "missing equals", header: `By=a;URI`, wantErr: "expected '=' after key at offset 8"},
	{name: "missing equals before separator", header: `By;URI=a`, wantErr: "expected '=' after key at offset 2"},
	{name: "empty key", header: `=a`, wantErr: "expected key at offset 0"},
	{name: "space in key", header: `U RI=a`, wantErr: "expected '=' after key"},
	{name: "space before equals", header: `URI =a`, wantErr: "expected '=' after key"},
	{name: "non-letter key", header: `URI2=a`, wantErr: "expected '=' after key"},
	{name: "non-ASCII key", header: `é=a`, wantErr: "expected key"},
	{name: "trailing comma", header: `By=a,`, wantErr: "empty element at offset 5"},
	{name: "leading comma", header: `,By=a`, wantErr: "empty element at offset 0"},
	{name: "empty element", header: `a=b,,c=d`, wantErr: "empty element at offset 4"},
	{name: "blank element", header: `a=b, ,c=d`, wantErr: "empty element at offset 5"},
	{name: "trailing semicolon", header: `By=a;`, wantErr: "expected key at offset 5"},
	{name: "empty pair", header: `By=a;;URI=b`, wantErr: "expected key at offset 5"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.header)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrSyntax)
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			last, err := ParseLast(tt.header)
			require.NoError(t, err)
			assert.Equal(t, tt.want[len(tt.want)-1], last)
		})
	}
}

func TestParseLastValidatesWholeHeader(t *testing.T) {
	_, err := ParseLast(`By=a;URI="b,By=c;URI=d`)
	require.ErrorIs(t, err, ErrSyntax)

	_, err = ParseLast(`By=a"x;URI=b,By=c;URI=d`)
	require.ErrorIs(t, err, ErrSyntax)
}

func TestLimits(t *testing.T) {
	long := "Cert=\"" + strings.Repeat("a", maxHeaderLen) + "\""
	_, err := Parse(long)
	require.ErrorIs(t, err, ErrTooLong)
	assert.NotContains(t, err.Error(), "aaaa")

	elems := strings.Repeat("By=a,", maxElements-1) + "By=a"
	_, err = Parse(elems)
	require.NoError(t, err)
	_, err = Parse(elems + ",By=a")
	require.ErrorIs(t, err, ErrTooLong)

	pairs := strings.Repeat("By=a;", maxPairs-1) + "By=a"
	_, err = Parse(pairs + ",By=a")
	require.NoError(t, err)
	_, err = Parse("By=a," + pairs + ";By=a")
	require.ErrorIs(t, err, ErrTooLong)
	assert.ErrorContains(t, err, "element 2")
}

func TestValues(t *testing.T) {
	elem, err := ParseLast(`By=a;SAN=b;uri=c;Foo=d;By=e`)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "e"}, elem.Values("BY"))
	assert.Equal(t, []string{"b", "c"}, elem.Values("URI"))
	assert.Equal(t, []string{"b", "c"}, elem.Values("san"))
	assert.Equal(t, []string{"d"}, elem.Values("fOO"))
	assert.Nil(t, elem.Values("dns"))
}

func TestHop(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		dst     string
		src     string
		wantErr error
	}{
		{
			name:   "istio",
			header: istioHeader,
			dst:    "spiffe://cluster.local/ns/foo/sa/httpbin",
			src:    "spiffe://cluster.local/ns/foo/sa/curl",
		},
		{
			name:   "append-forward chain",
			header: chainHeader,
			dst:    "spiffe://example.org/ns/default/sa/backend",
			src:    "spiffe://example.org/ns/default/sa/frontend",
		},
		{
			name:   "crafted earlier element",
			header: `By=spiffe://x/evil;URI=spiffe://x/admin,By=spiffe://example.org/b;URI=spiffe://example.org/a`,
			dst:    "spiffe://example.org/b",
			src:    "spiffe://example.org/a",
		},
		{
			name:   "element boundary inside quoted subject",
			header: `By=spiffe://example.org/b;Subject="CN=x,By=spiffe://evil/y;URI=spiffe://evil/z";URI=spiffe://example.org/a`,
			dst:    "spiffe://example.org/b",
			src:    "spiffe://example.org/a",
		},
		{
			name:   "mixed case keys and legacy SAN",
			header: `bY=spiffe://td/b;san=spiffe://td/a`,
			dst:    "spiffe://td/b",
			src:    "spiffe://td/a",
		},
		{
			name:   "quoted SPIFFE IDs",
			header: `By="spiffe://td/b";URI="spiffe://td/a"`,
			dst:    "spiffe://td/b",
			src:    "spiffe://td/a",
		},
		{
			name:   "same ID twice",
			header: `By=spiffe://td/b;URI=spiffe://a/x;URI=spiffe://a/x`,
			dst:    "spiffe://td/b",
			src:    "spiffe://a/x",
		},
		{
			name:   "non-SPIFFE values ignored",
			header: `By=spiffe://td/b;By=;URI=http://foo;URI=spiffe://a/x;URI=`,
			dst:    "spiffe://td/b",
			src:    "spiffe://a/x",
		},
		{name: "ambiguous URI", header: `By=spiffe://td/b;URI=spiffe://a/x;URI=spiffe://a/y`, wantErr: ErrAmbiguousIdentity},
		{name: "ambiguous By", header: `By=spiffe://td/b;By=spiffe://td/c;URI=spiffe://a/x`, wantErr: ErrAmbiguousIdentity},
		{name: "no By", header: `Hash=h;URI=spiffe://a/x`, wantErr: ErrNoIdentity},
		{name: "no By in last element", header: `By=spiffe://td/b;URI=spiffe://a/x,Hash=y;URI=spiffe://a/x`, wantErr: ErrNoIdentity},
		{name: "empty URI", header: `By=spiffe://td/b;URI=`, wantErr: ErrNoIdentity},
		{name: "DNS only", header: `By=spiffe://td/b;DNS=spiffe://a/x`, wantErr: ErrNoIdentity},
		{name: "non-SPIFFE invalid UTF-8", header: "By=\xff;URI=spiffe://a/x", wantErr: ErrNoIdentity},
		{name: "SPIFFE invalid UTF-8", header: "By=spiffe://td/b;URI=spiffe://a/\xff", wantErr: ErrInvalidIdentity},
		{name: "uppercase scheme", header: `By=SPIFFE://td/b;URI=spiffe://a/x`, wantErr: ErrInvalidIdentity},
		{name: "invalid wins over ambiguous", header: `By=spiffe://td/b;URI=spiffe://a/x;URI=spiffe://a/y;URI=spiffe://a/`, wantErr: ErrInvalidIdentity},
		{name: "dot segment", header: `By=spiffe://td/b;URI=spiffe://a/../x`, wantErr: ErrInvalidIdentity},
		{name: "syntax error in earlier element", header: `By=a"b,By=spiffe://td/b;URI=spiffe://a/x`, wantErr: ErrSyntax},
		{name: "too long", header: `By=spiffe://td/b;URI=spiffe://a/x;Cert="` + strings.Repeat("a", maxHeaderLen) + `"`, wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, src, err := Hop(tt.header)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, dst)
				assert.Empty(t, src)
				assert.NotContains(t, err.Error(), "spiffe://")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.dst, dst)
			assert.Equal(t, tt.src, src)
		})
	}
}

func BenchmarkHop(b *testing.B) {
	for _, bb := range []struct {
		name   string
		header string
	}{
		{name: "istio", header: istioHeader},
		{name: "append-forward-3", header: chainHeader},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Hop(bb.header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
