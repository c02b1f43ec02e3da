// Package quality measures how well routes learned from untemplated HTTP
// spans authorize a synthetic service graph: how many legitimate requests
// the rendered bundle allows, and how many near-miss requests it refuses.
// It holds tests only.
package quality

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The exporter's defaults (factory.go).
const (
	threshold   = 10
	maxPathLen  = 2048
	maxSegments = 32
)

const (
	seed1, seed2 = 20261101, 42
	nRequests    = 20_000
	learnShare   = 0.8

	goalHeldOut = 0.99
)

// ---------------------------------------------------------------------------
// Ground truth: value slots, route templates, services and edges.

// slot is a path parameter of a real API: how clients fill it, and which
// values the server accepts there (the ground truth a probe is checked
// against; deliberately at least as wide as the generator).
type slot struct {
	name  string
	gen   func(r *rand.Rand) string
	legit *regexp.Regexp
	enum  []string // an enum's values (the sparse mesh's specs)
}

var (
	names = strings.Fields(`
aaron abigail adam adrian aiden alan albert alex alice allison amanda amber amy andrea andrew angela
anna anthony april arthur ashley austin barbara benjamin beth betty beverly billy bobby bradley brandon
brenda brian brittany bruce bryan caleb carl carol caroline carolyn catherine charles charlotte cheryl
chloe christian christina christine christopher cynthia daniel danielle david deborah debra denise dennis
diana diane donald donna doris dorothy douglas dylan edward elijah elizabeth emily emma eric ethan eugene
evelyn frances frank gabriel gary george gerald gloria grace gregory hannah harold heather helen henry
isabella jack jacob jacqueline james janet janice jason jean jeffrey jennifer jeremy jerry jesse jessica
joan joe john johnny jonathan jordan jose joseph joshua joyce juan judith judy julia julie justin karen
katherine kathleen kathryn kayla keith kelly kenneth kevin kimberly kyle larry laura lauren lawrence linda
logan lori louis madison margaret maria marie marilyn mark martha mary matthew megan melissa michael
michelle nancy natalie nathan nicholas nicole noah olivia pamela patricia patrick paul peter philip rachel
ralph randy raymond rebecca richard robert roger ronald rose russell ruth ryan samantha samuel sandra sara
sarah scott sean sharon shirley sophia stephanie stephen steven susan teresa terry theresa thomas timothy
tyler victoria vincent walter wayne william zachary`)
	adjectives = strings.Fields("outdoor kitchen garden office kids smart vintage travel sports home pet winter")
	nouns      = strings.Fields("furniture tools lighting decor storage toys electronics apparel books accessories supplies gifts")
	currencies = strings.Fields(`AUD BRL CAD CHF CLP CNY CZK DKK EUR GBP HKD HUF IDR ILS INR JPY KRW MXN MYR NOK NZD PHP PLN RON SEK SGD THB TRY USD ZAR`)
)

