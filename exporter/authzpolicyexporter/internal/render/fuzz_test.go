package render

import (
	"context"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// FuzzRenderCompiles renders a few records built from fuzzed strings, raw
// and sanitized into valid ones so that the happy path is reached often.
// Render must never panic or fail for records it accepts (the rest are
// counted in Skipped); the tarball must load in OPA; every accepted record's
// route must be allowed for its caller and denied for another caller or
// method, and the tarball must read back as the rendered rules. With the cardinality backstop off, OPA's decision on near misses
// (longer, shorter, sibling, dot segments, trailing slash) must agree with
// the routes' own Go matcher, so nothing beyond the learned routes is
// granted.
func FuzzRenderCompiles(f *testing.F) {
	const (
		dst = "spiffe://example.org/ns/bank/sa/balances"
		src = "spiffe://example.org/ns/bank/sa/frontend"
	)
	// A seed whose grow is growHuge+i has field i (destination, source,
	// method, route) repeated to 1 MiB when run: the corpus stays small,
	// so the fuzzer does not spend its time mutating and minimizing
	// megabyte inputs, yet huge strings are exercised.
	seeds := []struct {
		dst, src, method, route string
		knobs, grow             uint8
	}{
		{dst, src, "GET", "/balances/{int}", 0, 0},
		{dst, src, "GET", "/balances/summary", 1, 0},
		{dst, src, "POST", "/", 2, 0},
		{dst, src, "GET", `/a"b`, 0, 0},
		{dst, src, "GET", "/a/{b}", 3, 0},
		{dst, src, "GET", "/{token}/{uuid}/{hex}/{id}", 4, 0},
		{dst, src, "GET", "/a\n/b", 5, 0},
		{dst, src, "GET", "/import/package", 0, 0},
		{dst, src, "GET", "/default allow := true", 6, 0},
		{dst, src, "GET", "/default%20allow%20%3A%3D%20true", 0, 0},
		{dst, src, "GET", "/a/../admin", 7, 0},
		{dst, src, "GET", "/a/%2e%2e/admin", 8, 0},
		{dst, src, "GET", "/a/%252e%252e/admin", 9, 0},
		{dst, src, "GET", "/a/%c0%ae%c0%ae", 10, 0},
		{dst, src, "GET", "/a/..;/admin", 11, 0},
		{dst, src, "GET", "/@callers/paths/templates", 12, 0},
		{dst, src, "GET", "/a//b/", 13, 0},
		{"spiffe://example.org/ns/@callers", src, "GET", "/x", 0, 0},
		{"spiffe://example.org/import", "spiffe://example.org/package/default", "GET", "/x", 14, 0},
		{`spiffe://example.org/"}`, src, "GET", "/x", 15, 0},
		{"spiffe://example.org/ns/bank\n", src, "GET", "/x", 16, 0},
		{"spiffe://Example.org/x", "spiffe://example.org/x/", "GET", "/x", 17, 0},
		{"spiffe://../grants/example.org/x", src, "GET", "/x", 18, 0},
		{"spiffe://./x", "spiffe://x", "GET", "/x", 19, 0},
		{dst, src, "get", "/x", 20, 0},
		{dst, src, "G\"ET", "/x", 21, 0},
		{dst, src, "default allow := true", "/x", 22, 0},
		{"\xff\xfe", "spiffe://example.org/\xc0\xae", "GE\xffT", "/\xff/\xc0\xae", 23, 0},
		{dst, src, "GET", "/aaaa", 24, growHuge + 3},
		{dst, src, "GET", "/a/b%41", 0, growHuge + 3},
		{"spiffe://example.org/", src, "GET", "/x", 25, growHuge},
		{dst, "a", "GET", "/x", 26, growHuge + 1},
		{dst, src, "A", "/x", 27, growHuge + 2},
		{dst, src, "GET", "/x?", 28, growHuge + 3},
	}
	for _, s := range seeds {
		f.Add(s.dst, s.src, s.method, s.route, s.knobs, s.grow)
	}
	f.Fuzz(func(t *testing.T, dst, src, method, rt string, knobs, grow uint8) {
		if grow >= growHuge {
			fields := []*string{&dst, &src, &method, &rt}
			*fields[grow-growHuge] = huge(*fields[grow-growHuge])
		}
		checkRender(t, dst, src, method, rt, knobs)
	})
}

// growHuge+i in a fuzz input's grow byte makes its field i 1 MiB long.
const growHuge = 0xfc

// huge returns s repeated to 1 MiB (a 1 MiB "/" when s is empty).
func huge(s string) string {
	const size = 1 << 20
	if s == "" {
		s = "/"
	}
	return strings.Repeat(s, size/len(s)+1)[:size]
}

func checkRender(t *testing.T, dst, src, method, rt string, knobs uint8) {
	sd, ss, sm := sanitizeID(dst, "fuzz.test"), sanitizeID(src, "caller.test"), sanitizeMethod(method)
	sr := sanitizeRoute(rt)
	wild := []string{"int", "hex", "uuid", "id", "token"}[int(knobs>>3)%5]
	wr := withWildcard(sr, int(knobs>>6), wild)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(d, s, m, r string) aggregate.Record {
		return aggregate.Record{
			Key:   aggregate.Key{Destination: d, Source: s, Method: m, Route: r},
			Stats: aggregate.Stats{Count: 1, FirstSeen: at, LastSeen: at},
		}
	}
	records := []aggregate.Record{
		mk(dst, src, method, rt),        // raw
		mk(sd, ss, sm, sr),              // valid
		mk(sd, ss, sm, rt),              // valid identities, raw route
		mk(sd, ss, sm, wr),              // valid, with a wildcard
		mk(dst, ss, sm, sr),             // raw destination
		mk(sd, src, method, sr),         // raw source and method
		mk(sd+"/data.json", ss, sm, sr), // a destination below the valid one, by a file's name
		mk(dst+"/@callers", ss, sm, sr), // a destination spelling the callers key: refused
	}
	// The sanitized records are valid by construction: Render must not
	// skip them.
	for _, i := range []int{1, 3} {
		r := records[i]
		require.True(t, accepted(r), "sanitized record refused: %q %q %q %q", r.Destination, r.Source, r.Method, r.Route)
	}
	threshold := []int{0, 0, 2, 3}[knobs&3]
	opts := Options{CardinalityThreshold: threshold}

	ctx := context.Background()
	b, err := Render(ctx, records, opts)
	require.NoError(t, err)

	var ok []aggregate.Record
	distinct := map[aggregate.Key]bool{}
	for _, r := range records {
		if accepted(r) {
			ok = append(ok, r)
			distinct[r.Key] = true
		}
	}
	assert.Equal(t, len(records)-len(ok), b.Skipped, "skipped records")
	if threshold == 0 {
		assert.Len(t, b.Rules, len(distinct), "without the backstop every distinct record is one rule")
	}
	checkFiles(t, b, ok)
	// The bundle reads back as its rules, as the shrink guard reads it.
	published, err := ReadRules(b.Tarball)
	require.NoError(t, err)
	assert.Equal(t, ruleKeys(b.Rules), ruleKeys(published))

	// Deterministic: the same records in another order give the same
	// bytes. (Not for megabyte inputs, to keep the fuzzer fast.)
	huge := len(dst)+len(src)+len(method)+len(rt) > 64<<10
	if !huge {
		rev := make([]aggregate.Record, len(records))
		for i, r := range records {
			rev[len(records)-1-i] = r
		}
		b2, err := Render(ctx, rev, opts)
		require.NoError(t, err)
		assert.Equal(t, b.Revision, b2.Revision)
		assert.Equal(t, b.Tarball, b2.Tarball)
	}

	policy := opatest.Load(t, b.Tarball)
	type group struct{ dst, src, method string }
	routes := map[group][]route.Route{}
	methods := map[[2]string]map[string]bool{}
	callers := map[string]map[string]bool{}
	for k := range distinct {
		parsed, err := route.ParseKey(k.Route)
		require.NoError(t, err)
		g := group{k.Destination, k.Source, k.Method}
		routes[g] = append(routes[g], parsed)
		pair := [2]string{k.Destination, k.Source}
		if methods[pair] == nil {
			methods[pair] = map[string]bool{}
		}
		methods[pair][k.Method] = true
		if callers[k.Destination] == nil {
			callers[k.Destination] = map[string]bool{}
		}
		callers[k.Destination][k.Source] = true
	}
	const intruder = "spiffe://intruder.test/ns/fuzz/sa/intruder"
	for g, rs := range routes {
		for _, r := range rs {
			// The request as OPA-Envoy hands it over, with the XFCC
			// header of an Istio sidecar.
			path := instantiate(r)
			req := opatest.Request{Destination: g.dst, Source: g.src, Method: g.method, Path: path}
			assert.True(t, policy.Allowed(req), "learned route %q denied as %q", r.String(), path)

			if !callers[g.dst][intruder] {
				other := req
				other.Source = intruder
				assert.False(t, policy.Allowed(other), "%q allowed for another caller", path)
			}
			if m := g.method + "X"; route.ValidMethod(m) && !methods[[2]string{g.dst, g.src}][m] {
				other := req
				other.Method = m
				assert.False(t, policy.Allowed(other), "%q allowed for method %s", path, m)
			}
			if threshold != 0 || huge {
				continue
			}
			// Without generalization the grant is exactly the learned
			// routes: OPA must agree with the Go matcher on near misses.
			// The identities come as principals here, which is cheaper
			// to evaluate than the header.
			probe := opatest.Request{SourcePrincipal: g.src, DestinationPrincipal: g.dst, NoHeader: true, Method: g.method}
			for _, p := range nearMisses(path) {
				probe.Path = p
				assert.Equal(t, matchesAny(rs, p), policy.Allowed(probe), "route %q, probe %q", r.String(), p)
			}
			// A gRPC call's path is its method, query included: no
			// learned route has one.
			grpc := probe
			grpc.Path, grpc.Headers = path+"?x=1", map[string]string{"content-type": "application/grpc"}
			assert.False(t, policy.Allowed(grpc), "route %q, gRPC call %q", r.String(), grpc.Path)
		}
	}
}

// accepted is what Render documents it renders; the rest it must skip.
func accepted(r aggregate.Record) bool {
	_, err := route.ParseKey(r.Route)
	return err == nil && spiffeid.Validate(r.Destination) == nil && spiffeid.Validate(r.Source) == nil && route.ValidMethod(r.Method)
}

// checkFiles checks the unpacked layout: one data file per destination,
// below the grants directory, at the destination's own path.
func checkFiles(t *testing.T, b *Bundle, ok []aggregate.Record) {
	t.Helper()
	dsts := map[string]bool{}
	for _, r := range ok {
		dsts[r.Destination] = true
	}
	data := 0
	for name := range b.Files {
		if strings.HasSuffix(name, "/data.json") && name != Root+"/data.json" { // the mode file
			data++
			assert.True(t, strings.HasPrefix(name, grantsPath+"/"), "data file %q outside %s", name, grantsPath)
		}
	}
	assert.Equal(t, len(dsts), data, "one data file per destination")
	for d := range dsts {
		name := grantsPath + "/" + strings.TrimPrefix(d, "spiffe://") + "/@callers/data.json"
		assert.Contains(t, b.Files, name)
	}
	// No file stands where another needs a directory, so the files can
	// always be written.
	for name := range b.Files {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			assert.NotContains(t, b.Files, dir, "file %q is a directory of %q", dir, name)
		}
	}
}

