package review

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

const (
	paySvc = "spiffe://example.org/ns/pay/sa/payments"
	legacy = "spiffe://legacy.example/billing/worker"
)

// mesh is a small mesh of two namespaces and a non-Istio identity, with a
// change log naming a callee that has no rules any more.
func mesh() PageInput {
	rules := append(shop(),
		Rule{Callee: stock, Caller: orders, Method: "PUT", Route: "/stock/{id}", Origin: OriginLearned,
			FirstSeen: day, LastSeen: day.Add(2 * time.Hour), Count: 4, TimeBuckets: 2, DistinctValues: 3},
		Rule{Callee: paySvc, Caller: checkout, Method: "POST", Route: "/paySvc", Origin: OriginHTTPRoute,
			FirstSeen: day, LastSeen: day.Add(time.Hour), Count: 30, TimeBuckets: 2},
		Rule{Callee: paySvc, Caller: legacy, Method: "GET", Route: "/paySvc/{int}", Origin: OriginLearned,
			FirstSeen: day, LastSeen: day, Count: 3, TimeBuckets: 1, DistinctValues: 3},
		Rule{Callee: checkout, Caller: frontend, Method: "POST", Route: "/checkout", Origin: OriginLearned,
			FirstSeen: day, LastSeen: day, Count: 9, TimeBuckets: 1},
		Rule{Callee: legacy, Caller: "*", Method: "GET", Route: "/healthz", Origin: OriginOperator},
		Rule{Callee: stock, Caller: frontend, Method: "GET", Route: "/stock/{token}", Except: "/stock/low", Origin: OriginOpenAPI,
			FirstSeen: day, LastSeen: day, Count: 2, TimeBuckets: 1, DistinctValues: 2},
	)
	return PageInput{
		Revision: "4f1c0ffee",
		Rules:    rules,
		Modes: map[string]ModeInfo{
			orders:   {Mode: "enforce"},
			stock:    {Mode: "audit", LearningUntil: day.Add(7 * 24 * time.Hour)},
			paySvc:   {Mode: "audit"},
			checkout: {Mode: "enforce"},
			legacy:   {Mode: "enforce"},
		},
		Changes: &ChangeLog{
			Revision: "4f1c0ffee", PreviousRevision: "0ld",
			Added: []Added{{Callee: stock, Caller: orders, Method: "PUT", Route: "/stock/{id}", Origin: OriginLearned}},
			Removed: []Removed{
				{Callee: orders, Caller: frontend, Method: "GET", Route: "/orders/7", Reason: ReasonGeneralized, Into: "/orders/{int}"},
				{Callee: "spiffe://example.org/ns/shop/sa/gone", Caller: frontend, Method: "GET", Route: "/x", Reason: ReasonExpired},
			},
			Modes: []ModeChange{{Callee: orders, From: "audit", To: "enforce"}, {Callee: stock, From: ModeUnseen, To: "audit"}},
		},
	}
}

// TestPageGolden pins the page of a small mesh; run with -update after a
// deliberate change and look at the page.
func TestPageGolden(t *testing.T) {
	golden(t, "index.html", Page(mesh()))
}

func TestPageDeterministic(t *testing.T) {
	in := mesh()
	want := Page(in)
	assert.Equal(t, want, Page(in))
	for range 5 {
		s := in
		s.Rules = shuffled(in.Rules)
		log := *in.Changes
		log.Added, log.Removed, log.Modes = shuffledOf(log.Added), shuffledOf(log.Removed), shuffledOf(log.Modes)
		s.Changes = &log
		s.Modes = maps.Clone(in.Modes)
		assert.Equal(t, string(want), string(Page(s)))
	}
}

func shuffledOf[T any](s []T) []T {
	s = slices.Clone(s)
	slices.Reverse(s)
	if len(s) > 2 {
		s[0], s[1] = s[1], s[0]
	}
	return s
}

// parse parses a page as a browser would and fails on anything but a
// well-formed tree.
func parse(t *testing.T, page []byte) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(string(page)))
	require.NoError(t, err)
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