func hexString(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

var slots = func() map[string]*slot {
	re := regexp.MustCompile
	all := []*slot{
		{"int", func(r *rand.Rand) string { return strconv.Itoa(1 + r.IntN(999_999)) }, re(`^[0-9]+$`), nil},
		{"item", func(r *rand.Rand) string { return strconv.Itoa(1 + r.IntN(40)) }, re(`^[0-9]+$`), nil},
		{"uuid", func(r *rand.Rand) string {
			b := randomBytes(r, 16)
			b[6] = b[6]&0x0f | 0x40
			b[8] = b[8]&0x3f | 0x80
			return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
		}, re(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`), nil},
		{"order", func(r *rand.Rand) string {
			return fmt.Sprintf("ord-%d-%06d", 2023+r.IntN(3), r.IntN(1_000_000))
		}, re(`^ord-[0-9]{4}-[0-9]{6}$`), nil},
		{"account", func(r *rand.Rand) string {
			return strconv.Itoa(1_000_000_000 + r.IntN(9_000_000_000))
		}, re(`^[1-9][0-9]{9}$`), nil},
		{"hex", func(r *rand.Rand) string { return hexString(r, 12+r.IntN(29)) }, re(`^[0-9a-f]{12,40}$`), nil},
		{"username", func(r *rand.Rand) string { return names[r.IntN(len(names))] }, re(`^[a-z]+$`), nil},
		{"token", func(r *rand.Rand) string {
			return base64.RawURLEncoding.EncodeToString(randomBytes(r, 32))
		}, re(`^[A-Za-z0-9_-]{43}$`), nil},
		{"sku", func(r *rand.Rand) string { return fmt.Sprintf("SKU-%05d", r.IntN(100_000)) }, re(`^SKU-[0-9]{5}$`), nil},
		{"slug", func(r *rand.Rand) string {
			return adjectives[r.IntN(len(adjectives))] + "-" + nouns[r.IntN(len(nouns))]
		}, re(`^[a-z]+(-[a-z]+)*$`), nil},
		{"currency", func(r *rand.Rand) string { return currencies[r.IntN(len(currencies))] }, re(`^[A-Z]{3}$`), nil},
		{"date", func(r *rand.Rand) string {
			return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(366)).Format(time.DateOnly)
		}, re(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`), nil},
		{"word", func(r *rand.Rand) string { return names[r.IntN(len(names))] }, re(`^[a-z]+$`), nil},
		// The sparse mesh's (sparse_test.go).
		{name: "handle", gen: func(r *rand.Rand) string {
			n := names[r.IntN(len(names))]
			if r.IntN(3) > 0 {
				return n
			}
			return n + "_" + strconv.Itoa(1+r.IntN(99))
		}, legit: re(`^[a-z]+(_[0-9]+)?$`)},
		enumSlot("status", statuses),
		enumSlot("region", regions),
	}
	m := map[string]*slot{}
	for _, s := range all {
		m[s.name] = s
	}
	return m
}()

// apis is what each callee serves; a caller uses a subset. Query parameters
// are sent but are not part of the route.
var apis = map[string][]string{
	"frontend": {"GET /index.html", "GET /api/v1/session", "GET /healthz"},
	"users": {
		"GET /api/v1/users/{int}", "PUT /api/v1/users/{int}", "POST /api/v1/users",
		"GET /users/{username}", "GET /users/{uuid}/addresses", "GET /healthz",
	},
	"auth": {
		"POST /oauth/token", "GET /sessions/{token}", "DELETE /sessions/{token}",
		"GET /.well-known/jwks.json", "GET /healthz",
	},
	"orders": {
		"POST /orders", "GET /orders/{order}", "GET /orders/{order}/items/{item}", "DELETE /orders/{order}",
		"GET /users/{uuid}/orders", "GET /api/v1/orders/{int}/status", "GET /healthz",
	},
	"carts": {
		"GET /carts/{uuid}", "PUT /carts/{uuid}", "POST /carts/{uuid}/items",
		"DELETE /carts/{uuid}/items/{item}", "GET /healthz",
	},
	"catalog": {
		"GET /products/{sku}", "GET /api/v2/products/{int}/reviews", "GET /categories/{slug}",
		"GET /search?q={word}&page={item}", "GET /currencies/{currency}", "GET /healthz",
	},
	"payments": {
		"POST /payments", "GET /payments/{uuid}", "POST /payments/{uuid}/capture",
		"GET /payments/{uuid}/refunds", "GET /healthz",
	},
	"accounts": {
		"GET /accounts/{account}", "GET /accounts/{account}/balance", "PATCH /accounts/{account}/limits",
		"GET /accounts/{account}/transactions?from={date}", "GET /healthz",
	},
	"files": {
		"GET /files/{hex}", "PUT /files/{hex}", "HEAD /files/{hex}", "GET /files/{hex}/digest/sha256", "GET /healthz",
	},
	"reports":       {"GET /reports/{date}", "GET /reports/{date}/summary", "POST /reports", "GET /healthz"},
	"notifications": {"POST /notifications", "GET /notifications/{int}", "GET /metrics", "GET /healthz"},
}

var serviceNames = [][2]string{ // namespace, service account
	{"edge", "gateway"}, {"web", "frontend"}, {"identity", "users"}, {"identity", "auth"},
	{"shop", "orders"}, {"shop", "carts"}, {"shop", "catalog"}, {"billing", "payments"},
	{"billing", "accounts"}, {"storage", "files"}, {"analytics", "reports"}, {"messaging", "notifications"},
}

var edgeNames = [][2]string{ // caller, callee
	{"gateway", "frontend"}, {"gateway", "users"}, {"gateway", "auth"}, {"gateway", "orders"},
	{"gateway", "catalog"}, {"gateway", "carts"},
	{"frontend", "users"}, {"frontend", "orders"}, {"frontend", "carts"}, {"frontend", "catalog"},
	{"frontend", "payments"}, {"frontend", "accounts"}, {"frontend", "files"},
	{"orders", "payments"}, {"orders", "users"}, {"orders", "catalog"}, {"orders", "notifications"}, {"orders", "carts"},
	{"payments", "accounts"}, {"payments", "notifications"},
	{"carts", "catalog"},
	{"reports", "orders"}, {"reports", "payments"}, {"reports", "accounts"}, {"reports", "files"},
	{"users", "files"}, {"users", "auth"},
	{"frontend", "reports"}, {"gateway", "reports"},
}

type tseg struct {
	lit  string
	slot *slot // nil for a literal
}

type template struct {
	method string
	spec   string // as written in apis
	segs   []tseg
	query  [][2]string // key, slot name
}

func parseTemplate(spec string) *template {
	method, rest, _ := strings.Cut(spec, " ")
	p, q, _ := strings.Cut(rest, "?")
	t := &template{method: method, spec: spec}
	for _, s := range strings.Split(p[1:], "/") {
		if strings.HasPrefix(s, "{") {
			sl := slots[s[1:len(s)-1]]
			if sl == nil {
				panic("unknown slot " + s)
			}
			t.segs = append(t.segs, tseg{slot: sl})
			continue
		}
		t.segs = append(t.segs, tseg{lit: s})
	}
	if q != "" {
		for _, kv := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(kv, "=")
			t.query = append(t.query, [2]string{k, v[1 : len(v)-1]})
		}
	}
	return t
}

