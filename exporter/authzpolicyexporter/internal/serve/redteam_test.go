package serve

// Red-team tests of the bundle server. TestRedteamHolds* document an
// attack that held up; the others are regression tests of what a red
// team found.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.uber.org/goleak"
)

// rawRequest writes request verbatim on a new connection and returns the
// status line and the body.
func rawRequest(t *testing.T, addr, request string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "error: " + err.Error(), ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Status, string(body)
}

// Path and request-target tricks never reach an object under a name other
// than the one it was published under (except the encoded-slash alias,
// which reaches the same object under the same name once decoded).
func TestRedteamHoldsPathTricks(t *testing.T) {
	s, hs, _ := newTestServer(t, 10)
	s.Set("unseen.tar.gz", "u1", []byte("unseen"))
	addr := strings.TrimPrefix(hs.URL, "http://")
	long := "/" + strings.Repeat("a/", 4000) + "bundle.tar.gz"
	for _, tc := range []struct {
		name, target, method, host string
		wantPrefix, body           string
	}{
		{name: "absolute-form", target: "http://evil.example/bundle.tar.gz", wantPrefix: "200", body: "full"},
		{name: "absolute-form other path", target: "http://evil.example/unseen.tar.gz", wantPrefix: "200", body: "unseen"},
		{name: "asterisk", target: "*", wantPrefix: "404"},
		// net/http answers OPTIONS * itself, with no body.
		{name: "asterisk options", target: "*", method: "OPTIONS", wantPrefix: "200"},
		{name: "options", target: "/bundle.tar.gz", method: "OPTIONS", wantPrefix: "405"},
		{name: "trace", target: "/bundle.tar.gz", method: "TRACE", wantPrefix: "405"},
		{name: "connect", target: "bundle.tar.gz:443", method: "CONNECT", wantPrefix: "405"},
		{name: "lowercase get", target: "/bundle.tar.gz", method: "get", wantPrefix: "405"},
		{name: "no leading slash", target: "bundle.tar.gz", wantPrefix: "400"},
		{name: "encoded slash", target: "/callees%2Fexample.org%2Fns%2Fa%2Fsa%2Fb%2Fbundle.tar.gz", wantPrefix: "200", body: "callee"},
		{name: "double slash inside", target: "/callees//example.org/ns/a/sa/b/bundle.tar.gz", wantPrefix: "404"},
		{name: "trailing slash", target: "/bundle.tar.gz/", wantPrefix: "404"},
		{name: "encoded leading slash", target: "/%2Fbundle.tar.gz", wantPrefix: "404"},
		{name: "fragment-ish", target: "/bundle.tar.gz%23x", wantPrefix: "404"},
		{name: "semicolon", target: "/bundle.tar.gz;x", wantPrefix: "404"},
		{name: "fullwidth dot", target: "/callees/%EF%BC%8E%EF%BC%8E/bundle.tar.gz", wantPrefix: "404"},
		{name: "overlong utf8 dot", target: "/callees/%C0%AE%C0%AE/bundle.tar.gz", wantPrefix: "404"},
		{name: "upper case", target: "/BUNDLE.TAR.GZ", wantPrefix: "404"},
		{name: "very long", target: long, wantPrefix: "404"},
		{name: "host game", target: "/bundle.tar.gz", host: "evil.example", wantPrefix: "200", body: "full"},
		{name: "host traversal", target: "/bundle.tar.gz", host: "../../etc", wantPrefix: "400"},
		{name: "bad escape", target: "/bundle.tar.gz%zz", wantPrefix: "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, host := tc.method, tc.host
			if method == "" {
				method = "GET"
			}
			if host == "" {
				host = addr
			}
			status, body := rawRequest(t, addr, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, tc.target, host))
			assert.True(t, strings.HasPrefix(status, tc.wantPrefix), "status %q", status)
			if tc.body != "" {
				assert.Equal(t, tc.body, body)
			} else {
				assert.NotContains(t, body, "full")
				assert.NotContains(t, body, "callee")
			}
		})
	}
}

// OPA accepts any long_polling_timeout_seconds >= 1. A wait beyond
// uint32 seconds was read as "no wait", so the request was answered 304
// at once; OPA keeps long polling after a 304 and asks again with no
// delay: a busy loop. So did an RFC 7240 preference with whitespace
// around "=" (BWS is allowed by its grammar), though OPA does not send it.
// Both are held now, until the server stops.
func TestRedteamHugeWaitIsHeld(t *testing.T) {
	for _, prefer := range []string{"modes=snapshot,delta;wait=4294967296", "modes=snapshot,delta;wait = 2"} {
		t.Run(prefer, func(t *testing.T) {
			s, hs, _ := newTestServer(t, 10)
			done := make(chan int, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, hs.URL+"/bundle.tar.gz", nil)
				req.Header.Set("If-None-Match", `"r1"`)
				req.Header.Set("Prefer", prefer)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			require.Eventually(t, func() bool { return heldRequests(s) == 1 }, 5*time.Second, time.Millisecond,
				"an immediate 304 with the long-poll content type to a long-poll request makes OPA ask again at once")
			s.Close()
			assert.Equal(t, http.StatusNotModified, <-done)
		})
	}
}

