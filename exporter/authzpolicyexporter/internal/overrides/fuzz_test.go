package overrides

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "overrides.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		"allow: []",
		rule("methods", "[get]"),
		rule("routes", `["/a/**/b", "/{x}/{y:int}/**"]`),
		"allow:\n  - callee: &a '*'\n    caller: *a\n",
		"allow: [{callee: '*', caller: '*', methods: ['*'], routes: ['/**']}]\n---\n",
		"? [a]\n: b\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err != nil {
			if s != nil || !strings.HasPrefix(err.Error(), "f.yaml:") {
				t.Fatalf("Parse error %q with set %v", err, s)
			}
			return
		}
		for _, r := range slices.Concat(s.Allow, s.Deny) {
			if r.Line < 1 || len(r.Routes) == 0 || r.Methods != nil && len(r.Methods) == 0 {
				t.Fatalf("incomplete rule %+v", r)
			}
			if !slices.IsSorted(r.Methods) || len(slices.Compact(slices.Clone(r.Methods))) != len(r.Methods) {
				t.Fatalf("methods %q not sorted and unique", r.Methods)
			}
			for _, rt := range r.Routes {
				again, err := parseRoute(rt.Text)
				if err != nil || !slices.Equal(again.Segments, rt.Segments) || again.Rest != rt.Rest {
					t.Fatalf("route %q parses again to %+v, %v", rt.Text, again, err)
				}
			}
		}
	})
}

// values are candidate segments for a learned wildcard, chosen around the
// edges of the types.
var values = []string{
	"", ".", "..", "0", "7", "42", "a", "f", "a1", "ff0", "0x1f", "DEADBEEF1", "deadbeef",
	"00000000-0000-0000-0000-000000000000", "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
	"0a1b2c3d-0000-4000-8000-00000000000f", "v1.2", "user_9", "~x", ".a", "..b", "-", "_", "abc",
}

// FuzzCovers checks Covers against Match on the paths a learned route
// admits: what Covers says is covered must match.
func FuzzCovers(f *testing.F) {
	for _, seed := range [][3]string{
		{"/**", "/a/{int}", "x"},
		{"/users/{id}", "/users/{token}", "a b"},
		{"/users/{id:hex}", "/users/{int}", "1"},
		{"/users/{id:int}/**", "/users/{hex}/x", "ab1"},
		{"/u/{id:id}/x", "/u/{uuid}/x", "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"},
		{"/u/0", "/u/{int}", "0"},
		{"/", "/", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	anyID, err := spiffeid.ParsePattern("*")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text, key, extra string) {
		own, err := parseRoute(text)
		if err != nil {
			return
		}
		learned, err := route.ParseKey(key)
		if err != nil || len(learned) > 6 {
			return
		}
		r := Rule{Callee: anyID, Caller: anyID, Routes: []Route{own}}
		covers := r.Covers(bank, front, "GET", learned)
		// The rule's own literals and the fuzzer's value are the likeliest
		// to tell types apart.
		cands := append(slices.Clone(values), extra)
		for _, s := range own.Segments {
			cands = append(cands, s.Lit)
		}
		choices := make([][]string, len(learned))
		for i, s := range learned {
			if s.Wild == 0 {
				choices[i] = []string{s.Lit}
				continue
			}
			for _, v := range cands {
				if s.Wild.Matches(v) {
					choices[i] = append(choices[i], v)
				}
			}
		}
		eachPath(choices, 512, func(segs []string) {
			if !learned.Match(segs) {
				t.Fatalf("%q does not admit its own sample %q", key, segs)
			}
			if covers && !r.Match(bank, front, "GET", segs) {
				t.Fatalf("%q covers %q but does not match %q", text, key, segs)
			}
		})
	})
}

// eachPath calls f with up to limit paths that take segment i from
// choices[i], varying the last segments fastest.
func eachPath(choices [][]string, limit int, f func([]string)) {
	idx := make([]int, len(choices))
	segs := make([]string, len(choices))
	for n := 0; n < limit; n++ {
		for i, c := range idx {
			segs[i] = choices[i][c]
		}
		f(segs)
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(choices[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}