// match reports whether the raw segments are a legitimate request path.
func (t *template) match(segs []string) bool {
	if len(segs) != len(t.segs) {
		return false
	}
	for i, s := range t.segs {
		if s.slot == nil && s.lit != segs[i] || s.slot != nil && !s.slot.legit.MatchString(segs[i]) {
			return false
		}
	}
	return true
}

func (t *template) instance(r *rand.Rand) string {
	var b strings.Builder
	for _, s := range t.segs {
		b.WriteByte('/')
		if s.slot != nil {
			b.WriteString(s.slot.gen(r))
		} else {
			b.WriteString(s.lit)
		}
	}
	for i, kv := range t.query {
		b.WriteString([]string{"?", "&"}[min(i, 1)])
		b.WriteString(kv[0] + "=" + slots[kv[1]].gen(r))
	}
	return b.String()
}

type service struct {
	ns, name string
}

func (s *service) id(trustDomain string) string {
	return "spiffe://" + trustDomain + "/ns/" + s.ns + "/sa/" + s.name
}

type edge struct {
	src, dst *service
	tpls     []*template
	cum      []float64 // cumulative template popularity
}

type world struct {
	services []*service
	edges    []*edge
	cum      []float64 // cumulative edge popularity
	byPair   map[[2]string]*edge
}

func pick(r *rand.Rand, cum []float64) int {
	return sort.SearchFloat64s(cum, r.Float64()*cum[len(cum)-1])
}

// zipf returns cumulative weights 1/(rank+1)^s.
func zipf(n int, s float64) []float64 {
	cum := make([]float64, n)
	total := 0.0
	for i := range cum {
		total += 1 / math.Pow(float64(i+1), s)
		cum[i] = total
	}
	return cum
}

