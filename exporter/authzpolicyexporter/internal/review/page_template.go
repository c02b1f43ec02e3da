package review

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
)

// pageCSS and pageJS are the page's only style and script. They are
// constants: the Content-Security-Policy allows exactly these bytes by
// their hashes, and no observed value is ever part of them.
const pageCSS = `
:root{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2933;background:#fff}
body{margin:0 auto;padding:1rem 1.5rem;max-width:110rem}
h1{font-size:1.4rem;margin:.2rem 0}
h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #d2d6dc;overflow-wrap:anywhere}
h3{font-size:1rem;margin:1.2rem 0 .3rem;font-weight:600}
h4{font-size:.9rem;margin:.6rem 0 .2rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
.meta{color:#52606d;margin:.2rem 0}
.bar{position:sticky;top:0;background:#fff;padding:.5rem 0;z-index:1;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
#filter{font-size:1rem;padding:.3rem .5rem;min-width:28rem}
.legend span{display:inline-block;padding:0 .5rem;margin-right:.3rem;border-radius:3px;border:1px solid #9aa5b1}
.graph{overflow:auto;border:1px solid #d2d6dc;max-height:80vh}
svg text{font-size:12px;fill:#1f2933}
svg .hdr{font-weight:600;fill:#52606d}
.node rect{stroke:#52606d;stroke-width:1}
a.node:hover rect{stroke-width:2.5}
.edge path{fill:none;stroke:#7b8794;stroke-width:1.2}
.edge path.head{fill:#7b8794;stroke:none}
.edge text{font-size:10px;fill:#323f4b;paint-order:stroke;stroke:#fff;stroke-width:3px}
.edge:hover path{stroke:#1f2933;stroke-width:2}
.dim{opacity:.12}
.m-learning,.node.m-learning rect{background:#fde68a;fill:#fde68a}
.m-audit,.node.m-audit rect{background:#fdba74;fill:#fdba74}
.m-enforce,.node.m-enforce rect{background:#86efac;fill:#86efac}
.m-none,.node.m-none rect{background:#e4e7eb;fill:#e4e7eb}
.m-mixed,.node.m-mixed rect{background:#c4b5fd;fill:#c4b5fd}
.mode{font-weight:400;font-size:.85rem;padding:0 .4rem;border-radius:3px;margin-left:.5rem}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{text-align:left;padding:.15rem .5rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#f5f7fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.changes ul{margin:.2rem 0;padding-left:1.2rem;font-size:.85rem}
.added{color:#05603a}
.removed{color:#9b1c1c}
.none{color:#7b8794;font-size:.85rem}
[hidden]{display:none!important}
`

const pageJS = `
(function () {
  "use strict";
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var all = function (root, sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); };
  var lower = function (el) { return (el ? el.textContent : "").toLowerCase(); };
  var sections = all(document, "section.callee").map(function (s) {
    return {
      el: s,
      n: s.getAttribute("data-n"),
      head: lower(s.querySelector("h3")),
      rows: all(s, "tbody tr").map(function (r) {
        return {el: r, c: r.getAttribute("data-c"), text: lower(r)};
      })
    };
  });
  var groups = all(document, "section.group");
  var nodes = all(document, "svg .node").map(function (g) {
    return {el: g, n: g.getAttribute("data-n"), text: lower(g.querySelector("title"))};
  });
  var edges = all(document, "svg .edge").map(function (g) {
    return {el: g, key: g.getAttribute("data-a") + " " + g.getAttribute("data-b")};
  });
  var total = 0;
  sections.forEach(function (s) { total += s.rows.length; });
  var matches = function (text, terms) {
    for (var i = 0; i < terms.length; i++) {
      if (text.indexOf(terms[i]) < 0) { return false; }
    }
    return true;
  };
  var apply = function () {
    var terms = input.value.toLowerCase().split(" ").filter(function (t) { return t !== ""; });
    var lit = {}, pairs = {}, count = 0;
    sections.forEach(function (s) {
      var any = false;
      s.rows.forEach(function (r) {
        var ok = matches(s.head + " " + r.text, terms);
        r.el.hidden = !ok;
        if (ok) {
          any = true;
          count++;
          lit[r.c] = true;
          pairs[r.c + " " + s.n] = true;
        }
      });
      var show = any || matches(s.head, terms);
      s.el.hidden = !show;
      if (show) { lit[s.n] = true; }
    });
    groups.forEach(function (g) {
      g.hidden = g.querySelector("section.callee:not([hidden])") === null;
    });
    var filtering = terms.length > 0;
    nodes.forEach(function (n) {
      n.el.classList.toggle("dim", filtering && !lit[n.n] && !matches(n.text, terms));
    });
    edges.forEach(function (e) {
      e.el.classList.toggle("dim", filtering && !pairs[e.key]);
    });
    shown.textContent = count + " of " + total + " rules shown";
  };
  input.addEventListener("input", apply);
  apply();
})();
`

