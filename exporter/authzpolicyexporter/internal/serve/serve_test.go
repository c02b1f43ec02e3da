package serve

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

type outcomes struct {
	mu   sync.Mutex
	seen []Outcome
}

func (o *outcomes) add(x Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, x)
}

func newTestServer(t *testing.T, maxWaiting int) (*Server, *httptest.Server, *outcomes) {
	t.Helper()
	s := New(maxWaiting, time.Second)
	o := &outcomes{}
	s.Observe = o.add
	s.Set("bundle.tar.gz", "r1", []byte("full"))
	s.Set("callees/example.org/ns/a/sa/b/bundle.tar.gz", "c1", []byte("callee"))
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return s, hs, o
}

func get(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestServe(t *testing.T) {
	_, hs, _ := newTestServer(t, 10)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		status             int
		body, etag         string
	}{
		{name: "bundle", path: "/bundle.tar.gz", status: 200, body: "full", etag: `"r1"`},
		{name: "callee", path: "/callees/example.org/ns/a/sa/b/bundle.tar.gz", status: 200, body: "callee", etag: `"c1"`},
		{name: "query ignored", path: "/bundle.tar.gz?x=1", status: 200, body: "full", etag: `"r1"`},
		{name: "head", method: http.MethodHead, path: "/bundle.tar.gz", status: 200, etag: `"r1"`},
		{name: "not modified", path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `"r1"`}, status: 304, etag: `"r1"`},
		{name: "not modified unquoted", path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `r1`}, status: 304, etag: `"r1"`},
		{name: "not modified weak in a list", path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `"r0", W/"r1"`}, status: 304, etag: `"r1"`},
		{name: "not modified star", path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `*`}, status: 304, etag: `"r1"`},
		{name: "older revision", path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `"r0"`}, status: 200, body: "full", etag: `"r1"`},
		{name: "head does not wait", method: http.MethodHead, path: "/bundle.tar.gz", header: map[string]string{"If-None-Match": `"r1"`, "Prefer": "wait=30"}, status: 304, etag: `"r1"`},
		{name: "root", path: "/", status: 404},
		{name: "no listing", path: "/callees/", status: 404},
		{name: "directory", path: "/callees/example.org", status: 404},
		{name: "unpublished", path: "/unseen.tar.gz", status: 404},
		{name: "revisions are not served", path: "/revisions/r1.tar.gz", status: 404},
		{name: "double slash", path: "//bundle.tar.gz", status: 404},
		{name: "dot dot", path: "/callees/../bundle.tar.gz", status: 403},
		{name: "encoded dot dot", path: "/callees/%2e%2e/bundle.tar.gz", status: 403},
		{name: "dot", path: "/./bundle.tar.gz", status: 403},
		{name: "backslash", path: "/callees/..%5cbundle.tar.gz", status: 403},
		{name: "nul", path: "/bundle.tar.gz%00", status: 403},
		{name: "post", method: http.MethodPost, path: "/bundle.tar.gz", status: 405},
		{name: "put", method: http.MethodPut, path: "/bundle.tar.gz", status: 405},
		{name: "delete", method: http.MethodDelete, path: "/bundle.tar.gz", status: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			resp, body := get(t, method, hs.URL+tc.path, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.etag, resp.Header.Get("ETag"))
			switch tc.status {
			case 200:
				assert.Equal(t, tc.body, body)
				assert.Equal(t, LongPollContentType, resp.Header.Get("Content-Type"))
			case 405:
				assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
			}
			if tc.status >= 400 {
				assert.NotContains(t, body, "full")
			}
		})
	}
}

// longPoll sends what OPA sends once it long-polls.
func longPoll(t *testing.T, url, etag string, wait int) chan *http.Response {
	t.Helper()
	ch := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("If-None-Match", etag)
		req.Header.Set("Prefer", "modes=snapshot,delta;wait="+strconv.Itoa(wait))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(ch)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ch <- resp
	}()
	return ch
}

func heldRequests(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func TestLongPollReleasedByNewRevision(t *testing.T) {
	s, hs, _ := newTestServer(t, 10)
	held := longPoll(t, hs.URL+"/bundle.tar.gz", `"r1"`, 9)
	require.Eventually(t, func() bool { return heldRequests(s) == 1 }, 5*time.Second, time.Millisecond)

	// Another object's revision and the same revision again wake nothing.
	s.Set("callees/example.org/ns/a/sa/b/bundle.tar.gz", "c2", []byte("callee 2"))
	s.Set("bundle.tar.gz", "r1", []byte("full"))
	select {
	case <-held:
		t.Fatal("released without a new revision of its object")
	case <-time.After(50 * time.Millisecond):
	}

	s.Set("bundle.tar.gz", "r2", []byte("full 2"))
	resp := <-held
	require.NotNil(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `"r2"`, resp.Header.Get("ETag"))
	assert.Equal(t, LongPollContentType, resp.Header.Get("Content-Type"), "OPA keeps long polling")
	assert.Equal(t, 0, heldRequests(s))
}

// A held request ends at its deadline as not modified; one for an older
// revision is not held.
func TestLongPollAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, etag string
		wait       int
		status     int
	}{
		{"deadline", `"r1"`, 1, 304},
		{"older revision", `"r0"`, 9, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs, _ := newTestServer(t, 10)
			resp := <-longPoll(t, hs.URL+"/bundle.tar.gz", tc.etag, tc.wait)
			require.NotNil(t, resp)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, `"r1"`, resp.Header.Get("ETag"))
			assert.Equal(t, 0, heldRequests(s))
		})
	}
}