// The server's write timeout is shorter than the wait: the held request
// must still be answered, through the collector's HTTP server (otelhttp
// and the other wrappers around the handler), both when a revision comes
// and when the wait ends.
func TestRedteamHoldsWaitBeyondWriteTimeoutThroughListen(t *testing.T) {
	s, addr := listen(t, 10, func(c *confighttp.ServerConfig) { c.WriteTimeout = 500 * time.Millisecond })
	s.Set("bundle.tar.gz", "r1", []byte("full"))

	deadline := longPoll(t, "http://"+addr+"/bundle.tar.gz", `"r1"`, 2)
	released := longPoll(t, "http://"+addr+"/bundle.tar.gz", `"r1"`, 5)
	require.Eventually(t, func() bool { return heldRequests(s) == 2 }, 5*time.Second, time.Millisecond)
	resp := <-deadline
	require.NotNil(t, resp, "a wait longer than write_timeout was cut")
	assert.Equal(t, 304, resp.StatusCode)
	s.Set("bundle.tar.gz", "r2", bytes.Repeat([]byte("x"), 1<<20))
	resp = <-released
	require.NotNil(t, resp, "a wait longer than write_timeout was cut")
	assert.Equal(t, 200, resp.StatusCode)
}

// read_timeout (a confighttp setting serve accepts) does not cut a held
// request: it is held for OPA's wait.
func TestRedteamHoldsReadTimeoutDoesNotCutLongPoll(t *testing.T) {
	s, addr := listen(t, 10, func(c *confighttp.ServerConfig) { c.ReadTimeout = 500 * time.Millisecond })
	s.Set("bundle.tar.gz", "r1", []byte("full"))
	start := time.Now()
	resp := <-longPoll(t, "http://"+addr+"/bundle.tar.gz", `"r1"`, 3)
	require.NotNil(t, resp)
	assert.Equal(t, 304, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 3*time.Second, "held for OPA's wait, not for read_timeout")
}

// No more than max_waiting requests are held however many ask, the rest
// are answered at once, and requests whose clients go away are released.
func TestRedteamHoldsWaitingBoundAndDisconnects(t *testing.T) {
	const limit = 5
	var waiting, peak atomic.Int64
	s := New(limit, time.Second)
	s.Waiting = func(d int64) {
		n := waiting.Add(d)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
	}
	s.Set("bundle.tar.gz", "r1", []byte("full"))
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var immediate atomic.Int64
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/bundle.tar.gz", nil)
			req.Header.Set("If-None-Match", `"r1"`)
			req.Header.Set("Prefer", "wait=60")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				if resp.StatusCode == 200 {
					immediate.Add(1)
				}
				resp.Body.Close()
			}
		}()
	}
	require.Eventually(t, func() bool { return immediate.Load() == 50-limit }, 5*time.Second, time.Millisecond)
	assert.Equal(t, limit, heldRequests(s))
	cancel()
	wg.Wait()
	require.Eventually(t, func() bool { return heldRequests(s) == 0 }, 5*time.Second, time.Millisecond, "clients gone, requests released")
	assert.EqualValues(t, limit, peak.Load())
	assert.EqualValues(t, 0, waiting.Load())
}

// Set, ServeHTTP and Close race (go test -race).
func TestRedteamHoldsRaces(t *testing.T) {
	s := New(8, time.Second)
	s.Set("bundle.tar.gz", "r0", []byte("r0"))
	hs := httptest.NewServer(s)
	defer hs.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rev := fmt.Sprintf("r%d", i/2)
			s.Set("bundle.tar.gz", rev, []byte(fmt.Sprintf("%s-%d", rev, i%2)))
			time.Sleep(time.Millisecond)
		}
	}()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			etag := ""
			for range 30 {
				req, _ := http.NewRequest(http.MethodGet, hs.URL+"/bundle.tar.gz", nil)
				req.Header.Set("If-None-Match", etag)
				req.Header.Set("Prefer", "wait=1")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					// Body and ETag belong together.
					tag := strings.Trim(resp.Header.Get("ETag"), `"`)
					if !strings.HasPrefix(string(body), tag+"-") && string(body) != "r0" {
						t.Errorf("body %q served under ETag %q", body, tag)
					}
					etag = resp.Header.Get("ETag")
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	s.Close()
	close(stop)
	wg.Wait()
	assert.Equal(t, 0, heldRequests(s))
}

