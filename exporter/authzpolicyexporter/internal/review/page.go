package review

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxNodes is how many nodes the page's graph draws before it
// collapses identities into their namespaces (and namespaces into their
// trust domains); the tables always list everything.
const DefaultMaxNodes = 150

// ModeInfo is a callee's mode as the page shows it.
type ModeInfo struct {
	Mode string // "audit" or "enforce" (a lifecycle.Mode); "" when unknown
	// LearningUntil ends an audited callee's learning (or relearning)
	// period; zero for a callee audited by an operator rule, or enforced.
	LearningUntil time.Time
}

// PageInput is what the review page shows. Every field is a plain value:
// the exporter fills it in at each publication, and a tool can fill it in
// from a bundle read back (render.Read: its rules and modes) and, when
// present, the review directory's evidence and changes.json
// (ParseChanges).
type PageInput struct {
	// Revision is the bundle's; when empty, the change log's.
	Revision string
	// Rules are the bundle's allow rules, with their evidence when known
	// (zero fields are shown empty), in any order.
	Rules []Rule
	// Modes are the callees' modes, by SPIFFE ID. A callee with a mode
	// and no rules is shown too.
	Modes map[string]ModeInfo
	// Changes is the latest publication's change log; nil when unknown.
	Changes *ChangeLog
	// MaxNodes is the graph's node budget; 0 is DefaultMaxNodes.
	MaxNodes int
	// Replicas are the replicas whose shards the bundle was merged from
	// (output::replica_id), in any order; none for a collector alone.
	Replicas []string
}

// Page renders the review page: one self-contained HTML file with the
// service graph as inline SVG, each callee's rules, mode and latest
// changes, and a filter. It reads no clock and no file: the same input, in
// any order, gives the same bytes. Every observed value is escaped by
// html/template for where it appears; the page's only script and style are
// constants, allowed by its Content-Security-Policy through their hashes,
// and the script reads nothing but the page's own text and data-*
// attributes that hold node numbers.
func Page(in PageInput) []byte {
	v := buildPage(in)
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, v); err != nil {
		// The view holds only strings, integers and slices of them.
		panic("review: page: " + err.Error())
	}
	return b.Bytes()
}

// Graph levels: what one node of the graph stands for.
const (
	levelIdentity = iota
	levelGroup    // a namespace (or a path's first segment) of a trust domain
	levelDomain   // a trust domain
)

// Layout, in SVG user units.
const (
	margin  = 20
	nodeW   = 220
	nodeH   = 26
	rowGap  = 8
	colGap  = 140
	headerH = 30
	bandGap = 50
	maxRows = 25 // a column longer than this continues in the next
	maxCols = 6  // columns per band; more start a band below
	labelN  = 30 // runes of a node's label
)

// Mode classes, which colour nodes and badges.
const (
	classLearning = "m-learning"
	classAudit    = "m-audit"
	classEnforce  = "m-enforce"
	classNone     = "m-none"
	classMixed    = "m-mixed"
)

// identity is where an ID sits in the graph.
type identity struct {
	id, domain, group string // group is "" for IDs that are not SPIFFE IDs
	// folded puts the identity, at the trust domain level, in one node
	// with the other small trust domains'.
	folded bool
}

// classify groups a SPIFFE ID by trust domain and namespace (the Istio
// form /ns/<ns>/sa/<sa>) or first path segment. Anything else (a caller
// pattern such as "*") goes to the empty domain.
func classify(id string) identity {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return identity{id: id}
	}
	domain, path, _ := strings.Cut(rest, "/")
	segs := strings.Split(path, "/")
	group := segs[0]
	if segs[0] == "ns" && len(segs) > 1 {
		group = "ns/" + segs[1]
	}
	return identity{id: id, domain: domain, group: group}
}

