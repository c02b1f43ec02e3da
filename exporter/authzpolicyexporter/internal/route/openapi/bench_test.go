package openapi

import (
	"fmt"
	"strings"
	"testing"
)

// spec200 is a document of 200 operations: 50 resources, each with a
// collection, an item by integer id, an item by uuid with a sub-resource,
// and a status enum.
func spec200(tb testing.TB) *Spec {
	var b strings.Builder
	b.WriteString("openapi: 3.0.0\ninfo: {title: big, version: \"1\"}\nservers: [{url: /api/v1}]\npaths:\n")
	for i := range 50 {
		fmt.Fprintf(&b, `  /r%[1]d:
    get: {responses: {"200": {description: ok}}}
  /r%[1]d/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
  /r%[1]d/{key}/sub:
    post:
      parameters: [{name: key, in: path, required: true, schema: {type: string, format: uuid}}]
      responses: {"200": {description: ok}}
  /r%[1]d/by-status/{s}:
    get:
      parameters: [{name: s, in: path, required: true, schema: {enum: [new, open, closed, archived]}}]
      responses: {"200": {description: ok}}
`, i)
	}
	s, err := Parse([]byte(b.String()), "big")
	if err != nil {
		tb.Fatal(err)
	}
	if len(s.Operations) != 200 {
		tb.Fatalf("%d operations", len(s.Operations))
	}
	return s
}

func BenchmarkMatch(b *testing.B) {
	s := spec200(b)
	for _, c := range []struct{ name, method, path string }{
		{"literal", "GET", "/api/v1/r49"},
		{"int", "GET", "/api/v1/r49/12345"},
		{"uuid", "POST", "/api/v1/r49/123e4567-e89b-12d3-a456-426614174000/sub"},
		{"enum", "GET", "/api/v1/r49/by-status/closed"},
		{"none", "GET", "/api/v1/r49/abc"},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, want := s.Match(c.method, c.path)
			if want != (c.name != "none") {
				b.Fatalf("match %v", want)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Match(c.method, c.path)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	spec200(b)
	for b.Loop() {
		spec200(b)
	}
}