// TestPageCSP checks that the policy allows exactly the page's one style
// and one script, that nothing loads from elsewhere and that no handler is
// inline.
func TestPageCSP(t *testing.T) {
	page := Page(mesh())
	doc := parse(t, page)
	var csp string
	var scripts, styles []string
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "meta":
			if attr(n, "http-equiv") == "Content-Security-Policy" {
				csp = attr(n, "content")
			}
		case "script":
			scripts = append(scripts, text(n))
			assert.Empty(t, attr(n, "src"))
		case "style":
			styles = append(styles, text(n))
		}
		for _, a := range n.Attr {
			assert.False(t, strings.HasPrefix(a.Key, "on"), "inline handler %s on <%s>", a.Key, n.Data)
			assert.NotEqual(t, "style", a.Key, "inline style on <%s>", n.Data)
			if a.Key == "href" || a.Key == "src" || a.Key == "xlink:href" {
				assert.True(t, strings.HasPrefix(a.Val, "#") || a.Val == "data:,", "<%s %s=%q>", n.Data, a.Key, a.Val)
			}
		}
	})
	require.Len(t, scripts, 1)
	require.Len(t, styles, 1)
	hash := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	assert.Equal(t, "default-src 'none'; style-src "+hash(styles[0])+"; script-src "+hash(scripts[0])+
		"; img-src data:; base-uri 'none'; form-action 'none'", csp)
	assert.NotContains(t, csp, "unsafe")
	assert.NotContains(t, string(page), "url(")
	assert.NotContains(t, string(page), "http://")
	assert.NotContains(t, string(page), "https://")
}

func count(doc *html.Node, match func(*html.Node) bool) int {
	n := 0
	walk(doc, func(c *html.Node) {
		if c.Type == html.ElementNode && match(c) {
			n++
		}
	})
	return n
}

func hasClass(n *html.Node, class string) bool {
	return slices.Contains(strings.Fields(attr(n, "class")), class)
}

// TestPageGraph checks one node per identity, with its full ID as its
// title, one edge per caller and callee labelled with its routes, and
// links to the callees' sections.
func TestPageGraph(t *testing.T) {
	in := mesh()
	doc := parse(t, Page(in))
	ids := map[string]bool{}
	pairs := map[[2]string]map[string]bool{}
	for _, r := range in.Rules {
		ids[r.Caller], ids[r.Callee] = true, true
		p := [2]string{r.Caller, r.Callee}
		if pairs[p] == nil {
			pairs[p] = map[string]bool{}
		}
		pairs[p][r.Method+" "+r.Route] = true
	}
	sections := map[string]string{} // anchor -> callee
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "section" && hasClass(n, "callee") {
			for c := range n.Descendants() {
				if c.Type == html.ElementNode && c.Data == "h3" {
					sections[attr(n, "id")] = text(c.FirstChild)
					break
				}
			}
		}
	})
	titles := map[string]string{} // node number -> ID
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode || !hasClass(n, "node") {
			return
		}
		id := text(n.FirstChild)
		assert.Equal(t, "title", n.FirstChild.Data)
		titles[attr(n, "data-n")] = id
		if href := attr(n, "href"); href != "" {
			assert.Equal(t, id, sections[strings.TrimPrefix(href, "#")], "node %s links elsewhere", id)
		}
	})
	got := map[string]bool{}
	for _, id := range titles {
		got[id] = true
	}
	assert.Equal(t, ids, got)
	assert.Len(t, titles, len(ids), "one node per identity")

	edges := map[[2]string]string{}
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && hasClass(n, "edge") {
			p := [2]string{titles[attr(n, "data-a")], titles[attr(n, "data-b")]}
			_, dup := edges[p]
			assert.False(t, dup, "two edges for %v", p)
			edges[p] = text(n.LastChild)
		}
	})
	require.Len(t, edges, len(pairs))
	for p, routes := range pairs {
		assert.Equal(t, fmt.Sprint(len(routes)), edges[p], "%v", p)
	}
}

// TestPageCollapses checks that beyond MaxNodes the graph shows groups
// with aggregated edges, while the tables still list every rule.
func TestPageCollapses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int
		nodes    int
		contains string
	}{
		{"identities", 0, 7, ""},
		{"namespaces", 6, 4, "one node per namespace"}, // shop, pay, legacy.example billing, other
		{"trust domains", 3, 3, "one node per trust domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := mesh()
			in.MaxNodes = tc.max
			page := Page(in)
			doc := parse(t, page)
			assert.Equal(t, tc.nodes, count(doc, func(n *html.Node) bool { return hasClass(n, "node") }))
			assert.Equal(t, len(in.Rules), count(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-c") != "" }))
			if tc.contains != "" {
				assert.Contains(t, string(page), tc.contains)
			}
			// Every row's caller node and every section's node is drawn.
			nodes := map[string]bool{}
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && hasClass(n, "node") {
					nodes[attr(n, "data-n")] = true
				}
			})
			walk(doc, func(n *html.Node) {
				if n.Type == html.ElementNode && n.Data == "tr" && attr(n, "data-c") != "" {
					assert.True(t, nodes[attr(n, "data-c")])
				}
			})
		})
	}
}