func newWorld(r *rand.Rand) *world {
	w := &world{byPair: map[[2]string]*edge{}}
	byName := map[string]*service{}
	for _, n := range serviceNames {
		s := &service{ns: n[0], name: n[1]}
		w.services = append(w.services, s)
		byName[n[1]] = s
	}
	for _, en := range edgeNames {
		api := apis[en[1]]
		k := min(2+r.IntN(5), len(api))
		e := &edge{src: byName[en[0]], dst: byName[en[1]]}
		for _, i := range r.Perm(len(api))[:k] { // the first is the most popular
			e.tpls = append(e.tpls, parseTemplate(api[i]))
		}
		e.cum = zipf(k, 1)
		w.edges = append(w.edges, e)
		w.byPair[[2]string{e.src.id("example.org"), e.dst.id("example.org")}] = e
	}
	// Edge popularity: Zipf over a random ranking.
	rank := r.Perm(len(w.edges))
	w.cum = make([]float64, len(w.edges))
	total := 0.0
	for i := range w.edges {
		total += 1 / float64(rank[i]+1)
		w.cum[i] = total
	}
	return w
}

// legit reports whether the request is one the ground truth allows: the
// caller calls the callee with this method on a path one of the edge's
// templates admits.
func (w *world) legit(src, dst, method, path string) bool {
	e := w.byPair[[2]string{src, dst}]
	if e == nil {
		return false
	}
	p, _ := splitQuery(path)
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for _, t := range e.tpls {
		if t.method == method && t.match(segs) {
			return true
		}
	}
	return false
}

func splitQuery(path string) (p, query string) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		return path[:i], path[i:]
	}
	return path, ""
}

type request struct {
	e    *edge
	tpl  *template
	path string
}

func (q request) src() string { return q.e.src.id("example.org") }
func (q request) dst() string { return q.e.dst.id("example.org") }

// ---------------------------------------------------------------------------
// Decisions.

// input is a request as opa-envoy-plugin hands it to the policy.
func input(dst, src, method, path string) opatest.Request {
	return opatest.Request{Header: "By=" + dst + ";URI=" + src, Method: method, Path: path}
}

// ---------------------------------------------------------------------------
// Near-miss probes.

var probeKinds = []string{
	"other caller", "other callee", "other method", "sibling literal", "longer path", "shorter path",
	"wildcard type", "wildcard type, word slot", "foreign trust domain", "dot segment", "encoded traversal",
}

type probe struct {
	kind                   string
	src, dst, method, path string
	from                   request
}

func join(segs []string) string { return "/" + strings.Join(segs, "/") }

// mutate turns a literal into a sibling word: /orders -> /orderz,
// /healthz -> /healthz2, /v1 -> /v2.
func mutate(s string) string {
	c := s[len(s)-1]
	switch {
	case c == 'z':
		return s + "2"
	case '0' <= c && c <= '9':
		return s[:len(s)-1] + string('0'+(c-'0'+1)%10)
	default:
		return s[:len(s)-1] + "z"
	}
}