func TestWaitingLimit(t *testing.T) {
	s, hs, o := newTestServer(t, 2)
	first := longPoll(t, hs.URL+"/bundle.tar.gz", `"r1"`, 9)
	second := longPoll(t, hs.URL+"/callees/example.org/ns/a/sa/b/bundle.tar.gz", `"c1"`, 9)
	require.Eventually(t, func() bool { return heldRequests(s) == 2 }, 5*time.Second, time.Millisecond)

	// Beyond the limit: the object as a plain download, which sends OPA
	// back to its polling delay instead of asking again at once.
	resp := <-longPoll(t, hs.URL+"/bundle.tar.gz", `"r1"`, 9)
	require.NotNil(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, PlainContentType, resp.Header.Get("Content-Type"))
	assert.Equal(t, 2, heldRequests(s), "the limit holds")
	o.mu.Lock()
	assert.Contains(t, o.seen, WaitingLimit)
	o.mu.Unlock()

	// Shutdown releases the held requests, as not modified.
	s.Close()
	for _, ch := range []chan *http.Response{first, second} {
		resp := <-ch
		require.NotNil(t, resp)
		assert.Equal(t, 304, resp.StatusCode)
	}
	assert.Equal(t, 0, heldRequests(s))
	// And holds no new one.
	resp = <-longPoll(t, hs.URL+"/bundle.tar.gz", `"r1"`, 9)
	require.NotNil(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
}

func TestNoLongPolling(t *testing.T) {
	_, hs, _ := newTestServer(t, 0)
	resp, _ := get(t, http.MethodGet, hs.URL+"/bundle.tar.gz", nil)
	assert.Equal(t, PlainContentType, resp.Header.Get("Content-Type"), "a server that holds no request must not ask OPA to long-poll")
}

func TestSameRevisionNewBytes(t *testing.T) {
	s, hs, _ := newTestServer(t, 10)
	s.Set("bundle.tar.gz", "r1", []byte("full, signed again"))
	_, body := get(t, http.MethodGet, hs.URL+"/bundle.tar.gz", nil)
	assert.Equal(t, "full, signed again", body)
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false}, {`"r1"`, true}, {`r1`, true}, {`W/"r1"`, true}, {`"r0" , "r1"`, true},
		{`*`, true}, {`"r10"`, false}, {`"r"`, false}, {`,`, false},
	} {
		assert.Equal(t, tc.want, matches(tc.header, `"r1"`), tc.header)
	}
}

func TestPreferredWait(t *testing.T) {
	for _, tc := range []struct {
		prefer string
		want   time.Duration
	}{
		{"", 0}, {"modes=snapshot,delta", 0}, {"modes=snapshot,delta;wait=30", 30 * time.Second},
		{"wait=5", 5 * time.Second}, {" wait = 5", 5 * time.Second}, {"Wait=5", 5 * time.Second}, {"respond-async, wait=7", 7 * time.Second},
		{"wait=0", 0}, {"wait=-1", 0}, {"wait=abc", 0}, {"wait=99999999999", MaxWait}, {"wait=99999999999999999999999", MaxWait},
		{"wait=86400", MaxWait},
	} {
		h := http.Header{}
		if tc.prefer != "" {
			h.Set("Prefer", tc.prefer)
		}
		assert.Equal(t, tc.want, preferredWait(h), tc.prefer)
	}
}

// A mirror serves what would be published and writes nothing to the
// output; it reads the output as it is.
func TestMirroringWritesNothing(t *testing.T) {
	dir := t.TempDir()
	out := publish.NewDir(dir)
	_, err := out.PublishObject(context.Background(), "callees/a/bundle.tar.gz", "c0", []byte("in place"))
	require.NoError(t, err)
	s := New(1, time.Second)
	m := Mirroring(out, s)

	_, err = m.Publish(context.Background(), &render.Bundle{Revision: "r1", Tarball: []byte("full")})
	require.NoError(t, err)
	_, err = m.PublishObject(context.Background(), "callees/a/bundle.tar.gz", "c1", []byte("callee"))
	require.NoError(t, err)
	assert.Equal(t, `"r1"`, s.get("bundle.tar.gz").etag)
	assert.Equal(t, `"c1"`, s.get("callees/a/bundle.tar.gz").etag)
	assert.Error(t, m.DeleteObject(context.Background(), "callees/a/bundle.tar.gz"))

	keys, err := m.ListObjects(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"callees/a/bundle.tar.gz"}, keys, "the output is read as it is, and nothing was written to it")
	got, err := out.ReadObject(context.Background(), "callees/a/bundle.tar.gz", 100)
	require.NoError(t, err)
	assert.Equal(t, "in place", string(got))
}