// listen runs a Server through Listen, on a loopback port, as the exporter
// does.
func listen(t *testing.T, maxWaiting int, edit func(*confighttp.ServerConfig)) (*Server, string) {
	t.Helper()
	cfg := confighttp.NewDefaultServerConfig()
	cfg.NetAddr.Endpoint = freePort(t)
	edit(&cfg)
	s := New(maxWaiting, cfg.WriteTimeout)
	l, err := Listen(context.Background(), &cfg, componenttest.NewNopHost(), componenttest.NewNopTelemetrySettings(), s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	return s, cfg.NetAddr.Endpoint
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// Shutdown answers the held requests 304 (OPA keeps its bundle), never a
// 5xx, and leaves no goroutine behind.
func TestRedteamHoldsShutdownReleasesAndLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := confighttp.NewDefaultServerConfig()
	cfg.NetAddr.Endpoint = freePort(t)
	s := New(10, cfg.WriteTimeout)
	s.Set("bundle.tar.gz", "r1", []byte("full"))
	l, err := Listen(context.Background(), &cfg, componenttest.NewNopHost(), componenttest.NewNopTelemetrySettings(), s)
	require.NoError(t, err)
	addr := cfg.NetAddr.Endpoint
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var chans []chan int
	for range 5 {
		ch := make(chan int, 1)
		chans = append(chans, ch)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/bundle.tar.gz", nil)
			req.Header.Set("If-None-Match", `"r1"`)
			req.Header.Set("Prefer", "wait=60")
			resp, err := client.Do(req)
			if err != nil {
				ch <- -1
				return
			}
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
	}
	require.Eventually(t, func() bool { return heldRequests(s) == 5 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, l.Shutdown(ctx))
	for _, ch := range chans {
		assert.Equal(t, 304, <-ch)
	}
	tr.CloseIdleConnections()
}

// A client that asks for a bundle and never reads it (a stuck sidecar, or
// anyone who can reach the port) keeps its connection and goroutines after
// Shutdown has returned, when write_timeout is 0: Listener.Shutdown gives
// up at its context's deadline but never closes the connections that are
// stuckClient is a listener with write_timeout 0 serving a 64 MiB bundle,
// and a client that asked for it and reads nothing: its handler is blocked
// writing.
func stuckClient(t *testing.T) (*Listener, net.Conn) {
	t.Helper()
	cfg := confighttp.NewDefaultServerConfig()
	cfg.NetAddr.Endpoint = freePort(t)
	cfg.WriteTimeout = 0
	s := New(10, cfg.WriteTimeout)
	big := make([]byte, 64<<20)
	_, _ = rand.Read(big)
	s.Set("bundle.tar.gz", "r1", big)
	l, err := Listen(context.Background(), &cfg, componenttest.NewNopHost(), componenttest.NewNopTelemetrySettings(), s)
	require.NoError(t, err)
	c, err := net.Dial("tcp", cfg.NetAddr.Endpoint)
	require.NoError(t, err)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	_, err = io.WriteString(c, "GET /bundle.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	return l, c
}

// still active (http.Server.Close).
func TestRedteamSlowReaderOutlivesShutdown(t *testing.T) {
	before := goleak.IgnoreCurrent()
	l, c := stuckClient(t)
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	assert.NoError(t, l.Shutdown(ctx), "what is left is closed")
	// Shutdown has returned: nothing of the server should be left.
	time.Sleep(100 * time.Millisecond)
	assert.NoError(t, goleak.Find(before), "the connection of a client that does not read outlives the exporter's shutdown")
}

// The collector shuts its components down with context.Background() on
// SIGTERM (otelcol: col.shutdown(context.Background())). With write_timeout
// 0 (allowed; long polls need no write_timeout since the handler pushes
// the deadline itself) one client that does not read its bundle makes
// Listener.Shutdown, so the exporter's shutdown and the collector's, wait
// forever; with the default write_timeout, up to 30s (a Kubernetes grace
// period), and the exporter's state is closed only after it.
func TestRedteamSlowReaderBlocksShutdown(t *testing.T) {
	l, c := stuckClient(t)

	done := make(chan error, 1)
	go func() { done <- l.Shutdown(context.Background()) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		c.Close() // let it finish so the test ends
		<-done
		t.Fatal("Listener.Shutdown(context.Background()) still waiting after 3s for a client that does not read")
	}
	c.Close()
}