// short is a node's label: the service account (or last segment) of a
// SPIFFE ID, the ID itself otherwise.
func (i identity) short() string {
	if i.domain == "" {
		return i.id
	}
	rest := strings.TrimPrefix(i.id, "spiffe://"+i.domain)
	if sa := strings.Index(rest, "/sa/"); sa >= 0 && strings.HasPrefix(rest, "/ns/") {
		return rest[sa+len("/sa/"):]
	}
	if j := strings.LastIndexByte(rest, '/'); j >= 0 && j+1 < len(rest) {
		return rest[j+1:]
	}
	return i.id
}

// groupKey and groupLabel name an identity's group; domainLabel its trust
// domain.
func (i identity) groupKey() string { return i.domain + "\x00" + i.group }

func (i identity) groupLabel() string {
	if i.domain == "" {
		return "other identities"
	}
	return i.domain + " " + i.group
}

func (i identity) domainLabel() string {
	if i.folded {
		return "other trust domains"
	}
	if i.domain == "" {
		return "other identities"
	}
	return i.domain
}

// key is the node an identity belongs to at a level, and parent the
// column that node is drawn in.
func (i identity) key(level int) (key, parent string) {
	switch level {
	case levelIdentity:
		return i.id, i.groupKey()
	case levelGroup:
		return i.groupKey(), i.domain
	}
	if i.folded {
		return "\x00other", ""
	}
	return i.domain, ""
}

