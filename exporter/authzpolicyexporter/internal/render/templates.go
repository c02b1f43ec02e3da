package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// templateGroup holds a grant's wildcard routes of one segment count with
// wildcards at the same positions, keyed by their literal segments joined
// by "/" (no segment holds one): a request finds its candidates with one
// keyed lookup and checks only the wildcard positions. Each candidate is
// the wildcards' types, position by position. Operations are the routes
// of API specs' operations that others take requests from.
type templateGroup struct {
	Literals   []int                                 `json:"literals"`
	Wildcards  []int                                 `json:"wildcards"`
	Routes     map[string][][]string                 `json:"routes,omitempty"`
	Operations map[string]map[string]*operationRoute `json:"operations,omitempty"`
}

// operationRoute is a wildcard route less what an API spec's operations
// take of it (Rule.Except): Except by the values at the wildcards joined
// by "/" where such a route has a literal at each, ExceptMatching where it
// has not, by the positions of its literals among the wildcards joined by
// ",". A group's operation routes are keyed by their types joined by ",":
// objects again, which OPA reads only as far as it looks into them, where
// it would convert a list whole at every decision.
type operationRoute struct {
	Types          []string                   `json:"types"`
	Except         map[string]bool            `json:"except,omitempty"`
	ExceptMatching map[string]*exceptMatching `json:"except_matching,omitempty"`
}

// exceptMatching are the routes left out that have literals at the same
// wildcards (positions among the wildcards, At), keyed by those literals
// joined by "/", as their segments at every wildcard: null where such a
// route has the route's own wildcard, a string for a literal, a wildcard
// for a type. A request finds its candidates by one keyed lookup.
type exceptMatching struct {
	At   []int                         `json:"at"`
	Rows map[string][][]*exceptSegment `json:"rows"`
}

// exceptSegment is a literal or a wildcard; nil stands for the route's
// own wildcard.
type exceptSegment struct {
	lit  string
	wild string
}

func (e *exceptSegment) MarshalJSON() ([]byte, error) {
	if e.wild != "" {
		return json.Marshal(wildcard{Type: e.wild})
	}
	return json.Marshal(e.lit)
}

func (e *exceptSegment) UnmarshalJSON(b []byte) error {
	var w wildcard
	if json.Unmarshal(b, &w) == nil && w.Type != "" {
		e.wild = w.Type
		return nil
	}
	return json.Unmarshal(b, &e.lit)
}

// templates are a grant's templateGroups by segment count, then by their
// wildcard positions joined by ",". Objects, not lists, all the way to a
// group's candidates: OPA converts a list it reads from its store whole,
// an object only as far as it is looked into.
type templates map[string]map[string]*templateGroup

func (t templates) add(rt route.Route, except []route.Route) {
	lits := []int{} // a list, also for a route of wildcards only
	var wilds []int
	var key, types, at []string
	for i, s := range rt {
		if s.Wild != 0 {
			wilds = append(wilds, i)
			types = append(types, s.Wild.String())
			at = append(at, strconv.Itoa(i))
			continue
		}
		lits = append(lits, i)
		key = append(key, s.Lit)
	}
	n := strconv.Itoa(len(rt))
	if t[n] == nil {
		t[n] = map[string]*templateGroup{}
	}
	id := strings.Join(at, ",")
	g := t[n][id]
	if g == nil {
		g = &templateGroup{Literals: lits, Wildcards: wilds}
		t[n][id] = g
	}
	k := strings.Join(key, "/")
	if len(except) == 0 {
		if g.Routes == nil {
			g.Routes = map[string][][]string{}
		}
		g.Routes[k] = append(g.Routes[k], types)
		return
	}
	op := &operationRoute{Types: types}
	for _, ex := range except {
		var lits []string
		litAt := []int{} // a list, also for none
		row := make([]*exceptSegment, len(wilds))
		for j, i := range wilds {
			switch {
			case ex[i] == rt[i]:
			case ex[i].Wild == 0:
				row[j] = &exceptSegment{lit: ex[i].Lit}
			default:
				row[j] = &exceptSegment{wild: ex[i].Wild.String()}
			}
			if ex[i].Wild == 0 {
				lits = append(lits, ex[i].Lit)
				litAt = append(litAt, j)
			}
		}
		key := strings.Join(lits, "/")
		if len(lits) == len(wilds) {
			if op.Except == nil {
				op.Except = map[string]bool{}
			}
			op.Except[key] = true
			continue
		}
		at := make([]string, len(litAt))
		for j, p := range litAt {
			at[j] = strconv.Itoa(p)
		}
		id := strings.Join(at, ",")
		if op.ExceptMatching == nil {
			op.ExceptMatching = map[string]*exceptMatching{}
		}
		m := op.ExceptMatching[id]
		if m == nil {
			m = &exceptMatching{At: litAt, Rows: map[string][][]*exceptSegment{}}
			op.ExceptMatching[id] = m
		}
		m.Rows[key] = append(m.Rows[key], row)
	}
	if g.Operations == nil {
		g.Operations = map[string]map[string]*operationRoute{}
	}
	if g.Operations[k] == nil {
		g.Operations[k] = map[string]*operationRoute{}
	}
	g.Operations[k][strings.Join(types, ",")] = op
}

