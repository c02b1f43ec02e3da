package spiffeid

import (
	"strings"
	"testing"
	"unicode"
)

func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		"spiffe://cluster.local/ns/foo/sa/curl",
		"spiffe://example.org",
		"SPIFFE://example.org/x",
		"spiffe://Example.org/x",
		"spiffe://",
		"spiffe://td/",
		"spiffe://td//a",
		"spiffe://td/a/../b",
		"spiffe://td/a,b",
		`spiffe://td/a"b`,
		"spiffe://td/a;b=c d",
		"spiffe://td/%2e",
		"spiffe://td/a\xff",
		"spiffe://td:8080/x",
		"spiffe://u@td/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) != nil {
			return
		}
		segs := Segments(id)
		if got := "spiffe://" + strings.Join(segs, "/"); got != id {
			t.Fatalf("Segments(%q) = %q, which rebuilds %q", id, segs, got)
		}
		if td := TrustDomain(id); td != segs[0] {
			t.Fatalf("TrustDomain(%q) = %q, want %q", id, td, segs[0])
		}
		if strings.ContainsAny(id, `,;="\`) || strings.ContainsFunc(id, unicode.IsSpace) {
			t.Fatalf("Validate accepted %q, which contains a separator or whitespace", id)
		}
	})
}