// foldDomains keeps the max-1 trust domains with the most identities
// (ties by name) as nodes of their own and folds the others into one.
func foldDomains(ids map[string]identity, max int) {
	size := map[string]int{}
	for _, i := range ids {
		size[i.domain]++
	}
	domains := slices.Collect(maps.Keys(size))
	slices.SortFunc(domains, func(a, b string) int { return cmp.Or(size[b]-size[a], strings.Compare(a, b)) })
	kept := map[string]bool{}
	for _, d := range domains[:min(len(domains), max-1)] {
		kept[d] = true
	}
	for id, i := range ids {
		i.folded = !kept[i.domain]
		ids[id] = i
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// anchor is a fragment ID for s: a hash, so that no observed value needs
// escaping into an id or an href.
func anchor(prefix, s string) string {
	h := sha256.Sum256([]byte(s))
	return prefix + hex.EncodeToString(h[:8])
}

// modeWords say a mode class in the counts of a page or a group node.
var modeWords = map[string]string{
	classLearning: "learning", classAudit: "audit", classEnforce: "enforced", classNone: "no mode",
}

// modeText and modeClass say a callee's mode in words and as a colour.
func modeText(m ModeInfo, known bool) string {
	switch {
	case !known:
		return ""
	case m.Mode == "audit" && !m.LearningUntil.IsZero():
		return "learning until " + timestamp(m.LearningUntil)
	case m.Mode == "enforce":
		return "enforced"
	}
	return m.Mode
}

func modeClass(m ModeInfo, known bool) string {
	switch {
	case !known:
		return classNone
	case m.Mode == "audit" && !m.LearningUntil.IsZero():
		return classLearning
	case m.Mode == "audit":
		return classAudit
	case m.Mode == "enforce":
		return classEnforce
	}
	return classNone
}

// The view: everything the template prints, computed and sorted here.
type pageView struct {
	Title, Revision, PreviousRevision string
	HasChanges                        bool
	Added, Removed                    string // counts by origin and reason
	ModeChanges                       int
	Rules, Identities, Callees        int
	ModeCounts                        string
	Collapsed                         string // why the graph shows groups, "" when it shows identities
	Replicas                          []string
	Graph                             graphView
	Groups                            []groupView
}

type graphView struct {
	Width, Height int
	Headers       []headerView
	Nodes         []nodeView
	Edges         []edgeView
}

type headerView struct {
	X, Y         int
	Label, Title string
}

type nodeView struct {
	N            int
	X, Y         int
	TX, TY       int // label position
	Class        string
	Label, Title string
	Href         string // "" for a node with no section to link to
}

type edgeView struct {
	A, B   int
	D      string // the curve
	Head   string // the arrowhead
	LX, LY int    // the label's position
	Label  string
	Title  string
}

type groupView struct {
	ID, Label string
	Callees   []calleeView
}

type calleeView struct {
	ID, Anchor string
	Node       int
	Mode       string
	ModeClass  string
	Rules      []ruleView
	Added      []Added
	Removed    []Removed
	Modes      []ModeChange
}

type ruleView struct {
	Node                                int // the caller's graph node
	Caller, Method, Route, Except       string
	Origin                              string
	FirstSeen, LastSeen, Count, Buckets string
}

// pair is a caller and a callee.
type pair struct{ caller, callee string }

func buildPage(in PageInput) pageView {
	rules := slices.Clone(in.Rules)
	slices.SortFunc(rules, compareRules)
	var log ChangeLog
	if in.Changes != nil {
		log = *in.Changes
	}
	v := pageView{Revision: cmp.Or(in.Revision, log.Revision), PreviousRevision: log.PreviousRevision, HasChanges: in.Changes != nil}
	v.Replicas = slices.Sorted(slices.Values(in.Replicas))
	v.Title = "Authorization policy review"
	if v.Revision != "" {
		v.Title += ": revision " + v.Revision
	}

	// Identities: every caller and callee of a rule, every callee with a
	// mode. Callees with a section: those, and the change log's.
	ids := map[string]identity{}
	add := func(id string) {
		if _, ok := ids[id]; !ok {
			ids[id] = classify(id)
		}
	}
	callees := map[string]bool{}
	routes := map[pair]map[string]bool{} // distinct method and route per pair
	for _, r := range rules {
		add(r.Caller)
		add(r.Callee)
		callees[r.Callee] = true
		p := pair{r.Caller, r.Callee}
		if routes[p] == nil {
			routes[p] = map[string]bool{}
		}
		routes[p][r.Method+" "+r.Route] = true
	}
	for id := range in.Modes {
		add(id)
		callees[id] = true
	}
	sectioned := maps.Clone(callees)
	for _, a := range log.Added {
		sectioned[a.Callee] = true
	}
	for _, r := range log.Removed {
		sectioned[r.Callee] = true
	}
	for _, m := range log.Modes {
		sectioned[m.Callee] = true
	}
	v.Rules, v.Identities, v.Callees = len(rules), len(ids), len(callees)

	modeCount := map[string]int{}
	for id := range callees {
		m, ok := in.Modes[id]
		modeCount[modeClass(m, ok)]++
	}
	v.ModeCounts = countsText(modeCount, modeWords)
	if in.Changes != nil {
		v.ModeChanges = len(log.Modes)
		added, removed := map[string]int{}, map[string]int{}
		for _, a := range log.Added {
			added[a.Origin]++
		}
		for _, r := range log.Removed {
			removed[r.Reason]++
		}
		v.Added, v.Removed = countsText(added, nil), countsText(removed, nil)
	}

	max := cmp.Or(in.MaxNodes, DefaultMaxNodes)
	level := levelIdentity
	for ; level < levelDomain && nodeCount(ids, level) > max; level++ {
	}
	switch {
	case level == levelGroup:
		v.Collapsed = fmt.Sprintf("%d identities: the graph shows one node per namespace, the tables every identity.", len(ids))
	case level == levelDomain && nodeCount(ids, level) > max:
		foldDomains(ids, max)
		v.Collapsed = fmt.Sprintf("%d identities: the graph shows one node per trust domain, the smallest together, the tables every identity.", len(ids))
	case level == levelDomain:
		v.Collapsed = fmt.Sprintf("%d identities: the graph shows one node per trust domain, the tables every identity.", len(ids))
	}
	var nodeOf map[string]int
	v.Graph, nodeOf = layout(ids, level, in.Modes, callees, routes)

	// Sections, grouped as the graph's columns are.
	byGroup := map[string][]string{}
	for id := range sectioned {
		i := ids[id]
		if i.id == "" {
			i = classify(id)
		}
		byGroup[i.groupKey()] = append(byGroup[i.groupKey()], id)
	}
	calleeRules := map[string][]ruleView{}
	for _, r := range rules {
		node, _ := ids[r.Caller].key(level)
		calleeRules[r.Callee] = append(calleeRules[r.Callee], ruleView{
			Node:   nodeOf[node],
			Caller: r.Caller, Method: r.Method, Route: r.Route, Except: r.Except, Origin: r.Origin,
			FirstSeen: timestamp(r.FirstSeen), LastSeen: timestamp(r.LastSeen),
			Count: number(uint64(r.Count)), Buckets: number(uint64(r.TimeBuckets)),
		})
	}
	added, removed, modes := map[string][]Added{}, map[string][]Removed{}, map[string][]ModeChange{}
	for _, a := range log.Added {
		added[a.Callee] = append(added[a.Callee], a)
	}
	for _, r := range log.Removed {
		removed[r.Callee] = append(removed[r.Callee], r)
	}
	for _, m := range log.Modes {
		modes[m.Callee] = append(modes[m.Callee], m)
	}
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		members := byGroup[g]
		slices.Sort(members)
		gv := groupView{ID: anchor("g-", g), Label: classify(members[0]).groupLabel()}
		for _, id := range members {
			m, known := in.Modes[id]
			i, ok := ids[id]
			if !ok {
				i = classify(id)
			}
			node, _ := i.key(level)
			n, drawn := nodeOf[node]
			if !drawn {
				n = -1
			}
			c := calleeView{
				ID: id, Anchor: anchor("c-", id), Node: n,
				Mode: modeText(m, known), ModeClass: modeClass(m, known),
				Rules: calleeRules[id],
				Added: sortedBy(added[id], func(a, b Added) int {
					return cmp.Or(strings.Compare(a.Caller, b.Caller), strings.Compare(a.Method, b.Method),
						strings.Compare(a.Route, b.Route), strings.Compare(a.Origin, b.Origin))
				}),
				Removed: sortedBy(removed[id], func(a, b Removed) int {
					return cmp.Or(strings.Compare(a.Caller, b.Caller), strings.Compare(a.Method, b.Method),
						strings.Compare(a.Route, b.Route), strings.Compare(a.Reason, b.Reason), strings.Compare(a.Into, b.Into))
				}),
				Modes: sortedBy(modes[id], func(a, b ModeChange) int {
					return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
				}),
			}
			if !known && len(c.Rules) == 0 && callees[id] {
				c.Mode = ""
			}
			gv.Callees = append(gv.Callees, c)
		}
		v.Groups = append(v.Groups, gv)
	}
	return v
}

func sortedBy[T any](s []T, f func(a, b T) int) []T {
	s = slices.Clone(s)
	slices.SortFunc(s, f)
	return s
}

// number is n in decimal, "" for 0 (unknown, for an operator rule).
func number(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// countsText is "3 learned, 1 operator", sorted by name; names, when
// given, rename the keys.
func countsText(counts map[string]int, names map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		name := k
		if n, ok := names[k]; ok {
			name = n
		}
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], cmp.Or(name, "unknown")))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func nodeCount(ids map[string]identity, level int) int {
	keys := map[string]bool{}
	for _, i := range ids {
		k, _ := i.key(level)
		keys[k] = true
	}
	return len(keys)
}

