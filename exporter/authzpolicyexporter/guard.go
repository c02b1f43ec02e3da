package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"hash/maphash"
	"slices"
	"time"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// shrinkGuard holds back a bundle that would remove many allow rules for a
// reason other than window expiry: a lost aggregate (a restart without
// storage, a corrupt state) must not deny traffic that was allowed. Rules
// whose caller, callee and method lost access to expiry, and rules the new
// bundle still covers (a literal generalized into a wildcard), are
// explained; the rest count against maxShrink. A held-back removal is
// released after a whole window, when the access has really gone unseen
// that long.
type shrinkGuard struct {
	maxShrink float64
	window    time.Duration

	// published are the rules of the bundle in place, each once (the
	// rendered bundle's or those read back from it); held as they are, not
	// copied or keyed, since a large mesh has hundreds of thousands.
	published []render.Rule
	expired   map[group]bool // groups with expired keys since then
	heldSince time.Time
	// operation, when set, names the operation a rule is one of the
	// routes of, where an operation is granted as many (an enum's
	// values): those rules count as one, removed if any is, so that one
	// request does not weigh 64 rules.
	operation func(render.Rule) (string, bool)
}

type group struct{ dst, src, method string }

func newShrinkGuard(maxShrink float64, window time.Duration) *shrinkGuard {
	return &shrinkGuard{maxShrink: maxShrink, window: window, expired: map[group]bool{}}
}

// setPublished records the rules of the bundle now in place, which are
// its: nothing changes them afterwards.
func (g *shrinkGuard) setPublished(rules []render.Rule) {
	g.published = rules
	clear(g.expired)
	g.heldSince = time.Time{}
}

// expiredKeys notes access that the window removed.
func (g *shrinkGuard) expiredKeys(keys []aggregate.Key) {
	for _, k := range keys {
		g.expired[group{k.Destination, k.Source, k.Method}] = true
	}
}

// check returns how many rules the next bundle would remove without an
// explanation, and whether it must be held back now. explained tells of
// removals made on purpose (an audited callee, an operator's deny rule).
func (g *shrinkGuard) check(next []render.Rule, now time.Time, explained func(render.Rule) bool) (unexplained int, hold bool) {
	if len(g.published) == 0 || g.maxShrink >= 1 {
		return 0, false
	}
	byGroup := map[group][]render.Rule{}
	// A rule still present is found by a hash of its route, confirmed, so
	// that no key string is built per rule.
	seed := maphash.MakeSeed()
	present := make(map[routeAt]route.Route, len(next))
	for _, r := range next {
		gr := group{r.Destination, r.Source, r.Method}
		byGroup[gr] = append(byGroup[gr], r)
		present[routeAt{gr, routeHash(seed, r.Route)}] = r.Route
	}
	var removed []render.Rule
	for _, r := range g.published {
		gr := group{r.Destination, r.Source, r.Method}
		if p, ok := present[routeAt{gr, routeHash(seed, r.Route)}]; ok && slices.Equal(p, r.Route) {
			continue
		}
		if g.expired[gr] || covered(byGroup[gr], r.Route) || explained(r) {
			continue
		}
		removed = append(removed, r)
	}
	unexplained, published := len(removed), len(g.published)
	if unexplained > 0 && g.operation != nil {
		unexplained, published = g.accesses(removed), g.accesses(g.published)
	}
	if float64(unexplained) <= g.maxShrink*float64(published) {
		g.heldSince = time.Time{}
		return unexplained, false
	}
	if g.heldSince.IsZero() {
		g.heldSince = now
	}
	return unexplained, now.Sub(g.heldSince) < g.window
}

// accesses counts rules with the routes of one operation as one.
func (g *shrinkGuard) accesses(rules []render.Rule) int {
	n := len(rules)
	ops := map[string]bool{}
	for _, r := range rules {
		if op, ok := g.operation(r); ok {
			if ops[op] {
				n--
			}
			ops[op] = true
		}
	}
	return n
}

// routeAt is a route of a group, by hash.
type routeAt struct {
	group
	route uint64
}

func routeHash(seed maphash.Seed, r route.Route) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, s := range r {
		h.WriteString(s.Lit)
		h.WriteByte(byte(s.Wild))
		h.WriteByte('/')
	}
	return h.Sum64()
}

// covered reports whether one of rules grants all of route r: it covers
// r, and nothing it leaves out (Rule.Except) overlaps r.
func covered(rules []render.Rule, r route.Route) bool {
	for _, c := range rules {
		if route.Covers(c.Route, r) && !slices.ContainsFunc(c.Except, func(e route.Route) bool { return route.Overlaps(e, r) }) {
			return true
		}
	}
	return false
}