// sort orders each key's candidates, whatever the order routes came in.
func (t templates) sort() {
	for _, gs := range t {
		for _, g := range gs {
			for _, c := range g.Routes {
				slices.SortFunc(c, slices.Compare)
			}
		}
	}
}

// readTemplates returns the routes of a grant's "templates" as a bundle
// holds them: in templateGroups, or, as the version before them wrote, each
// route a list of literal segments and {"type": ...} wildcards.
func readTemplates(v any) ([]grantRoute, error) {
	byCount, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("templates are not an object")
	}
	var out []grantRoute
	for n, groups := range byCount {
		switch groups := groups.(type) {
		case map[string]any:
			for _, g := range groups {
				gm, ok := g.(map[string]any)
				if !ok {
					return nil, errors.New("template group is not an object")
				}
				rts, err := readGroup(n, gm)
				if err != nil {
					return nil, err
				}
				out = append(out, rts...)
			}
		case []any:
			for _, segs := range groups {
				list, ok := segs.([]any)
				if !ok {
					return nil, errors.New("template is not a list")
				}
				rt, err := readSegments(list)
				if err != nil {
					return nil, err
				}
				out = append(out, grantRoute{route: rt})
			}
		default:
			return nil, errors.New("templates of a segment count are neither groups nor a list")
		}
	}
	return out, nil
}

// group is a templateGroup's layout, as readGroup reads it.
type group struct {
	n           int
	lits, wilds []int
}

func readGroup(count string, g map[string]any) ([]grantRoute, error) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("template group of %q segments", count)
	}
	lits, err := positions(g["literals"], n)
	if err != nil {
		return nil, err
	}
	wilds, err := positions(g["wildcards"], n)
	if err != nil {
		return nil, err
	}
	isWild := make([]bool, n)
	for _, i := range wilds {
		isWild[i] = true
	}
	var rest []int
	for i := range n {
		if !isWild[i] {
			rest = append(rest, i)
		}
	}
	if len(wilds) == 0 || len(lits)+len(wilds) != n || !slices.Equal(lits, rest) {
		return nil, errors.New("template group: literal and wildcard positions do not partition the route")
	}
	gr := group{n: n, lits: lits, wilds: wilds}
	routes, hasRoutes := g["routes"].(map[string]any)
	ops, hasOps := g["operations"].(map[string]any)
	if !hasRoutes && !hasOps {
		return nil, errors.New("template group without routes")
	}
	var out []grantRoute
	for key, cands := range routes {
		list, ok := cands.([]any)
		if !ok {
			return nil, errors.New("template candidates are not a list")
		}
		for _, c := range list {
			rt, err := gr.route(key, c)
			if err != nil {
				return nil, err
			}
			out = append(out, grantRoute{route: rt})
		}
	}
	for key, cands := range ops {
		byTypes, ok := cands.(map[string]any)
		if !ok {
			return nil, errors.New("template operations are not an object")
		}
		for _, c := range byTypes {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, errors.New("template operation is not an object")
			}
			rt, err := gr.route(key, cm["types"])
			if err != nil {
				return nil, err
			}
			except, err := gr.except(rt, cm)
			if err != nil {
				return nil, err
			}
			out = append(out, grantRoute{route: rt, except: except})
		}
	}
	return out, nil
}