// cspHash is a CSP source allowing exactly the inline element content s.
func cspHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}

// pageCSP allows the page nothing but its own style and script: no other
// file, host, frame, form target or inline code.
var pageCSP = "default-src 'none'; style-src " + cspHash(pageCSS) + "; script-src " + cspHash(pageJS) +
	"; img-src data:; base-uri 'none'; form-action 'none'"

// The template's source holds the constant style, script and policy as
// literal text, which html/template writes as it is; every action prints
// a value of the view, escaped for where it is.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="` + pageCSP + `">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>{{.Title}}</title>
<style>` + pageCSS + `</style>
</head>
<body>
<header>
<h1>Authorization policy review</h1>
<p class="meta">Revision <code>{{.Revision}}</code>{{if .PreviousRevision}}, replacing <code>{{.PreviousRevision}}</code>{{end}}.
{{.Rules}} rules, {{.Identities}} identities, {{.Callees}} callees ({{.ModeCounts}}).</p>
{{if .HasChanges}}<p class="meta">This revision added {{.Added}}; removed {{.Removed}}; changed the mode of {{.ModeChanges}} callees.</p>
{{else}}<p class="meta">No change log.</p>
{{end}}</header>
<div class="bar">
<input id="filter" type="search" placeholder="Filter: identity, namespace, method or route" aria-label="Filter rules" autocomplete="off">
<span id="shown"></span>
<span class="legend"><span class="m-learning">learning</span><span class="m-audit">audit</span><span class="m-enforce">enforced</span><span class="m-none">caller only</span><span class="m-mixed">mixed</span></span>
</div>
{{with .Replicas}}<p class="meta">Merged from the shards of {{len .}} replicas:{{range .}} <code>{{.}}</code>{{end}}.</p>{{end}}{{with .Collapsed}}<p class="meta">{{.}}</p>
{{end}}<div class="graph">
<svg width="{{.Graph.Width}}" height="{{.Graph.Height}}" viewBox="0 0 {{.Graph.Width}} {{.Graph.Height}}" role="img" aria-label="Service graph">
{{range .Graph.Headers}}<text class="hdr" x="{{.X}}" y="{{.Y}}"><title>{{.Title}}</title>{{.Label}}</text>
{{end}}{{range .Graph.Edges}}<g class="edge" data-a="{{.A}}" data-b="{{.B}}"><title>{{.Title}}</title><path d="{{.D}}"/><path class="head" d="{{.Head}}"/><text x="{{.LX}}" y="{{.LY}}">{{.Label}}</text></g>
{{end}}{{range .Graph.Nodes}}{{if .Href}}<a class="node {{.Class}}" data-n="{{.N}}" href="{{.Href}}">{{else}}<g class="node {{.Class}}" data-n="{{.N}}">{{end}}<title>{{.Title}}</title><rect x="{{.X}}" y="{{.Y}}" width="220" height="26" rx="4"/><text x="{{.TX}}" y="{{.TY}}">{{.Label}}</text>{{if .Href}}</a>{{else}}</g>{{end}}
{{end}}</svg>
</div>
<main>
{{range .Groups}}<section class="group" id="{{.ID}}">
<h2>{{.Label}}</h2>
{{range .Callees}}<section class="callee" id="{{.Anchor}}" data-n="{{.Node}}">
<h3><code>{{.ID}}</code>{{if .Mode}}<span class="mode {{.ModeClass}}">{{.Mode}}</span>{{end}}</h3>
{{if .Rules}}<table>
<thead><tr><th>caller</th><th>method</th><th>route</th><th>origin</th><th>first seen</th><th>last seen</th><th>count</th><th>time buckets</th></tr></thead>
<tbody>
{{range .Rules}}<tr data-c="{{.Node}}"><td><code>{{.Caller}}</code></td><td>{{.Method}}</td><td><code>{{.Route}}</code>{{with .Except}} except <code>{{.}}</code>{{end}}</td><td>{{.Origin}}</td><td>{{.FirstSeen}}</td><td>{{.LastSeen}}</td><td class="n">{{.Count}}</td><td class="n">{{.Buckets}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none">No rules.</p>
{{end}}{{if or .Added .Removed .Modes}}<div class="changes">
<h4>Changed by this revision</h4>
<ul>
{{range .Modes}}<li>mode {{.From}} → {{.To}}</li>
{{end}}{{range .Added}}<li class="added">added {{.Method}} <code>{{.Route}}</code> for <code>{{.Caller}}</code> ({{.Origin}})</li>
{{end}}{{range .Removed}}<li class="removed">removed {{.Method}} <code>{{.Route}}</code> for <code>{{.Caller}}</code> ({{.Reason}}{{with .Into}}: covered by <code>{{.}}</code>{{end}})</li>
{{end}}</ul>
</div>
{{end}}</section>
{{end}}</section>
{{end}}</main>
<script>` + pageJS + `</script>
</body>
</html>
`))
