package route

import (
	"slices"
	"strings"
)

// Generalize is the cardinality backstop. Among the routes one caller used
// on one callee with one method, a position where at least threshold
// distinct literal values follow the same parent and precede the same
// (generalized) rest of the route becomes a single wildcard of the narrowest
// type that admits them all. The first segment and structural segments stay
// literal.
// A threshold below 2 turns the backstop off. The result is sorted and
// free of duplicates, so the same input always gives the same output.
func Generalize(routes []Route, threshold int) []Route {
	root := &node{}
	for _, r := range routes {
		root.insert(r)
	}
	if threshold >= 2 {
		root.collapse(0, threshold)
	}
	var out []Route
	root.walk(nil, &out)
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

// merge adds every route below o to n.
func (n *node) merge(o *node) {
	n.end = n.end || o.end
	for lit, c := range o.lit {
		n.child(Segment{Lit: lit}).merge(c)
	}
	for t, c := range o.wild {
		n.child(Segment{Wild: t}).merge(c)
	}
}

// collapse works bottom-up. At a position with at least threshold
// distinct literal values it first generalizes what follows them all
// together (their merged subtrees), then counts, for each generalized
// continuation, the values that were followed by it: a continuation seen
// after at least threshold values is learned once under a wildcard and
// removed from those values. Counting per continuation keeps one sensitive
// route seen on one resource (/users/root/reset-password) from spreading
// to every sibling that only shared a common route.
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
	var values []string
	merged := &node{}
	for lit, c := range n.lit {
		if _, ok := Classify(lit); ok && !isStructural(lit) {
			values = append(values, lit)
			merged.merge(c)
		}
	}
	if len(values) < threshold {
		return
	}
	merged.collapse(depth+1, threshold)
	var general []Route
	merged.walk(nil, &general)
	sortRoutes(general)

	// generalized continuation -> value -> its own continuations
	groups := map[string]map[string][]Route{}
	cover := map[string]Route{}
	for _, v := range values {
		var own []Route
		n.lit[v].walk(nil, &own)
		for _, sfx := range own {
			// Generalizing only widens, so some route covers sfx.
			i := slices.IndexFunc(general, func(g Route) bool { return Covers(g, sfx) })
			k := general[i].String()
			cover[k] = general[i]
			if groups[k] == nil {
				groups[k] = map[string][]Route{}
			}
			groups[k][v] = append(groups[k][v], sfx)
		}
	}
	for k, members := range groups {
		if len(members) < threshold {
			continue
		}
		var t Type
		for v, own := range members {
			c, _ := Classify(v)
			if t == 0 {
				t = c
			} else {
				t = Join(t, c)
			}
			for _, sfx := range own {
				if child := n.lit[v]; child != nil && child.remove(sfx) {
					delete(n.lit, v)
				}
			}
		}
		n.child(Segment{Wild: t}).insert(cover[k])
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

func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int { return strings.Compare(a.String(), b.String()) })
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