// samples are values each wildcard type admits.
var samples = map[string]string{
	"int":   "4711",
	"hex":   "4f2a9c",
	"uuid":  "123e4567-e89b-12d3-a456-426614174000",
	"id":    "ord-2024-000123",
	"token": "tok",
}

// instantiate returns a request path the route admits.
func instantiate(r route.Route) string {
	var b strings.Builder
	for _, s := range r {
		b.WriteByte('/')
		if s.Wild != 0 {
			b.WriteString(samples[s.Wild.String()])
		} else {
			b.WriteString(s.Lit)
		}
	}
	return b.String()
}

// nearMisses are paths next to p: longer, shorter, a sibling, dot segments,
// another case, a query (which must not matter) and a fragment.
func nearMisses(p string) []string {
	i := strings.LastIndexByte(p, '/')
	parent, last := p[:i], p[i+1:]
	if parent == "" {
		parent = "/"
	}
	out := []string{
		p + "/x", p + "/", p + "/..", p + "/%2e%2e", parent,
		parent + "/" + last + "x", parent + "/x" + last,
		strings.TrimSuffix(parent, "/") + "/..", strings.TrimSuffix(parent, "/") + "/%2e%2e",
		strings.ToUpper(p), strings.ToLower(p),
		p + "?x=1", p + "#f", "/" + p,
	}
	if last != "" {
		out = append(out, parent+"/"+last[:len(last)-1])
	}
	return out
}

