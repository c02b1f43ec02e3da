package route

import (
	"slices"
	"strings"
)

// Generalize is the cardinality backstop. Among the routes one caller used
// on one callee with one method, a position where at least threshold
// distinct literal values follow the same parent, each followed by exactly
// the same (generalized) rest of the route, becomes a single wildcard of the
// narrowest type that admits them, for that rest only: a wildcard never
// admits a combination of segments that was not itself seen often enough.
// The first segment and structural segments stay literal.
// A threshold below 2 turns the backstop off. The result is sorted and
// free of duplicates, so the same input always gives the same output.
// gRPC methods (see isGRPCMethod) are kept as they are.
func Generalize(routes []Route, threshold int) []Route {
	return GeneralizeKeeping(routes, nil, threshold)
}

// GeneralizeKeeping is Generalize where the routes with keep[i] set are
// kept as they are and count for no wildcard: an operation of an API spec
// is the shape the API itself states, and its literals (an enum's values
// among them) never widen into a wildcard.
func GeneralizeKeeping(routes []Route, keep []bool, threshold int) []Route {
	root := &node{}
	var out []Route
	kept := map[string]bool{}
	for i, r := range routes {
		if i < len(keep) && keep[i] || len(r) == 2 && r[0].Wild == 0 && r[1].Wild == 0 && isGRPCMethod([]string{r[0].Lit, r[1].Lit}) {
			if k := r.String(); !kept[k] {
				kept[k] = true
				out = append(out, r)
			}
			continue
		}
		root.insert(r)
	}
	if threshold >= 2 {
		root.collapse(0, threshold)
	}
	var walked []Route
	root.walk(nil, &walked)
	for _, r := range walked {
		// A wildcard the backstop made may be one a spec gave as well.
		if len(kept) == 0 || !kept[r.String()] {
			out = append(out, r)
		}
	}
	sortRoutes(out)
	return out
}

type node struct {
	end  bool // a route ends here
	lit  map[string]*node
	wild map[Type]*node
}

func (n *node) insert(r Route) {
	for _, s := range r {
		n = n.child(s)
	}
	n.end = true
}

func (n *node) child(s Segment) *node {
	if s.Wild != 0 {
		if n.wild == nil {
			n.wild = map[Type]*node{}
		}
		c := n.wild[s.Wild]
		if c == nil {
			c = &node{}
			n.wild[s.Wild] = c
		}
		return c
	}
	if n.lit == nil {
		n.lit = map[string]*node{}
	}
	c := n.lit[s.Lit]
	if c == nil {
		c = &node{}
		n.lit[s.Lit] = c
	}
	return c
}

// collapse works bottom-up: it first generalizes below every child, each
// subtree on its own, then groups this node's literal children by their
// continuations (the routes below a child), exactly equal ones only. A
// continuation that at least threshold distinct values were followed by is
// learned once under a wildcard of their joined type and removed from those
// values. So /users/root/reset-password, seen once, stays literal next to
// /users/{token}/profile, and ten users with ten different actions stay ten
// routes: an action seen with one user is never granted to the others. A
// typed wildcard learned from a span (/users/{int}) is one parent like a
// literal: ten actions seen after it, each with one user, do become
// /users/{int}/{token}.
// depth is the position of n's children; the first (depth 0) stays literal.
func (n *node) collapse(depth, threshold int) {
	for _, c := range n.lit {
		c.collapse(depth+1, threshold)
	}
	for _, c := range n.wild {
		c.collapse(depth+1, threshold)
	}
	if depth == 0 || len(n.lit) < threshold {
		return
	}
	// continuation -> the values followed by it
	type group struct {
		rest   Route
		values []string
	}
	groups := map[string]*group{}
	for v, c := range n.lit {
		if _, ok := Classify(v); !ok || isStructural(v) {
			continue
		}
		var rests []Route
		c.walk(nil, &rests)
		for _, rest := range rests {
			k := rest.String()
			g := groups[k]
			if g == nil {
				g = &group{rest: rest}
				groups[k] = g
			}
			g.values = append(g.values, v)
		}
	}
	var widened []*node
	for _, g := range groups {
		if len(g.values) < threshold {
			continue
		}
		var t Type
		for _, v := range g.values {
			c, _ := Classify(v)
			if t == 0 {
				t = c
			} else {
				t = Join(t, c)
			}
			if n.lit[v].remove(g.rest) {
				delete(n.lit, v)
			}
		}
		w := n.child(Segment{Wild: t})
		w.insert(g.rest)
		if !slices.Contains(widened, w) {
			widened = append(widened, w)
		}
	}
	// What now follows one wildcard came from different values: continuations
	// that none of them had threshold values for may have them together
	// (ten users, each seen with ten repositories of their own).
	for _, w := range widened {
		w.collapse(depth+1, threshold)
	}
}

// Covers reports whether route g admits every path route r admits.
func Covers(g, r Route) bool {
	if len(g) != len(r) {
		return false
	}
	for i := range g {
		switch {
		case g[i].Wild == 0:
			if r[i].Wild != 0 || r[i].Lit != g[i].Lit {
				return false
			}
		case r[i].Wild == 0:
			if !g[i].Wild.Matches(r[i].Lit) {
				return false
			}
		case Join(r[i].Wild, g[i].Wild) != g[i].Wild:
			return false
		}
	}
	return true
}

// sortRoutes sorts by the canonical form, computing each key once.
func sortRoutes(rs []Route) {
	type keyed struct {
		key string
		r   Route
	}
	ks := make([]keyed, len(rs))
	for i, r := range rs {
		ks[i] = keyed{r.String(), r}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	for i := range ks {
		rs[i] = ks[i].r
	}
}

// remove deletes route r below n and reports whether n is left empty.
func (n *node) remove(r Route) bool {
	if len(r) == 0 {
		n.end = false
	} else {
		s := r[0]
		if s.Wild != 0 {
			if c := n.wild[s.Wild]; c != nil && c.remove(r[1:]) {
				delete(n.wild, s.Wild)
			}
		} else if c := n.lit[s.Lit]; c != nil && c.remove(r[1:]) {
			delete(n.lit, s.Lit)
		}
	}
	return !n.end && len(n.lit) == 0 && len(n.wild) == 0
}

func (n *node) walk(prefix Route, out *[]Route) {
	if n.end {
		*out = append(*out, slices.Clone(prefix))
	}
	for lit, c := range n.lit {
		c.walk(append(prefix, Segment{Lit: lit}), out)
	}
	for t, c := range n.wild {
		c.walk(append(prefix, Segment{Wild: t}), out)
	}
}
