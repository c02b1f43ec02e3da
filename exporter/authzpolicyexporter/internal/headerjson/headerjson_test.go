package headerjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const xfcc = "x-forwarded-client-cert"

func TestFind(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string
		found     bool
		err       bool
	}{
		{"pixie", `{"host":"balances:8080","x-forwarded-client-cert":"By=spiffe://a/b;URI=spiffe://a/c","accept":"*/*"}`, "By=spiffe://a/b;URI=spiffe://a/c", true, false},
		{"case-insensitive name", `{"X-Forwarded-Client-Cert":"v"}`, "v", true, false},
		{"absent", `{"host":"x"}`, "", false, false},
		{"empty object", ` { } `, "", false, false},
		{"array value", `{"x-forwarded-client-cert":["a","b"]}`, "a,b", true, false},
		{"repeated in document order", `{"X-Forwarded-Client-Cert":"a","x-forwarded-client-cert":"b"}`, "a,b", true, false},
		{"escaped quotes", `{"x-forwarded-client-cert":"By=a;Subject=\"CN=x,O=y\";URI=b"}`, `By=a;Subject="CN=x,O=y";URI=b`, true, false},
		{"escaped key", `{"x-forwarded-client-cer\u0074":"v"}`, "v", true, false},
		{"skips nested values", `{"a":{"b":[1,2,{"c":null}]},"n":12.5e3,"t":true,"x-forwarded-client-cert":"v"}`, "v", true, false},
		{"whitespace", "{\n \"x-forwarded-client-cert\" :\t\"v\" \n}", "v", true, false},
		{"text after the object is ignored", `{"x-forwarded-client-cert":"v"} trailing`, "v", true, false},
		{"truncated by pixie", `{"x-forwarded-client-cert":"By=spiffe://a/b;URI=spi`, "", false, true},
		{"truncated after the header", `{"x-forwarded-client-cert":"v","user-agent":"cu`, "", false, true},
		{"not an object", `["x-forwarded-client-cert"]`, "", false, true},
		{"empty", ``, "", false, true},
		{"number value for the header", `{"x-forwarded-client-cert":12}`, "", false, true},
		{"control character", "{\"x-forwarded-client-cert\":\"a\nb\"}", "", false, true},
		{"missing colon", `{"x-forwarded-client-cert" "v"}`, "", false, true},
		{"missing comma", `{"a":"b" "x-forwarded-client-cert":"v"}`, "", false, true},
		{"deep nesting", `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := Find(tt.doc, xfcc)
			if tt.err {
				assert.ErrorIs(t, err, ErrSyntax)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.found, found)
			assert.Equal(t, tt.want, got)
		})
	}
}

// reference finds the header with encoding/json's streaming decoder.
func reference(doc, name string) (string, bool, bool) {
	dec := json.NewDecoder(strings.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false, false
	}
	var values []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false, false
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false, false
		}
		if !strings.EqualFold(key, name) {
			continue
		}
		var one string
		if json.Unmarshal(raw, &one) == nil {
			values = append(values, one)
			continue
		}
		var many []string
		if json.Unmarshal(raw, &many) != nil {
			return "", false, false
		}
		values = append(values, many...)
	}
	if _, err := dec.Token(); err != nil {
		return "", false, false
	}
	return strings.Join(values, ","), len(values) > 0, true
}

func FuzzFind(f *testing.F) {
	f.Add(`{"host":"x","x-forwarded-client-cert":"By=a;URI=b"}`)
	f.Add(`{"X-Forwarded-Client-Cert":["a","b"],"n":[1,{"c":null}]}`)
	f.Add(`{"x-forwarded-client-cert":"a\"b\\c\u0041"}`)
	f.Add(`{"x-forwarded-client-cert":"By=spiffe://a/b;URI=spi`)
	f.Fuzz(func(t *testing.T, doc string) {
		got, found, err := Find(doc, xfcc)
		if !utf8.ValidString(doc) {
			return // encoding/json replaces invalid UTF-8; Find keeps bytes
		}
		want, wantFound, ok := reference(doc, xfcc)
		if !ok {
			return // Find may accept loosely-checked skipped scalars
		}
		if err != nil {
			if strings.Count(doc, "[")+strings.Count(doc, "{") <= maxDepth {
				t.Fatalf("Find refused a valid document: %v", err)
			}
			return
		}
		if got != want || found != wantFound {
			t.Fatalf("Find = %q, %v; encoding/json = %q, %v", got, found, want, wantFound)
		}
	})
}

func BenchmarkFind(b *testing.B) {
	doc := `{"host":"balances.bank.svc:8080","user-agent":"curl/8.5.0","accept":"*/*",` +
		`"x-forwarded-client-cert":"By=spiffe://example.org/ns/bank/sa/balances;Hash=5f4dcc3b5aa765d61d8327deb882cf99;Subject=\"\";URI=spiffe://example.org/ns/bank/sa/frontend",` +
		`"x-request-id":"6f1c2c9e-4a0b-4b8e-9d53-2f1d7a0e9b11"}`
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok, err := Find(doc, xfcc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// A document that ends inside the object was cut on its way (Pixie cuts the
// header map at 8 KiB): that is ErrTruncated, anything else malformed is
// only ErrSyntax.
func TestFindTellsTruncatedFromMalformed(t *testing.T) {
	for _, tt := range []struct {
		doc       string
		truncated bool
	}{
		{`{"x-forwarded-client-cert":"By=spiffe://a/b;URI=spi`, true},
		{`{"x-forwarded-client-cert":"v","user-agent":"cu`, true},
		{`{"x-forwarded-client-cert":"v",`, true},
		{`{"x-forwarded-client-cert":"v\`, true},
		{`{"a":[1,2`, true},
		{`{"a":12`, true},
		{`{`, true},
		{`{"x-forwarded-client-cert" "v"}`, false},
		{`{"a":"b" "x-forwarded-client-cert":"v"}`, false},
		{`["x-forwarded-client-cert"]`, false},
		{"{\"x-forwarded-client-cert\":\"a\nb\"}", false},
	} {
		_, _, err := Find(tt.doc, xfcc)
		require.ErrorIs(t, err, ErrSyntax, tt.doc)
		assert.Equal(t, tt.truncated, errors.Is(err, ErrTruncated), tt.doc)
	}
}

func TestFindEach(t *testing.T) {
	names := []string{"grpc-status", "content-type", "absent"}
	var got []string
	collect := func(i int, v string) { got = append(got, names[i]+"="+v) }
	doc := `{":status":"200","Content-Type":"application/grpc","grpc-status":"0","grpc-status":["7","8"]}`
	require.NoError(t, FindEach(doc, names, nil, collect))
	assert.Equal(t, []string{"content-type=application/grpc", "grpc-status=0", "grpc-status=7", "grpc-status=8"}, got)

	got = nil
	require.ErrorIs(t, FindEach(`{"grpc-status":"0",`, names, nil, collect), ErrTruncated)
	require.NoError(t, FindEach(`{}`, names, nil, func(int, string) { t.Fatal("nothing to find") }))

	// Unescaped into an arena, values stay what they were as it grows.
	var arena strings.Builder
	var values []string
	for i := 0; i < 100; i++ {
		doc := fmt.Sprintf(`{"grpc-status":"%d","content-type":"a\"b\\c\/%d"}`, i, i)
		require.NoError(t, FindEach(doc, names, &arena, func(_ int, v string) { values = append(values, v) }))
	}
	for i := 0; i < 100; i++ {
		assert.Equal(t, []string{fmt.Sprint(i), fmt.Sprintf(`a"b\c/%d`, i)}, values[2*i:2*i+2])
	}
}

func TestHasControl(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"", false},
		{"plain ascii text, longer than eight", false},
		{"\x1f", true},
		{"abcdefgh\x00", true},
		{"abc\nefghij", true},
		{"\x7f\x80\xa0\xff\x20\x21\xc3\xa9 ok", false},
		{"\xa0\xa0\xa0\xa0\xa0\xa0\xa0\x01", true},
	} {
		assert.Equal(t, tt.want, hasControl(tt.s), "%q", tt.s)
	}
}