// gnode is a node being laid out.
type gnode struct {
	key, parent  string
	label, title string
	href         string
	members      []identity
	x, y         int
}

// layout places the graph's nodes: one column per parent (a group, or a
// trust domain), sorted, rows sorted by key; long columns continue in the
// next, and rows of at most maxCols columns are stacked in bands. It
// returns the graph and each node key's number.
func layout(ids map[string]identity, level int, modes map[string]ModeInfo, callees map[string]bool, routes map[pair]map[string]bool) (graphView, map[string]int) {
	nodes := map[string]*gnode{}
	for _, i := range ids {
		k, parent := i.key(level)
		n := nodes[k]
		if n == nil {
			n = &gnode{key: k, parent: parent}
			nodes[k] = n
		}
		n.members = append(n.members, i)
	}
	// Columns: parents sorted, each split every maxRows nodes.
	byParent := map[string][]*gnode{}
	for _, n := range nodes {
		byParent[n.parent] = append(byParent[n.parent], n)
	}
	type column struct {
		header, title string
		nodes         []*gnode
	}
	var columns []column
	for _, p := range slices.Sorted(maps.Keys(byParent)) {
		ns := byParent[p]
		slices.SortFunc(ns, func(a, b *gnode) int { return strings.Compare(a.key, b.key) })
		first := ns[0].members[0]
		header := ""
		switch level {
		case levelIdentity:
			header = first.groupLabel()
		case levelGroup:
			header = first.domainLabel()
		}
		// Identities stack in their namespace's column; groups and trust
		// domains, fewer and more connected, spread over a square.
		rows := maxRows
		if level != levelIdentity {
			rows = max(4, int(math.Ceil(math.Sqrt(float64(len(ns))))))
		}
		for start := 0; start < len(ns); start += rows {
			h := header
			if start > 0 && h != "" {
				h += " (continued)"
			}
			columns = append(columns, column{header: truncate(h, labelN+4), title: h, nodes: ns[start:min(start+rows, len(ns))]})
		}
	}

	g := graphView{}
	order := map[string]int{}
	var all []*gnode
	top := margin
	for band := 0; band*maxCols < len(columns); band++ {
		cols := columns[band*maxCols : min((band+1)*maxCols, len(columns))]
		rows := 0
		for c, col := range cols {
			x := margin + c*(nodeW+colGap)
			if col.header != "" {
				g.Headers = append(g.Headers, headerView{X: x, Y: top + 16, Label: col.header, Title: col.title})
			}
			for r, n := range col.nodes {
				n.x, n.y = x, top+headerH+r*(nodeH+rowGap)
				order[n.key] = len(all)
				all = append(all, n)
			}
			rows = max(rows, len(col.nodes))
			g.Width = max(g.Width, x+nodeW+colGap/2+margin)
		}
		top += headerH + rows*(nodeH+rowGap) + bandGap
	}
	g.Height = top - bandGap + margin

	for _, n := range all {
		nv := nodeView{N: order[n.key], X: n.x, Y: n.y, TX: n.x + 8, TY: n.y + 17}
		slices.SortFunc(n.members, func(a, b identity) int { return strings.Compare(a.id, b.id) })
		if level == levelIdentity {
			i := n.members[0]
			m, known := modes[i.id]
			nv.Label, nv.Title = truncate(i.short(), labelN), i.id
			nv.Class = modeClass(m, known)
			if callees[i.id] {
				nv.Href = "#" + anchor("c-", i.id)
			}
		} else {
			counts := map[string]int{}
			classes := map[string]bool{}
			for _, i := range n.members {
				if callees[i.id] {
					m, ok := modes[i.id]
					c := modeClass(m, ok)
					counts[c]++
					classes[c] = true
				}
			}
			label := n.members[0].domainLabel()
			if level == levelGroup {
				label = n.members[0].groupLabel()
				nv.Href = "#" + anchor("g-", n.key)
			}
			nv.Title = fmt.Sprintf("%s: %d identities; callees: %s", label, len(n.members), countsText(counts, modeWords))
			if level == levelGroup {
				label = n.members[0].group
			}
			nv.Label = truncate(fmt.Sprintf("%s (%d)", cmp.Or(label, "/"), len(n.members)), labelN)
			switch len(classes) {
			case 0:
				nv.Class = classNone
			case 1:
				for c := range classes {
					nv.Class = c
				}
			default:
				nv.Class = classMixed
			}
		}
		g.Nodes = append(g.Nodes, nv)
	}

	// Edges: one per caller and callee node, labelled with the distinct
	// routes (method and route) between them.
	type edge struct {
		a, b          string
		routes, pairs int
	}
	edges := map[[2]string]*edge{}
	for p, rs := range routes {
		a, _ := ids[p.caller].key(level)
		b, _ := ids[p.callee].key(level)
		e := edges[[2]string{a, b}]
		if e == nil {
			e = &edge{a: a, b: b}
			edges[[2]string{a, b}] = e
		}
		e.routes += len(rs)
		e.pairs++
	}
	keys := slices.SortedFunc(maps.Keys(edges), func(x, y [2]string) int {
		return cmp.Or(cmp.Compare(order[x[0]], order[y[0]]), cmp.Compare(order[x[1]], order[y[1]]))
	})
	for _, k := range keys {
		e := edges[k]
		from, to := nodes[e.a], nodes[e.b]
		ev := curve(from.x, from.y, to.x, to.y, from == to)
		ev.A, ev.B = order[e.a], order[e.b]
		ev.Label = fmt.Sprint(e.routes)
		unit := "routes"
		if e.routes == 1 {
			unit = "route"
		}
		if level == levelIdentity {
			ev.Title = fmt.Sprintf("%s → %s: %d %s", e.a, e.b, e.routes, unit)
		} else {
			ev.Title = fmt.Sprintf("%s → %s: %d %s between %d callers and callees", nodeLabel(from, level), nodeLabel(to, level), e.routes, unit, e.pairs)
		}
		g.Edges = append(g.Edges, ev)
	}
	return g, order
}