// matchesAny is the policy's path rule in Go: the path before "?", split
// at "/", against each route.
func matchesAny(rs []route.Route, p string) bool {
	p, _, _ = strings.Cut(p, "?")
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for _, r := range rs {
		if r.Match(segs) {
			return true
		}
	}
	return false
}

// sanitizeID makes a valid SPIFFE ID out of any string.
func sanitizeID(s, fallback string) string {
	if len(s) >= 9 && strings.EqualFold(s[:9], "spiffe://") {
		s = s[9:]
	}
	parts := strings.Split(s, "/")
	td := keep(strings.ToLower(parts[0]), func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
	}, 32)
	if strings.Trim(td, ".") == "" {
		td = fallback
	}
	id := "spiffe://" + td
	for i, p := range parts[1:] {
		if i == 8 {
			break
		}
		p = keep(p, func(c byte) bool {
			return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
		}, 32)
		switch p {
		case "":
			continue
		case ".", "..":
			p = "d" + p
		}
		id += "/" + p
	}
	return id
}

func sanitizeMethod(s string) string {
	m := keep(strings.ToUpper(s), func(c byte) bool { return 'A' <= c && c <= 'Z' || c == '-' || c == '_' }, 32)
	if m == "" {
		return "GET"
	}
	return m
}

// sanitizeRoute makes a valid route key out of any string: literal
// segments of RFC 3986 path characters without escapes or dot segments;
// segments spelled as a wildcard ({int}) stay wildcards.
func sanitizeRoute(s string) string {
	s, _, _ = strings.Cut(s, "?")
	s = strings.TrimPrefix(s, "/")
	parts := strings.Split(s, "/")
	if len(parts) > 16 {
		parts = parts[:16]
	}
	for i, p := range parts {
		if len(p) > 2 && p[0] == '{' && p[len(p)-1] == '}' {
			if _, ok := route.ParseType(p[1 : len(p)-1]); ok {
				continue
			}
		}
		p = keep(p, func(c byte) bool {
			return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
		}, 48)
		if name, _, _ := strings.Cut(p, ";"); name == "." || name == ".." {
			p = "d" + p
		}
		parts[i] = p
	}
	return "/" + strings.Join(parts, "/")
}

// withWildcard replaces one segment of a sanitized route by a wildcard.
func withWildcard(r string, at int, typ string) string {
	parts := strings.Split(r[1:], "/")
	parts[at%len(parts)] = "{" + typ + "}"
	return "/" + strings.Join(parts, "/")
}

func keep(s string, ok func(byte) bool, limit int) string {
	b := make([]byte, 0, min(len(s), limit))
	for i := 0; i < len(s) && len(b) < limit; i++ {
		if ok(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}
