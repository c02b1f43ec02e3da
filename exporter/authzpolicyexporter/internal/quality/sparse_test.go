package quality

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

// The sparse-traffic mesh: callees with OpenAPI specs (testdata/openapi),
// whose callers use a few of their operations with a few values each,
// every value seen sparseRepeat times, as most real routes are. Held-out
// requests are the same operations with other values.
const (
	sparseRepeat = 3  // each learned request is sent this many times
	sparseHeld   = 10 // held-out requests per edge operation
)

var (
	statuses = []string{"cancelled", "open", "paid", "shipped"}
	regions  = []string{"ap-east", "ap-south", "eu-north", "eu-west", "us-east", "us-west"}
)

// enumSlot is a parameter of a fixed set of values.
func enumSlot(name string, values []string) *slot {
	return &slot{
		name:  name,
		gen:   func(r *rand.Rand) string { return values[r.IntN(len(values))] },
		legit: regexp.MustCompile(`^(` + strings.Join(values, "|") + `)$`),
		enum:  values,
	}
}

// sparseAPIs are what each callee serves, as its spec says (in the syntax
// of apis, the base path included).
var sparseAPIs = map[string][]string{
	"customers": {
		"GET /customers/{handle}/orders", "GET /customers/{handle}/orders/{int}", "GET /customers/{handle}/profile",
		"PUT /customers/{handle}/profile", "DELETE /customers/{handle}",
	},
	"orders": {
		"GET /api/v1/orders/by-status/{status}", "GET /api/v1/orders/{int}", "DELETE /api/v1/orders/{int}",
		"POST /api/v1/orders/{int}/cancel", "GET /api/v1/orders/{int}/lines/{item}",
	},
	"catalog": {
		"GET /categories/{slug}/products", "GET /products/{uuid}", "PUT /products/{uuid}",
		"GET /products/{uuid}/reviews/{handle}", "GET /regions/{region}/stores",
	},
}

var sparseServices = [][2]string{ // namespace, service account
	{"edge", "gateway"}, {"web", "frontend"}, {"analytics", "reports"}, {"jobs", "batch"},
	{"crm", "customers"}, {"shop", "orders"}, {"shop", "catalog"},
}

// sparseEdges: caller, callee, and the operations (indexes into the
// callee's sparseAPIs) the caller uses. DELETE /customers/{handle} and
// DELETE /api/v1/orders/{int} are used by no one.
var sparseEdges = []struct {
	src, dst string
	ops      []int
}{
	{"gateway", "customers", []int{0, 2}},
	{"frontend", "customers", []int{1, 2, 3}},
	{"reports", "customers", []int{0}},
	{"orders", "customers", []int{1}},
	{"gateway", "orders", []int{0, 1}},
	{"frontend", "orders", []int{1, 3, 4}},
	{"reports", "orders", []int{0, 4}},
	{"frontend", "catalog", []int{0, 1, 4}},
	{"gateway", "catalog", []int{0, 3}},
	{"orders", "catalog", []int{1, 2, 4}},
}

var sparseProbeKinds = []string{
	"other caller", "other method", "sibling path", "longer path", "foreign trust domain", "spoofed header",
	"operation never used", "enum outsider", "wrong type",
}

func newSparseWorld() *world {
	w := &world{byPair: map[[2]string]*edge{}}
	byName := map[string]*service{}
	for _, n := range sparseServices {
		s := &service{ns: n[0], name: n[1]}
		w.services = append(w.services, s)
		byName[n[1]] = s
	}
	for _, en := range sparseEdges {
		e := &edge{src: byName[en.src], dst: byName[en.dst]}
		for _, i := range en.ops {
			e.tpls = append(e.tpls, parseTemplate(sparseAPIs[en.dst][i]))
		}
		w.edges = append(w.edges, e)
		w.byPair[[2]string{e.src.id("example.org"), e.dst.id("example.org")}] = e
	}
	return w
}