// probes derives one near miss of each kind from a legitimate request, when
// the kind applies. learned is the route the learner makes of q's path: a
// wildcard type probe goes to "wildcard type" when the learner types that
// slot itself, and to "wildcard type, word slot" when the slot's values look
// like words that only the cardinality backstop can generalize.
func (w *world) probes(r *rand.Rand, q request, learned route.Route) []probe {
	src, dst, method := q.src(), q.dst(), q.tpl.method
	p, query := splitQuery(q.path)
	segs := strings.Split(p[1:], "/")
	var slotIdx, litIdx, typedIdx, wordIdx []int
	for i, s := range q.tpl.segs {
		switch {
		case s.slot == nil:
			litIdx = append(litIdx, i)
			continue
		case s.slot.legit.MatchString("admin"):
		case learned[i].Wild != 0:
			typedIdx = append(typedIdx, i)
		default:
			wordIdx = append(wordIdx, i)
		}
		slotIdx = append(slotIdx, i)
	}
	replace := func(i int, v string) string {
		s := slices.Clone(segs)
		s[i] = v
		return join(s) + query
	}
	var out []probe
	add := func(kind, src, dst, method, path string) {
		out = append(out, probe{kind: kind, src: src, dst: dst, method: method, path: path, from: q})
	}

	var others []*service
	for _, s := range w.services {
		if s != q.e.dst && w.byPair[[2]string{s.id("example.org"), dst}] == nil {
			others = append(others, s)
		}
	}
	if len(others) > 0 {
		add("other caller", others[r.IntN(len(others))].id("example.org"), dst, method, q.path)
	}
	var callees []*service
	for _, s := range w.services {
		if s != q.e.dst && s != q.e.src {
			callees = append(callees, s)
		}
	}
	add("other callee", src, callees[r.IntN(len(callees))].id("example.org"), method, q.path)
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	for _, i := range r.Perm(len(methods)) {
		if m := methods[i]; m != method && !w.legit(src, dst, m, q.path) {
			add("other method", src, dst, m, q.path)
			break
		}
	}
	if len(litIdx) > 0 {
		i := litIdx[r.IntN(len(litIdx))]
		add("sibling literal", src, dst, method, replace(i, mutate(segs[i])))
	}
	add("longer path", src, dst, method, join(append(slices.Clone(segs), "admin"))+query)
	if len(segs) > 1 {
		add("shorter path", src, dst, method, join(segs[:len(segs)-1]))
	} else {
		add("shorter path", src, dst, method, "/")
	}
	if len(typedIdx) > 0 {
		add("wildcard type", src, dst, method, replace(typedIdx[r.IntN(len(typedIdx))], "admin"))
	}
	if len(wordIdx) > 0 {
		add("wildcard type, word slot", src, dst, method, replace(wordIdx[r.IntN(len(wordIdx))], "admin"))
	}
	evil := func(id string) string { return strings.Replace(id, "spiffe://example.org/", "spiffe://evil.org/", 1) }
	if r.IntN(2) == 0 {
		add("foreign trust domain", evil(src), dst, method, q.path)
	} else {
		add("foreign trust domain", src, evil(dst), method, q.path)
	}
	// Traversal: /a/../a/b, or a dot segment in a wildcard's place.
	for _, tr := range []struct{ kind, dots string }{
		{"dot segment", ".."},
		{"encoded traversal", []string{"%2e%2e", "%2E%2E", ".%2e", "%2e."}[r.IntN(4)]},
	} {
		if len(slotIdx) > 0 && r.IntN(2) == 0 {
			add(tr.kind, src, dst, method, replace(slotIdx[r.IntN(len(slotIdx))], tr.dots))
		} else {
			add(tr.kind, src, dst, method, "/"+segs[0]+"/"+tr.dots+q.path)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The measurement.

type groupKey struct{ dst, src, method string }

type kindStats struct{ total, allowed, discarded int }

func TestLearningQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped with -short")
	}
	start := time.Now()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed1, seed2))
	w := newWorld(r)
	nTemplates := 0
	for _, e := range w.edges {
		nTemplates += len(e.tpls)
	}

	// Traffic.
	reqs := make([]request, nRequests)
	for i := range reqs {
		e := w.edges[pick(r, w.cum)]
		tpl := e.tpls[pick(r, e.cum)]
		reqs[i] = request{e: e, tpl: tpl, path: tpl.instance(r)}
	}
	nLearn := int(nRequests * learnShare)
	learn, held := reqs[:nLearn], reqs[nLearn:]

	// Learn without http.route, the hard case.
	learner, err := route.NewLearner(nil, maxPathLen, maxSegments)
	require.NoError(t, err)
	type seenKey struct {
		e   *edge
		tpl *template
	}
	type tplStats struct {
		learnN, heldN, heldAllowed int
		literalAt                  int             // a slot position the learner keeps literal, or -1
		values                     map[string]bool // distinct values there during learning
	}
	seen := map[seenKey]*tplStats{}
	var seenOrder []seenKey
	records := make([]aggregate.Record, 0, len(learn))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, q := range learn {
		rt, err := learner.Learn(q.path, "")
		require.NoError(t, err, "legitimate path %q refused", q.path)
		st := seen[seenKey{q.e, q.tpl}]
		if st == nil {
			st = &tplStats{literalAt: -1, values: map[string]bool{}}
			seen[seenKey{q.e, q.tpl}] = st
			seenOrder = append(seenOrder, seenKey{q.e, q.tpl})
		}
		st.learnN++
		for j, ts := range q.tpl.segs {
			if ts.slot != nil && rt[j].Wild == 0 {
				st.literalAt = j
				st.values[rt[j].Lit] = true
			}
		}
		ts := base.Add(time.Duration(i) * time.Second)
		records = append(records, aggregate.Record{
			Key:   aggregate.Key{Destination: q.dst(), Source: q.src(), Method: q.tpl.method, Route: rt.String()},
			Stats: aggregate.Stats{Count: 1, FirstSeen: ts, LastSeen: ts},
		})
	}
	agg := aggregate.New(aggregate.Limits{Entries: 1 << 20})
	require.Zero(t, agg.Observe(records))
	snap := agg.Snapshot()
	renderStart := time.Now()
	b, err := render.Render(ctx, snap, render.Options{CardinalityThreshold: threshold})
	require.NoError(t, err)
	renderTime := time.Since(renderStart)
	require.Zero(t, b.Skipped)
	pq := opatest.Load(t, b.Tarball)

	// What the policy holds per (destination, source, method), for diagnosis.
	learned := map[groupKey][]route.Route{}
	for _, rec := range snap {
		rt, err := route.ParseKey(rec.Route)
		require.NoError(t, err)
		g := groupKey{rec.Destination, rec.Source, rec.Method}
		learned[g] = append(learned[g], rt)
	}
	rendered := map[groupKey][]route.Route{}
	for g, rs := range learned {
		rendered[g] = route.Generalize(rs, threshold)
	}

	// Held-out legitimate requests, of templates seen during learning.
	var unseen, evaluated, allowed int
	var fails []request
	var eligible []request
	for _, q := range held {
		if seen[seenKey{q.e, q.tpl}] == nil {
			unseen++
			continue
		}
		eligible = append(eligible, q)
	}
	evalStart := time.Now()
	for _, q := range eligible {
		evaluated++
		st := seen[seenKey{q.e, q.tpl}]
		st.heldN++
		if pq.Allowed(input(q.dst(), q.src(), q.tpl.method, q.path)) {
			allowed++
			st.heldAllowed++
		} else {
			fails = append(fails, q)
		}
	}
	evalTime := time.Since(evalStart)
	heldRate := float64(allowed) / float64(evaluated)

	// Near-miss probes, one of each kind per held-out request.
	stats := map[string]*kindStats{}
	for _, k := range probeKinds {
		stats[k] = &kindStats{}
	}
	var leaks []probe
	probeStart := time.Now()
	nProbes := 0
	for _, q := range eligible {
		rt, err := learner.Learn(q.path, "")
		require.NoError(t, err)
		for _, p := range w.probes(r, q, rt) {
			s := stats[p.kind]
			if w.legit(p.src, p.dst, p.method, p.path) {
				s.discarded++
				continue
			}
			s.total++
			nProbes++
			if pq.Allowed(input(p.dst, p.src, p.method, p.path)) {
				s.allowed++
				leaks = append(leaks, p)
			}
		}
	}
	probeTime := time.Since(probeStart)

	// The table.
	var tbl strings.Builder
	tw := tabwriter.NewWriter(&tbl, 0, 0, 2, ' ', 0)
	row := func(label string, value any) { fmt.Fprintf(tw, "%s\t%v\n", label, value) }
	row("services / edges / edge templates", fmt.Sprintf("%d / %d / %d", len(w.services), len(w.edges), nTemplates))
	row("requests generated / learned / held out", fmt.Sprintf("%d / %d / %d", nRequests, len(learn), len(held)))
	row("aggregate keys (learned routes)", len(snap))
	row("rules rendered (after generalization)", len(b.Rules))
	row("held out on templates unseen in learning (excluded)", unseen)
	row("held-out legitimate allowed", fmt.Sprintf("%d / %d = %.2f%% (goal >= %.0f%%)", allowed, evaluated, 100*heldRate, 100*goalHeldOut))
	row("probe kind", "allowed / total (discarded as legitimate)")
	for _, k := range probeKinds {
		s := stats[k]
		row("  "+k, fmt.Sprintf("%d / %d (%d)", s.allowed, s.total, s.discarded))
	}
	row("decision latency, held-out (avg)", fmt.Sprintf("%d ns/eval", evalTime.Nanoseconds()/int64(max(evaluated, 1))))
	row("decision latency, probes (avg)", fmt.Sprintf("%d ns/eval", probeTime.Nanoseconds()/int64(max(nProbes, 1))))
	row("render time", renderTime.Round(time.Millisecond))
	require.NoError(t, tw.Flush())
	t.Logf("learning quality (seed %d,%d; threshold %d; no http.route):\n%s", seed1, seed2, threshold, tbl.String())

	// Templates whose parameter the identifier heuristics keep literal:
	// only the cardinality backstop can learn them.
	{
		var sb strings.Builder
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "caller -> callee\ttemplate\tlearned (distinct values)\trendered as\theld out allowed")
		slices.SortStableFunc(seenOrder, func(a, b seenKey) int {
			return strings.Compare(a.e.src.name+a.e.dst.name+a.tpl.spec, b.e.src.name+b.e.dst.name+b.tpl.spec)
		})
		for _, k := range seenOrder {
			st := seen[k]
			if st.literalAt < 0 {
				continue
			}
			g := groupKey{k.e.dst.id("example.org"), k.e.src.id("example.org"), k.tpl.method}
			var wild []string
			lits := 0
			for _, rr := range rendered[g] {
				if len(rr) != len(k.tpl.segs) || !prefixMatches(rr, k.tpl, st.literalAt) {
					continue
				}
				if rr[st.literalAt].Wild != 0 {
					wild = append(wild, rr.String())
				} else {
					lits++
				}
			}
			as := fmt.Sprintf("%d literal routes", lits)
			if len(wild) > 0 {
				as = strings.Join(wild, " ")
				if lits > 0 {
					as += fmt.Sprintf(" + %d literal routes", lits)
				}
			}
			fmt.Fprintf(tw, "%s -> %s\t%s\t%d (%d)\t%s\t%d / %d\n", k.e.src.name, k.e.dst.name, k.tpl.spec,
				st.learnN, len(st.values), as, st.heldAllowed, st.heldN)
		}
		require.NoError(t, tw.Flush())
		t.Logf("templates only the cardinality backstop can learn (parameter learned as a literal):\n%s", sb.String())
	}

	// Why held-out requests were denied, per edge template.
	if len(fails) > 0 {
		type failGroup struct {
			k     seenKey
			n     int
			first request
		}
		var groups []*failGroup
		byKey := map[seenKey]*failGroup{}
		for _, q := range fails {
			k := seenKey{q.e, q.tpl}
			g := byKey[k]
			if g == nil {
				g = &failGroup{k: k, first: q}
				byKey[k] = g
				groups = append(groups, g)
			}
			g.n++
		}
		slices.SortStableFunc(groups, func(a, b *failGroup) int { return b.n - a.n })
		var sb strings.Builder
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "caller -> callee\ttemplate\tdenied/held out\texample\twhy")
		for _, g := range groups {
			q := g.first
			fmt.Fprintf(tw, "%s -> %s\t%s\t%d / %d\t%s\t%s\n", q.e.src.name, q.e.dst.name, q.tpl.spec,
				g.n, seen[g.k].heldN, q.path, explainDenial(learner, learned, rendered, q))
		}
		require.NoError(t, tw.Flush())
		t.Logf("held-out legitimate requests denied, by template:\n%s", sb.String())
	}

	// Which rendered rule admitted each kind of leaked probe.
	if len(leaks) > 0 {
		type leakKey struct{ kind, spec, rule string }
		counts := map[leakKey]int{}
		var order []leakKey
		examples := map[leakKey]probe{}
		for _, p := range leaks {
			k := leakKey{p.kind, p.from.tpl.spec, admittingRule(rendered, p)}
			if counts[k] == 0 {
				order = append(order, k)
				examples[k] = p
			}
			counts[k]++
		}
		slices.SortStableFunc(order, func(a, b leakKey) int { return counts[b] - counts[a] })
		var sb strings.Builder
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "kind\tcount\ttemplate\texample probe\tadmitted by rendered rule")
		for _, k := range order {
			p := examples[k]
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s %s (%s -> %s)\t%s\n", k.kind, counts[k], k.spec, p.method, p.path,
				shortID(p.src), shortID(p.dst), k.rule)
		}
		require.NoError(t, tw.Flush())
		t.Logf("near-miss probes allowed:\n%s", sb.String())
	}

	t.Logf("elapsed %s", time.Since(start).Round(time.Millisecond))

	if heldRate < goalHeldOut {
		t.Errorf("GOAL MISSED: %.2f%% of held-out legitimate requests allowed, goal >= %.0f%% (%d denied; see the table of denied templates above)",
			100*heldRate, 100*goalHeldOut, evaluated-allowed)
	}
	// A {token} slot is what the cardinality backstop opens for word-valued
	// parameters (usernames, slugs, codes): it admits any token there, which
	// the README states as the backstop's known limit. Every other leak is
	// a goal miss.
	backstop := map[string]int{}
	for _, p := range leaks {
		if strings.Contains(admittingRule(rendered, p), "{token}") {
			backstop[p.kind]++
		}
	}
	for _, k := range probeKinds {
		s := stats[k]
		if backstop[k] > 0 {
			t.Logf("%d of %d %q probes admitted by a backstop {token} slot (known limit)", backstop[k], s.total, k)
		}
		if n := s.allowed - backstop[k]; n > 0 {
			t.Errorf("GOAL MISSED: %d of %d %q probes allowed, goal 0 (see the table of allowed probes above)", n, s.total, k)
		}
	}
}

