package xfcc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.header)
	}
	f.Add(chainHeader)
	f.Add(`By=spiffe://td/b;URI=spiffe://a/x;URI=spiffe://a/y`)
	f.Add(`By=spiffe://td/b;URI=http://foo;URI=spiffe://a/x`)
	f.Add(`By=SPIFFE://td/b;URI=spiffe://a/../x`)

	f.Fuzz(func(t *testing.T, header string) {
		elems, err := Parse(header)

		last, lastErr := ParseLast(header)
		dst, src, hopErr := Hop(header)
		for _, id := range []string{dst, src} {
			if id != "" && spiffeid.Validate(id) != nil {
				t.Fatalf("Hop(%q) returned invalid SPIFFE ID %q", header, id)
			}
		}
		if (dst == "") != (hopErr != nil) || (src == "") != (hopErr != nil) {
			t.Fatalf("Hop(%q) = %q, %q, %v", header, dst, src, hopErr)
		}

		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("Parse(%q) returned unexpected error %v", header, err)
			}
			if lastErr == nil || lastErr.Error() != err.Error() {
				t.Fatalf("ParseLast(%q) error %v, Parse error %v", header, lastErr, err)
			}
			if hopErr == nil || hopErr.Error() != err.Error() {
				t.Fatalf("Hop(%q) error %v, Parse error %v", header, hopErr, err)
			}
			return
		}
		if lastErr != nil {
			t.Fatalf("ParseLast(%q) failed where Parse succeeded: %v", header, lastErr)
		}
		if !reflect.DeepEqual(last, elems[len(elems)-1]) {
			t.Fatalf("ParseLast(%q) = %q, last element of Parse is %q", header, last, elems[len(elems)-1])
		}

		encoded := encode(elems)
		if len(encoded) > maxHeaderLen {
			// Quoting can grow a header that was just under the limit.
			return
		}
		again, err := Parse(encoded)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which re-encodes to %q that fails: %v", header, elems, encoded, err)
		}
		if !reflect.DeepEqual(again, elems) {
			t.Fatalf("Parse(%q) = %q, which re-encodes to %q that parses as %q", header, elems, encoded, again)
		}
	})
}

// encode writes elements back in the header syntax, quoting only the values
// that need it.
func encode(elems []Element) string {
	var b strings.Builder
	for i, elem := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, p := range elem {
			if j > 0 {
				b.WriteByte(';')
			}
			b.WriteString(p.Key)
			b.WriteByte('=')
			if !needsQuotes(p.Value) {
				b.WriteString(p.Value)
				continue
			}
			b.WriteByte('"')
			for k := 0; k < len(p.Value); k++ {
				if c := p.Value[k]; c == '"' || c == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(p.Value[k])
			}
			b.WriteByte('"')
		}
	}
	return b.String()
}

func needsQuotes(v string) bool {
	return strings.ContainsAny(v, `,;="\`) || strings.TrimSpace(v) != v
}
