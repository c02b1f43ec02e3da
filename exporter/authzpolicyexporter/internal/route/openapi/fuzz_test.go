package openapi

import (
	"slices"
	"strings"
	"testing"
)

// FuzzMatch: Match never panics, and a path it matches to an operation
// satisfies every slot of that operation, which has the request's method;
// no operation earlier in matching order admits the path.
func FuzzMatch(f *testing.F) {
	var specs []*Spec
	for _, file := range []string{"shop-3.0.yaml", "pets-3.1.json", "store-2.0.yaml", "noservers.yaml"} {
		specs = append(specs, load(f, file))
	}
	for _, tc := range matches {
		f.Add(tc.method, tc.path)
	}
	f.Add("GET", "/api/v1/orders/by-status/open/")
	f.Add("GET", "//")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, method, path string) {
		for _, s := range specs {
			op, ok := s.Match(method, path)
			if !ok {
				if op != nil {
					t.Fatal("an operation without a match")
				}
				continue
			}
			if op.Method != method || !strings.HasPrefix(path, "/") {
				t.Fatalf("%s %s matched %s", method, path, op)
			}
			segs := strings.Split(path[1:], "/")
			if len(segs) != len(op.Segments) {
				t.Fatalf("%s matched %s of %d segments", path, op, len(op.Segments))
			}
			for i := range op.Segments {
				if !op.Segments[i].Matches(segs[i]) {
					t.Fatalf("%s matched %s, slot %d does not admit %q", path, op, i, segs[i])
				}
			}
			r, enums := op.Template()
			for i, seg := range r {
				if vals, ok := enums[i]; ok {
					if !slices.Contains(vals, segs[i]) {
						t.Fatalf("%s: enum %d lacks %q", op, i, segs[i])
					}
				} else if seg.Wild == 0 && seg.Lit != segs[i] || seg.Wild != 0 && !seg.Wild.Matches(segs[i]) {
					t.Fatalf("%s: route %s does not admit %q", op, r, path)
				}
			}
			for i := range s.Operations {
				other := &s.Operations[i]
				if other == op {
					break
				}
				if other.Method == method && other.match(segs) {
					t.Fatalf("%s matched %s, but %s comes first", path, op, other)
				}
			}
		}
	})
}