// Hostile observed values, in every place the page shows one.
var hostile = []string{
	`/"><script>alert(1)</script>`,
	`/</title><script>alert(1)</script>`,
	`/x/"><img src=x onerror=alert(1)>`,
	`/'onmouseover='alert(1)`,
	`/</text></svg><script>alert(1)</script>`,
	`/<!--`,
	`/]]><script>alert(1)</script>`,
	`/{{.}}&amp;`,
	"/\u2028\u2029</style>",
}

func TestPageEscapesObservedValues(t *testing.T) {
	constants := map[string]bool{"filter": true, "shown": true, "data:,": true}
	places := map[string]func(v string) PageInput{
		"route": func(v string) PageInput {
			return PageInput{Rules: []Rule{{Callee: orders, Caller: frontend, Method: "GET", Route: v, Origin: OriginLearned}},
				Modes: map[string]ModeInfo{orders: {Mode: "enforce"}}}
		},
		"method": func(v string) PageInput {
			return PageInput{Rules: []Rule{{Callee: orders, Caller: frontend, Method: v, Route: "/a"}}}
		},
		"caller (node title, label, edge title, row)": func(v string) PageInput {
			return PageInput{Rules: []Rule{{Callee: orders, Caller: "spiffe://example.org/ns/shop/sa/" + v, Method: "GET", Route: "/a"}}}
		},
		"callee (section, href id, data attributes)": func(v string) PageInput {
			id := "spiffe://example.org/ns/" + v + "/sa/" + v
			return PageInput{Rules: []Rule{{Callee: id, Caller: frontend, Method: "GET", Route: "/a"}},
				Modes: map[string]ModeInfo{id: {Mode: v}}}
		},
		"trust domain and group (headers, collapsed nodes)": func(v string) PageInput {
			return PageInput{MaxNodes: 1, Rules: []Rule{{Callee: "spiffe://" + v + "/" + v, Caller: "spiffe://" + v + "/ns/" + v, Method: "GET", Route: "/a"}}}
		},
		"change log": func(v string) PageInput {
			return PageInput{Revision: v, Changes: &ChangeLog{Revision: v, PreviousRevision: v,
				Added:   []Added{{Callee: orders, Caller: v, Method: v, Route: v, Origin: v}},
				Removed: []Removed{{Callee: v, Caller: v, Method: v, Route: v, Reason: v, Into: v}},
				Modes:   []ModeChange{{Callee: v, From: v, To: v}},
			}}
		},
		"except": func(v string) PageInput {
			return PageInput{Rules: []Rule{{Callee: orders, Caller: frontend, Method: "GET", Route: "/a/{token}", Except: v, Origin: OriginOpenAPI}}}
		},
		"origin": func(v string) PageInput {
			return PageInput{Rules: []Rule{{Callee: orders, Caller: frontend, Method: "GET", Route: "/a", Origin: v}}}
		},
	}
	for name, in := range places {
		for _, v := range hostile {
			t.Run(name+"/"+v, func(t *testing.T) {
				page := Page(in(v))
				doc := parse(t, page)
				// One script, the page's own; no element or attribute the
				// value could have made.
				assert.Equal(t, 1, count(doc, func(n *html.Node) bool { return n.Data == "script" }))
				assert.Equal(t, 0, count(doc, func(n *html.Node) bool { return n.Data == "img" }))
				walk(doc, func(n *html.Node) {
					for _, a := range n.Attr {
						assert.False(t, strings.HasPrefix(a.Key, "on"), "attribute %s on <%s>", a.Key, n.Data)
						if strings.HasPrefix(a.Key, "data-") {
							assert.Regexp(t, `^-?[0-9]+$`, a.Val, "%s holds more than a number", a.Key)
						}
						if (a.Key == "id" || a.Key == "href") && !constants[a.Val] {
							assert.Regexp(t, `^#?[cg]-[0-9a-f]{16}$`, a.Val)
						}
					}
					if n.Type == html.CommentNode {
						t.Errorf("a comment: %q", n.Data)
					}
				})
				// The value is shown as text, whole.
				assert.Contains(t, text(doc), v)
				// The script never holds an observed value.
				assert.NotContains(t, pageJS, "alert")
			})
		}
	}
}

