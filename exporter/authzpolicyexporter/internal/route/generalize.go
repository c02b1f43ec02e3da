package route

import (
	"slices"
	"strings"
)

// Generalize is the cardinality backstop. Among the routes one caller used
// on one callee with one method, a position where at least threshold
// distinct literal values follow the same parent becomes a single wildcard
// of the narrowest type that admits them all; what followed each value is
// merged below it. The first segment and structural segments stay literal.
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
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.String(), b.String()) })
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

func (n *node) collapse(depth, threshold int) {
	if depth > 0 && len(n.lit) >= threshold {
		var t Type
		var values []string
		for lit := range n.lit {
			c, ok := Classify(lit)
			if !ok || isStructural(lit) {
				continue
			}
			values = append(values, lit)
			if t == 0 {
				t = c
			} else {
				t = Join(t, c)
			}
		}
		if len(values) >= threshold {
			merged := n.child(Segment{Wild: t})
			for _, v := range values {
				merged.merge(n.lit[v])
				delete(n.lit, v)
			}
		}
	}
	for _, c := range n.lit {
		c.collapse(depth+1, threshold)
	}
	for _, c := range n.wild {
		c.collapse(depth+1, threshold)
	}
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
