// Package serve hands what the output publishes to OPA over HTTP, in OPA's
// bundle protocol: each object's ETag is its revision, a conditional
// request for the revision in place is answered 304, and a request that
// asks to wait (OPA's long polling, Prefer: wait=N) is held until the
// object changes, its deadline passes or the server stops. Nothing but the
// objects published is ever served.
package serve

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Content types: OPA keeps long polling while bundles come as the first;
// the second is a plain download, which turns its long polling off until
// the next bundle that comes as the first.
const (
	LongPollContentType = "application/vnd.openpolicyagent.bundles"
	PlainContentType    = "application/gzip"
)

// MaxWait bounds how long one request is held, whatever it asks for.
const MaxWait = 10 * time.Minute

// Outcome is what a request got, for the server's metrics.
type Outcome string

const (
	Sent             Outcome = "sent"
	NotModified      Outcome = "not_modified"
	NotFound         Outcome = "not_found"
	Forbidden        Outcome = "forbidden"
	MethodNotAllowed Outcome = "method_not_allowed"
	// WaitingLimit is a long-polling request answered at once with the
	// object as a plain download because max waiting requests were held.
	WaitingLimit Outcome = "waiting_limit"
)

// Server holds the published objects by name and serves them.
type Server struct {
	maxWaiting int
	// Observe, when set, is told every request's outcome, and Waiting
	// every change of the number of requests held (+1, -1).
	Observe func(Outcome)
	Waiting func(delta int64)
	// writeTimeout is the time to write a response once it is decided:
	// a held request's write deadline is pushed past its wait by as much.
	writeTimeout time.Duration

	mu      sync.Mutex
	objects map[string]*object
	held    int
	closed  chan struct{}
	close   sync.Once
}

// object is one published object. Its bytes never change: a new revision
// is a new object, and closing next tells the requests held on this one.
type object struct {
	body []byte
	etag string
	next chan struct{}
}

// New returns a server that holds at most maxWaiting long-polling requests
// at once (0: none; every bundle is then sent as a plain download) and
// gives each response writeTimeout to be written (0: no limit).
func New(maxWaiting int, writeTimeout time.Duration) *Server {
	return &Server{maxWaiting: maxWaiting, writeTimeout: writeTimeout, objects: map[string]*object{}, closed: make(chan struct{})}
}

// Set makes name serve body, whose revision is revision, and releases the
// requests waiting for a new revision of name.
func (s *Server) Set(name, revision string, body []byte) {
	etag := `"` + revision + `"`
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.objects[name]
	switch {
	case old == nil || old.etag != etag:
		s.objects[name] = &object{body: body, etag: etag, next: make(chan struct{})}
		if old != nil {
			close(old.next)
		}
	case !bytes.Equal(old.body, body):
		// The same revision signed again (another key): the new bytes,
		// but nothing new to wake a waiting OPA for.
		s.objects[name] = &object{body: body, etag: etag, next: old.next}
	}
}

// Close releases every held request (answered 304, so OPA keeps its
// bundle) and makes new ones return at once.
func (s *Server) Close() { s.close.Do(func() { close(s.closed) }) }

func (s *Server) get(name string) *object {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objects[name]
}

// ServeHTTP answers GET and HEAD for the published objects only.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.observe(s.serve(w, r))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) Outcome {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return MethodNotAllowed
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/")
	o := s.get(name)
	if !ok || o == nil {
		if traversal(r.URL.Path) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return Forbidden
		}
		http.NotFound(w, r)
		return NotFound
	}
	contentType := LongPollContentType
	if s.maxWaiting == 0 {
		contentType = PlainContentType
	}
	if matches(r.Header.Get("If-None-Match"), o.etag) {
		wait := preferredWait(r.Header)
		if wait == 0 || r.Method == http.MethodHead {
			return notModified(w, o, contentType)
		}
		if !s.hold() {
			// Answering 304 at once would have OPA ask again at once;
			// a plain download sends it back to its polling delay.
			send(w, r, o, PlainContentType)
			return WaitingLimit
		}
		o = s.wait(w, r, name, o, wait)
		s.release()
		if o == nil {
			http.NotFound(w, r)
			return NotFound
		}
		if matches(r.Header.Get("If-None-Match"), o.etag) {
			return notModified(w, o, contentType)
		}
	}
	send(w, r, o, contentType)
	return Sent
}

// wait holds the request until name has a newer object than o, the wait
// is over, the client is gone or the server stops, and returns the object
// in place then.
func (s *Server) wait(w http.ResponseWriter, r *http.Request, name string, o *object, wait time.Duration) *object {
	if s.writeTimeout > 0 {
		// Errors mean the connection cannot have deadlines; then the
		// server's own timeout stands, and a long wait may be cut.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + s.writeTimeout))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-o.next:
	case <-t.C:
	case <-r.Context().Done():
	case <-s.closed:
	}
	return s.get(name)
}

func (s *Server) hold() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return false
	default:
	}
	if s.held >= s.maxWaiting {
		return false
	}
	s.held++
	if s.Waiting != nil {
		s.Waiting(1)
	}
	return true
}

func (s *Server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held--
	if s.Waiting != nil {
		s.Waiting(-1)
	}
}

func (s *Server) observe(o Outcome) {
	if s.Observe != nil {
		s.Observe(o)
	}
}

// headers are what a reply about object o says, answered or not.
func headers(w http.ResponseWriter, o *object, contentType string) http.Header {
	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	return h
}

func notModified(w http.ResponseWriter, o *object, contentType string) Outcome {
	headers(w, o, contentType)
	w.WriteHeader(http.StatusNotModified)
	return NotModified
}

func send(w http.ResponseWriter, r *http.Request, o *object, contentType string) {
	headers(w, o, contentType).Set("Content-Length", strconv.Itoa(len(o.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(o.body)
	}
}

// matches reports whether an If-None-Match header names etag: "*", or a
// list of entity tags, weak or strong (a weak comparison, as RFC 9110 asks
// of If-None-Match), quoted or not.
func matches(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.Trim(etag, `"`)
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		tag = strings.TrimPrefix(tag, "W/")
		if strings.Trim(tag, `"`) == want {
			return true
		}
	}
	return false
}

// preferredWait is the wait=N preference of a Prefer header (RFC 7240;
// OPA sends "modes=snapshot,delta;wait=N"), in seconds, bounded by
// MaxWait; 0 when there is none. A number too large for any clock is
// MaxWait too: answering it at once would have OPA ask again at once.
func preferredWait(h http.Header) time.Duration {
	for _, v := range h.Values("Prefer") {
		for p := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ';' }) {
			name, n, ok := strings.Cut(p, "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			secs, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(n), `"`), 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange), err == nil && secs > uint64(MaxWait/time.Second):
				return MaxWait
			case err != nil:
				return 0
			}
			return time.Duration(secs) * time.Second
		}
	}
	return 0
}

// traversal reports a path that tries to leave the objects: a "." or ".."
// segment, a backslash or a NUL.
func traversal(p string) bool {
	if strings.ContainsAny(p, "\\\x00") {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
