package serve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzServe sends any path and conditional headers: the server never
// panics, answers only with the statuses of its protocol, and sends bytes
// only of an object published under exactly the requested name.
func FuzzServe(f *testing.F) {
	for _, seed := range [][3]string{
		{"/bundle.tar.gz", "", ""},
		{"/bundle.tar.gz", `"r1"`, "modes=snapshot,delta;wait=30"},
		{"/callees/example.org/ns/a/sa/b/bundle.tar.gz", `W/"c1", *`, "wait=1"},
		{"/callees/../bundle.tar.gz", "", ""},
		{"/%2e%2e/%00", "", "wait=99999999999999999999"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	s := New(4, time.Second)
	objects := map[string]string{
		"bundle.tar.gz": "full",
		"callees/example.org/ns/a/sa/b/bundle.tar.gz": "callee",
	}
	for name, body := range objects {
		s.Set(name, "r1", []byte(body))
	}
	// Closed: a request that would be held is answered at once.
	s.Close()
	f.Fuzz(func(t *testing.T, path, inm, prefer string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = path
		req.Header.Set("If-None-Match", inm)
		req.Header.Set("Prefer", prefer)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		name := strings.TrimPrefix(path, "/")
		body, published := objects[name]
		switch w.Code {
		case http.StatusOK:
			if !published || !strings.HasPrefix(path, "/") || w.Body.String() != body {
				t.Fatalf("%q served %q", path, w.Body.String())
			}
		case http.StatusNotModified:
			if !published || w.Body.Len() != 0 {
				t.Fatalf("%q: 304 for an object not published", path)
			}
		case http.StatusNotFound, http.StatusForbidden:
			if published && strings.HasPrefix(path, "/") {
				t.Fatalf("%q: %d for a published object", path, w.Code)
			}
		default:
			t.Fatalf("%q: status %d", path, w.Code)
		}
	})
}