// prefixMatches reports whether rr's first n segments are the template's
// literals.
func prefixMatches(rr route.Route, t *template, n int) bool {
	for i := range n {
		if t.segs[i].slot != nil || rr[i].Wild != 0 || rr[i].Lit != t.segs[i].lit {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	if rest, ok := strings.CutPrefix(id, "spiffe://example.org/"); ok {
		return rest[strings.LastIndexByte(rest, '/')+1:]
	}
	return id
}

// explainDenial says why a legitimate request of a seen template was denied,
// from the route the learner makes of it and what was learned at the first
// position where they part.
func explainDenial(l *route.Learner, learned, rendered map[groupKey][]route.Route, q request) string {
	g := groupKey{q.dst(), q.src(), q.tpl.method}
	rt, err := l.Learn(q.path, "")
	if err != nil {
		return "learner refuses the path: " + err.Error()
	}
	p, _ := splitQuery(q.path)
	segs := strings.Split(p[1:], "/")
	for i, ts := range q.tpl.segs {
		if ts.slot == nil {
			continue
		}
		if rt[i].Wild == 0 {
			// Distinct literals learned at this position after the same prefix.
			distinct := map[string]bool{}
			for _, lr := range learned[g] {
				if len(lr) > i && slices.Equal(lr[:i], rt[:i]) && lr[i].Wild == 0 {
					distinct[lr[i].Lit] = true
				}
			}
			why := fmt.Sprintf("below the backstop threshold (%d < %d distinct values for this caller/method/position)", len(distinct), threshold)
			if len(distinct) >= threshold {
				why = fmt.Sprintf("%d >= %d distinct values, but Generalize leaves them literal (structural values, e.g. dates, are never collapsed)", len(distinct), threshold)
			}
			return fmt.Sprintf("{%s} value %q is learned as a literal (identifier heuristics do not recognise it) and was not seen in learning; %s",
				ts.slot.name, segs[i], why)
		}
		// A wildcard: was that type learned here?
		var types []string
		for _, rr := range rendered[g] {
			if len(rr) == len(rt) && slices.Equal(rr[:i], rt[:i]) && rr[i].Wild != 0 {
				types = append(types, "{"+rr[i].Wild.String()+"}")
			}
		}
		if !slices.Contains(types, "{"+rt[i].Wild.String()+"}") {
			return fmt.Sprintf("{%s} value %q classified {%s} but only %v was learned at this position (the heuristics' types are narrower than the real parameter)",
				ts.slot.name, segs[i], rt[i].Wild, types)
		}
	}
	return "learned route " + rt.String() + " is rendered; denial not explained"
}

// admittingRule finds the rendered route that admits a leaked probe.
func admittingRule(rendered map[groupKey][]route.Route, p probe) string {
	path, _ := splitQuery(p.path)
	if !strings.HasPrefix(path, "/") {
		return "?"
	}
	segs := strings.Split(path[1:], "/")
	for _, rt := range rendered[groupKey{p.dst, p.src, p.method}] {
		if rt.Match(segs) {
			return rt.String()
		}
	}
	return "(no rendered route matches in Go; policy differs)"
}