// sparseTraffic returns the learned requests (each of 2 to 4 distinct
// requests per edge operation, sent sparseRepeat times, shuffled) and the
// held-out ones: each slot but an enum's holds a value not learned at that
// position for that edge operation; an enum's holds any of its values.
func sparseTraffic(r *rand.Rand, w *world) (learn, held []request) {
	for _, e := range w.edges {
		for _, tpl := range e.tpls {
			seen := map[int]map[string]bool{}
			distinct := map[string]bool{}
			for k := 2 + r.IntN(3); len(distinct) < k; {
				p := tpl.instance(r)
				if distinct[p] {
					continue
				}
				distinct[p] = true
				for i, v := range strings.Split(p[1:], "/") {
					if seen[i] == nil {
						seen[i] = map[string]bool{}
					}
					seen[i][v] = true
				}
				for range sparseRepeat {
					learn = append(learn, request{e: e, tpl: tpl, path: p})
				}
			}
			for range sparseHeld {
				for {
					p := tpl.instance(r)
					fresh := true
					for i, v := range strings.Split(p[1:], "/") {
						if s := tpl.segs[i].slot; s != nil && s.enum == nil && seen[i][v] {
							fresh = false
						}
					}
					if fresh {
						held = append(held, request{e: e, tpl: tpl, path: p})
						break
					}
				}
			}
		}
	}
	r.Shuffle(len(learn), func(i, j int) { learn[i], learn[j] = learn[j], learn[i] })
	return learn, held
}

// sparseProbe is a near miss: the request as the policy sees it, and the
// caller it really comes from (the mTLS peer, for a spoofed header).
type sparseProbe struct {
	kind   string
	req    opatest.Request
	caller string
}

func (w *world) sparseProbes(r *rand.Rand, q request) []sparseProbe {
	src, dst, method := q.src(), q.dst(), q.tpl.method
	segs := strings.Split(q.path[1:], "/")
	replace := func(i int, v string) string {
		s := slices.Clone(segs)
		s[i] = v
		return join(s)
	}
	var out []sparseProbe
	add := func(kind, src, dst, method, path string) {
		out = append(out, sparseProbe{kind: kind, caller: src,
			req: opatest.Request{Header: "By=" + dst + ";URI=" + src, Method: method, Path: path}})
	}
	var outsiders []*service // services that do not call dst
	for _, s := range w.services {
		if s != q.e.dst && w.byPair[[2]string{s.id("example.org"), dst}] == nil {
			outsiders = append(outsiders, s)
		}
	}
	add("other caller", outsiders[r.IntN(len(outsiders))].id("example.org"), dst, method, q.path)
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	for _, i := range r.Perm(len(methods)) {
		if m := methods[i]; m != method && !w.legit(src, dst, m, q.path) {
			add("other method", src, dst, m, q.path)
			break
		}
	}
	var lits, enums, typed []int
	for i, s := range q.tpl.segs {
		switch {
		case s.slot == nil:
			lits = append(lits, i)
		case s.slot.enum != nil:
			enums = append(enums, i)
		case s.slot.name != "handle" && s.slot.name != "slug":
			typed = append(typed, i)
		}
	}
	i := lits[r.IntN(len(lits))]
	add("sibling path", src, dst, method, replace(i, mutate(segs[i])))
	add("longer path", src, dst, method, q.path+"/admin")
	evil := func(id string) string { return strings.Replace(id, "spiffe://example.org/", "spiffe://evil.org/", 1) }
	if r.IntN(2) == 0 {
		add("foreign trust domain", evil(src), dst, method, q.path)
	} else {
		add("foreign trust domain", src, evil(dst), method, q.path)
	}
	// The header names the legitimate caller; the mTLS peer is another.
	var peers []*service
	for _, s := range w.services {
		if id := s.id("example.org"); id != src && !w.legit(id, dst, method, q.path) {
			peers = append(peers, s)
		}
	}
	peer := peers[r.IntN(len(peers))].id("example.org")
	out = append(out, sparseProbe{kind: "spoofed header", caller: peer, req: opatest.Request{
		Destination: dst, Source: src, SourcePrincipal: peer, DestinationPrincipal: dst, Method: method, Path: q.path,
	}})
	var unused []*template
	for _, spec := range sparseAPIs[q.e.dst.name] {
		if !slices.ContainsFunc(q.e.tpls, func(t *template) bool { return t.spec == spec }) {
			unused = append(unused, parseTemplate(spec))
		}
	}
	if len(unused) > 0 {
		t := unused[r.IntN(len(unused))]
		add("operation never used", src, dst, t.method, t.instance(r))
	}
	if len(enums) > 0 {
		outsider := []string{"pending", "all", "admin", "open2", "eu-south", "mars"}[r.IntN(6)]
		add("enum outsider", src, dst, method, replace(enums[r.IntN(len(enums))], outsider))
	}
	if len(typed) > 0 {
		i := typed[r.IntN(len(typed))]
		wrong := map[string][]string{
			"int":  {"abc", "-1", "1.5", "admin"},
			"item": {"abc", "-1", "1.5", "admin"},
			"uuid": {"4711", "admin", "not-a-uuid", "550e8400e29b41d4a716446655440000"},
		}[q.tpl.segs[i].slot.name]
		add("wrong type", src, dst, method, replace(i, wrong[r.IntN(len(wrong))]))
	}
	return out
}