// TestPageEscapesTitleAndText looks at the bytes: a value shown in the
// SVG's <title> and <text> is entity-escaped, so neither closes its element.
func TestPageEscapesTitleAndText(t *testing.T) {
	v := `</title><script>alert(1)</script>`
	page := string(Page(PageInput{Rules: []Rule{{Callee: orders, Caller: "spiffe://example.org/ns/shop/sa/" + v, Method: "GET", Route: "/" + v}}}))
	assert.NotContains(t, page, "<script>alert")
	assert.Contains(t, page, "<title>spiffe://example.org/ns/shop/sa/&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>")
	assert.Regexp(t, regexp.MustCompile(`<text x="\d+" y="\d+">&lt;/title&gt;&lt;script&gt;alert\(1\)&lt;/scr…</text>`), page)
}

// TestPageModes shows each mode in words and as its colour.
func TestPageModes(t *testing.T) {
	tests := []struct {
		mode      ModeInfo
		known     bool
		text, css string
	}{
		{ModeInfo{Mode: "audit", LearningUntil: day}, true, "learning until 2026-11-02T09:30:15Z", classLearning},
		{ModeInfo{Mode: "audit"}, true, "audit", classAudit},
		{ModeInfo{Mode: "enforce"}, true, "enforced", classEnforce},
		{ModeInfo{}, false, "", classNone},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.text, modeText(tc.mode, tc.known))
		assert.Equal(t, tc.css, modeClass(tc.mode, tc.known))
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		id                   string
		domain, group, short string
	}{
		{"spiffe://example.org/ns/shop/sa/orders", "example.org", "ns/shop", "orders"},
		{"spiffe://example.org/billing/worker/a", "example.org", "billing", "a"},
		{"spiffe://example.org/ns/shop/sa/*", "example.org", "ns/shop", "*"},
		{"spiffe://example.org", "example.org", "", "spiffe://example.org"},
		{"*", "", "", "*"},
	}
	for _, tc := range tests {
		i := classify(tc.id)
		assert.Equal(t, tc.domain, i.domain, tc.id)
		assert.Equal(t, tc.group, i.group, tc.id)
		assert.Equal(t, tc.short, i.short(), tc.id)
	}
}

// bigMesh is callees callees in namespaces of 40, each called by the
// callers following it, on routes routes.
func bigMesh(callees, callers, routes int) PageInput {
	id := func(i int) string {
		return fmt.Sprintf("spiffe://example.org/ns/team-%02d/sa/service-%04d", i/40, i)
	}
	in := PageInput{Revision: "0123456789abcdef0123456789abcdef", Modes: map[string]ModeInfo{}}
	log := &ChangeLog{Revision: in.Revision, Added: []Added{}, Removed: []Removed{}, Modes: []ModeChange{}}
	for i := range callees {
		callee := id(i)
		switch i % 3 {
		case 0:
			in.Modes[callee] = ModeInfo{Mode: "enforce"}
		case 1:
			in.Modes[callee] = ModeInfo{Mode: "audit", LearningUntil: day.Add(time.Duration(i) * time.Hour)}
		default:
			in.Modes[callee] = ModeInfo{Mode: "audit"}
		}
		for c := 1; c <= callers; c++ {
			caller := id((i + c*7) % callees)
			for r := range routes {
				rt := fmt.Sprintf("/api/v1/resource-%d/{int}", r)
				in.Rules = append(in.Rules, Rule{Callee: callee, Caller: caller, Method: "GET", Route: rt, Origin: OriginLearned,
					FirstSeen: day, LastSeen: day.Add(time.Hour), Count: 100, TimeBuckets: 2, DistinctValues: 50})
				if i%50 == 0 {
					log.Added = append(log.Added, Added{Callee: callee, Caller: caller, Method: "GET", Route: rt, Origin: OriginLearned})
				}
			}
		}
	}
	in.Changes = log
	return in
}

func TestPageLargeMeshCollapses(t *testing.T) {
	in := bigMesh(1000, 5, 3)
	page := Page(in)
	doc := parse(t, page)
	assert.Equal(t, 25, count(doc, func(n *html.Node) bool { return hasClass(n, "node") }), "one node per namespace")
	assert.Equal(t, 15000, count(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-c") != "" }))
	assert.Equal(t, 1000, count(doc, func(n *html.Node) bool { return n.Data == "section" && hasClass(n, "callee") }))
}

func BenchmarkPage(b *testing.B) {
	in := bigMesh(1000, 5, 3)
	var size int
	for b.Loop() {
		size = len(Page(in))
	}
	b.ReportMetric(float64(size), "B/page")
}