func nodeLabel(n *gnode, level int) string {
	if level == levelGroup {
		return n.members[0].groupLabel()
	}
	return n.members[0].domainLabel()
}

// curve is an edge from the node at (ax, ay) to the node at (bx, by): a
// cubic Bézier between their sides. An edge that passes over columns bows
// up (left to right) or down (right to left) so as not to run behind the
// nodes in between. Coordinates are rounded to integers.
func curve(ax, ay, bx, by int, self bool) edgeView {
	var sx, sy, ex, ey, c1x, c1y, c2x, c2y int
	sy, ey = ay+nodeH/2, by+nodeH/2
	span := abs(bx-ax) / (nodeW + colGap)
	bow := min(30*(span-1), 150)
	switch {
	case self:
		sx, ex = ax+nodeW, ax+nodeW
		sy, ey = ay+nodeH/4-2, ay+3*nodeH/4+2
		c1x, c2x = sx+45, ex+45
		c1y, c2y = ay-8, ay+nodeH+8
	case bx > ax:
		sx, ex = ax+nodeW, bx
		d := max((ex-sx)/2, 40)
		c1x, c2x = sx+d, ex-d
		c1y, c2y = sy-bow, ey-bow
	case bx < ax:
		sx, ex = ax, bx+nodeW
		d := max((sx-ex)/2, 40)
		c1x, c2x = sx-d, ex+d
		c1y, c2y = sy+bow, ey+bow
	default: // the same column: out to the right and back
		sx, ex = ax+nodeW, bx+nodeW
		d := 40 + abs(ey-sy)/6
		c1x, c2x = sx+d, ex+d
		c1y, c2y = sy, ey
	}
	ev := edgeView{D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", sx, sy, c1x, c1y, c2x, c2y, ex, ey)}
	// The arrowhead points along the curve's tangent at its end.
	dx, dy := float64(ex-c2x), float64(ey-c2y)
	l := math.Hypot(dx, dy)
	dx, dy = dx/l, dy/l
	bx1, by1 := float64(ex)-9*dx, float64(ey)-9*dy
	ev.Head = fmt.Sprintf("M%d %d L%d %d L%d %dZ", ex, ey,
		round(bx1-4*dy), round(by1+4*dx), round(bx1+4*dy), round(by1-4*dx))
	ev.LX, ev.LY = (sx+3*c1x+3*c2x+ex)/8, (sy+3*c1y+3*c2y+ey)/8-3
	return ev
}

func round(f float64) int { return int(math.Round(f)) }

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