// route is the route of a candidate's key and types.
func (g group) route(key string, types any) (route.Route, error) {
	var parts []string
	if len(g.lits) > 0 {
		parts = strings.Split(key, "/")
	} else if key != "" {
		parts = []string{key}
	}
	if len(parts) != len(g.lits) {
		return nil, fmt.Errorf("template key %q does not have %d literal segments", key, len(g.lits))
	}
	list, ok := types.([]any)
	if !ok || len(list) != len(g.wilds) {
		return nil, errors.New("template candidate does not type each wildcard")
	}
	rt := make(route.Route, g.n)
	for j, i := range g.lits {
		rt[i].Lit = parts[j]
	}
	for j, i := range g.wilds {
		name, _ := list[j].(string)
		t, ok := route.ParseType(name)
		if !ok {
			return nil, fmt.Errorf("unknown wildcard type %q", name)
		}
		rt[i].Wild = t
	}
	return rt, nil
}

// except reads what an operation route leaves out, as routes.
func (g group) except(rt route.Route, op map[string]any) ([]route.Route, error) {
	var out []route.Route
	keys, _ := op["except"].(map[string]any)
	for k := range keys {
		vals := []string{k}
		if len(g.wilds) > 1 {
			vals = strings.Split(k, "/")
		}
		if len(vals) != len(g.wilds) {
			return nil, fmt.Errorf("except key %q does not have %d segments", k, len(g.wilds))
		}
		ex := slices.Clone(rt)
		for j, i := range g.wilds {
			ex[i] = route.Segment{Lit: vals[j]}
		}
		out = append(out, ex)
	}
	groups, _ := op["except_matching"].(map[string]any)
	for _, gv := range groups {
		gm, ok := gv.(map[string]any)
		if !ok {
			return nil, errors.New("except_matching group is not an object")
		}
		rows, _ := gm["rows"].(map[string]any)
		for _, rv := range rows {
			list, ok := rv.([]any)
			if !ok {
				return nil, errors.New("except_matching rows are not a list")
			}
			for _, r := range list {
				ex, err := g.exceptRow(rt, r)
				if err != nil {
					return nil, err
				}
				out = append(out, ex)
			}
		}
	}
	slices.SortFunc(out, func(a, b route.Route) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// exceptRow reads one row of except_matching as a route.
func (g group) exceptRow(rt route.Route, r any) (route.Route, error) {
	row, ok := r.([]any)
	if !ok || len(row) != len(g.wilds) {
		return nil, errors.New("except_matching row does not have a segment per wildcard")
	}
	ex := slices.Clone(rt)
	for j, i := range g.wilds {
		if row[j] == nil {
			continue // the route's own wildcard
		}
		seg, err := readSegment(row[j])
		if err != nil {
			return nil, fmt.Errorf("except_matching: %w", err)
		}
		ex[i] = seg
	}
	return ex, nil
}

// positions reads a strictly increasing list of segment positions below n.
func positions(v any, n int) ([]int, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("template group positions are not a list")
	}
	out := make([]int, 0, len(list))
	for _, p := range list {
		var i int
		switch p := p.(type) {
		case json.Number:
			x, err := strconv.Atoi(p.String())
			if err != nil {
				return nil, fmt.Errorf("template group position %q", p)
			}
			i = x
		case float64:
			i = int(p)
			if float64(i) != p {
				return nil, fmt.Errorf("template group position %v", p)
			}
		default:
			return nil, errors.New("template group position is not a number")
		}
		if i < 0 || i >= n || len(out) > 0 && i <= out[len(out)-1] {
			return nil, fmt.Errorf("template group position %d out of order or range", i)
		}
		out = append(out, i)
	}
	return out, nil
}

// readSegments reads a route of the version before templateGroups.
func readSegments(segs []any) (route.Route, error) {
	rt := make(route.Route, len(segs))
	for i, s := range segs {
		seg, err := readSegment(s)
		if err != nil {
			return nil, err
		}
		rt[i] = seg
	}
	return rt, nil
}

// readSegment reads a literal segment (a string) or a {"type": ...}
// wildcard.
func readSegment(v any) (route.Segment, error) {
	switch v := v.(type) {
	case string:
		return route.Segment{Lit: v}, nil
	case map[string]any:
		name, _ := v["type"].(string)
		t, ok := route.ParseType(name)
		if !ok {
			return route.Segment{}, fmt.Errorf("unknown wildcard type %q", name)
		}
		return route.Segment{Wild: t}, nil
	}
	return route.Segment{}, errors.New("template segment is neither a string nor a wildcard")
}