// sparseSpecs reads the mesh's specs, by callee SPIFFE ID.
func sparseSpecs(t *testing.T, w *world) map[string]*openapi.Spec {
	specs := map[string]*openapi.Spec{}
	for _, s := range w.services {
		if sparseAPIs[s.name] == nil {
			continue
		}
		spec, err := openapi.Load("testdata/openapi/" + s.name + ".yaml")
		require.NoError(t, err)
		require.Empty(t, spec.Refused)
		require.Len(t, spec.Operations, len(sparseAPIs[s.name]))
		specs[s.id("example.org")] = spec
	}
	return specs
}

// learnSparse learns reqs as the exporter does (extract.go): the learner
// checks and shapes the path, then an operation of the callee's spec, if
// the request is one, gives its route; rendering with the specs grants
// the routes of its enums' other values. It returns the policy and what it
// holds per caller and method.
func learnSparse(t *testing.T, reqs []request, specs map[string]*openapi.Spec) (*opatest.Policy, *render.Bundle, int) {
	learner, err := route.NewLearner(nil, maxPathLen, maxSegments)
	require.NoError(t, err)
	records := make([]aggregate.Record, 0, len(reqs))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, q := range reqs {
		rt, origin, err := learner.LearnFrom(q.path, "", false)
		require.NoError(t, err, "legitimate path %q refused", q.path)
		key, wild := rt.String(), rt.HasWildcard()
		if spec := specs[q.dst()]; spec != nil {
			p := route.TrimQuery(q.path)
			op, ok := spec.Match(q.tpl.method, p)
			require.True(t, ok, "%s %s is no operation of the spec", q.tpl.method, q.path)
			segs := route.AppendSegments(nil, p)
			k, w := op.AppendKey(nil, segs)
			key, wild, origin = string(k), w, route.OpenAPI
		}
		var values uint64
		if wild {
			values = aggregate.ValueBit(route.TrimQuery(q.path))
		}
		ts := base.Add(time.Duration(i) * time.Second)
		records = append(records, aggregate.Record{
			Key:   aggregate.Key{Destination: q.dst(), Source: q.src(), Method: q.tpl.method, Route: key},
			Stats: aggregate.Stats{Count: 1, FirstSeen: ts, LastSeen: ts, Values: values, Origin: uint8(origin)},
		})
	}
	agg := aggregate.New(aggregate.Limits{Entries: 1 << 20})
	require.Zero(t, agg.Observe(records))
	snap := agg.Snapshot()
	b, err := render.Render(context.Background(), snap, render.Options{
		CardinalityThreshold: threshold,
		Specs: func(dst string) render.Spec {
			if spec := specs[dst]; spec != nil {
				return lenient{spec}
			}
			return nil
		},
	})
	require.NoError(t, err)
	require.Zero(t, b.Skipped)
	return opatest.Load(t, b.Tarball), b, len(snap)
}

type sparseResult struct {
	keys, rules      int
	allowed          int
	denied           map[string]int // template -> held-out denied
	probes, leaked   map[string]int // kind -> total, allowed
	leaks            []sparseProbe
	heldAllowedShare float64
}

