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
// the wildcards' types, position by position.
type templateGroup struct {
	Literals  []int                 `json:"literals"`
	Wildcards []int                 `json:"wildcards"`
	Routes    map[string][][]string `json:"routes"`
}

// templates are a grant's templateGroups by segment count, then by their
// wildcard positions joined by ",". Objects, not lists, all the way to a
// group's candidates: OPA converts a list it reads from its store whole,
// an object only as far as it is looked into.
type templates map[string]map[string]*templateGroup

func (t templates) add(rt route.Route) {
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
		g = &templateGroup{Literals: lits, Wildcards: wilds, Routes: map[string][][]string{}}
		t[n][id] = g
	}
	k := strings.Join(key, "/")
	g.Routes[k] = append(g.Routes[k], types)
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
func readTemplates(v any) ([]route.Route, error) {
	byCount, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("templates are not an object")
	}
	var out []route.Route
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
				out = append(out, rt)
			}
		default:
			return nil, errors.New("templates of a segment count are neither groups nor a list")
		}
	}
	return out, nil
}

func readGroup(count string, g map[string]any) ([]route.Route, error) {
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
	routes, ok := g["routes"].(map[string]any)
	if !ok {
		return nil, errors.New("template group without routes")
	}
	var out []route.Route
	for key, cands := range routes {
		var parts []string
		if len(lits) > 0 {
			parts = strings.Split(key, "/")
		} else if key != "" {
			parts = []string{key}
		}
		if len(parts) != len(lits) {
			return nil, fmt.Errorf("template key %q does not have %d literal segments", key, len(lits))
		}
		list, ok := cands.([]any)
		if !ok {
			return nil, errors.New("template candidates are not a list")
		}
		for _, c := range list {
			types, ok := c.([]any)
			if !ok || len(types) != len(wilds) {
				return nil, errors.New("template candidate does not type each wildcard")
			}
			rt := make(route.Route, n)
			for j, i := range lits {
				rt[i].Lit = parts[j]
			}
			for j, i := range wilds {
				name, _ := types[j].(string)
				t, ok := route.ParseType(name)
				if !ok {
					return nil, fmt.Errorf("unknown wildcard type %q", name)
				}
				rt[i].Wild = t
			}
			out = append(out, rt)
		}
	}
	return out, nil
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
		switch s := s.(type) {
		case string:
			rt[i].Lit = s
		case map[string]any:
			name, _ := s["type"].(string)
			t, ok := route.ParseType(name)
			if !ok {
				return nil, fmt.Errorf("unknown wildcard type %q", name)
			}
			rt[i].Wild = t
		default:
			return nil, errors.New("template segment is neither a string nor a wildcard")
		}
	}
	return rt, nil
}