func TestLearningQualitySparseWithSpecs(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped with -short")
	}
	start := time.Now()
	r := rand.New(rand.NewPCG(seed1, seed2))
	w := newSparseWorld()
	learn, held := sparseTraffic(r, w)
	var probes []sparseProbe
	discarded := map[string]int{}
	for _, q := range held {
		for _, p := range w.sparseProbes(r, q) {
			if w.legit(p.caller, p.req.Destination+headerDestination(p.req), p.req.Method, p.req.Path) {
				discarded[p.kind]++
				continue
			}
			probes = append(probes, p)
		}
	}

	measure := func(specs map[string]*openapi.Spec) sparseResult {
		pq, b, keys := learnSparse(t, learn, specs)
		res := sparseResult{keys: keys, rules: len(b.Rules), denied: map[string]int{}, probes: map[string]int{}, leaked: map[string]int{}}
		for _, q := range held {
			if pq.Allowed(input(q.dst(), q.src(), q.tpl.method, q.path)) {
				res.allowed++
			} else {
				res.denied[q.e.src.name+" -> "+q.e.dst.name+" "+q.tpl.spec]++
			}
		}
		res.heldAllowedShare = float64(res.allowed) / float64(len(held))
		for _, p := range probes {
			res.probes[p.kind]++
			if pq.Allowed(p.req) {
				res.leaked[p.kind]++
				res.leaks = append(res.leaks, p)
			}
		}
		return res
	}
	without := measure(nil)
	with := measure(sparseSpecs(t, w))

	nOps := 0
	for _, e := range w.edges {
		nOps += len(e.tpls)
	}
	var tbl strings.Builder
	tw := tabwriter.NewWriter(&tbl, 0, 0, 2, ' ', 0)
	row := func(label string, a, b any) { fmt.Fprintf(tw, "%s\t%v\t%v\n", label, a, b) }
	row("services / edges / edge operations", fmt.Sprintf("%d / %d / %d", len(w.services), len(w.edges), nOps), "")
	row("requests learned / held out", fmt.Sprintf("%d / %d", len(learn), len(held)), "")
	row("", "without specs", "with specs")
	row("aggregate keys (learned routes)", without.keys, with.keys)
	row("rules rendered", without.rules, with.rules)
	share := func(s sparseResult) string {
		return fmt.Sprintf("%d / %d = %.1f%%", s.allowed, len(held), 100*s.heldAllowedShare)
	}
	row(fmt.Sprintf("held-out legitimate allowed (goal >= %.0f%% with specs)", 100*goalHeldOut), share(without), share(with))
	row("probe kind (discarded as legitimate)", "allowed / total", "allowed / total")
	for _, k := range sparseProbeKinds {
		row(fmt.Sprintf("  %s (%d)", k, discarded[k]), fmt.Sprintf("%d / %d", without.leaked[k], without.probes[k]),
			fmt.Sprintf("%d / %d", with.leaked[k], with.probes[k]))
	}
	require.NoError(t, tw.Flush())
	t.Logf("learning quality, sparse traffic (seed %d,%d; threshold %d; each request seen %d times; no http.route):\n%s",
		seed1, seed2, threshold, sparseRepeat, tbl.String())

	for _, c := range []struct {
		name string
		res  sparseResult
	}{{"without specs", without}, {"with specs", with}} {
		if len(c.res.denied) > 0 {
			var sb strings.Builder
			tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
			keys := make([]string, 0, len(c.res.denied))
			for k := range c.res.denied {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%d / %d\n", k, c.res.denied[k], sparseHeld)
			}
			require.NoError(t, tw.Flush())
			t.Logf("%s: held-out legitimate requests denied, by edge operation:\n%s", c.name, sb.String())
		}
		for _, p := range c.res.leaks {
			t.Errorf("GOAL MISSED (%s): %s probe allowed: %s %s (%s)", c.name, p.kind, p.req.Method, p.req.Path, p.req.Header)
		}
	}
	if with.heldAllowedShare < goalHeldOut {
		t.Errorf("GOAL MISSED: with specs, %.1f%% of held-out legitimate requests allowed, goal >= %.0f%%",
			100*with.heldAllowedShare, 100*goalHeldOut)
	}
	t.Logf("elapsed %s", time.Since(start).Round(time.Millisecond))
}

// headerDestination is "" when the probe's Destination is set (a spoofed
// header), else the By of its header, for the ground truth.
func headerDestination(q opatest.Request) string {
	if q.Destination != "" {
		return ""
	}
	by, _, _ := strings.Cut(strings.TrimPrefix(q.Header, "By="), ";")
	return by
}

// lenient is a spec without strict, as the sparse mesh configures them.
type lenient struct{ *openapi.Spec }

func (lenient) Strict() bool { return false }
