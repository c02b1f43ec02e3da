package authzctl

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

func reportCommand(e *env) func() (int, error) {
	f := e.flags
	e.positionalUsage = ""
	e.commandDescription = `Writes the review page of a bundle (the index.html the exporter writes into
output.unpacked_dir): the service graph, each callee's rules and mode, and
with --review what the latest revision changed and each rule's evidence.
One self-contained HTML file that works offline.
Exit status: 0 written, 2 bad input.`
	bundleSrc := f.String("bundle", "", "the `bundle`: a file, a directory, an output URL or a bundle server URL (default: --review's directory)")
	reviewFlag := f.String("review", "", "the review `directory` (output.unpacked_dir): evidence and changes of the rules")
	out := f.String("o", "-", "the page's `file`; - for standard output")
	return func() (int, error) {
		if len(e.positional) > 0 {
			return 0, badUsage("unexpected argument %q", e.positional[0])
		}
		l, rd, err := e.loadReviewed(*bundleSrc, *reviewFlag)
		if err != nil {
			return 0, err
		}
		in, err := pageInput(l, rd)
		if err != nil {
			return 0, err
		}
		page := review.Page(in)
		if *out == "-" {
			_, err = e.stdout.Write(page)
			return exitOK, err
		}
		if err := os.WriteFile(*out, page, 0o644); err != nil {
			return 0, err
		}
		fmt.Fprintf(e.stderr, "wrote %s (%d bytes)\n", filepath.Clean(*out), len(page))
		return exitOK, nil
	}
}

// pageInput is what the page shows of a bundle: its rules, learned and
// the operator's (for every callee the bundle knows that an allow rule
// names), with the review directory's evidence of the same rules, its
// modes and the directory's change log. Evidence of a rule the bundle
// does not grant is left out: the page shows the bundle, whatever the
// directory says.
func pageInput(l *loaded, rd reviewDir) (review.PageInput, error) {
	in := review.PageInput{Revision: l.revision(), Modes: map[string]review.ModeInfo{}}
	for id, m := range l.published.Modes {
		in.Modes[id] = review.ModeInfo{Mode: string(m)}
	}
	byCallee := map[string][]review.Rule{}
	for _, r := range l.published.Rules {
		byCallee[r.Destination] = append(byCallee[r.Destination], review.Rule{Callee: r.Destination, Caller: r.Source, Method: r.Method, Route: r.Route.String(), Except: r.ExceptText()})
	}
	for _, r := range operatorAllows(l) {
		byCallee[r.Callee] = append(byCallee[r.Callee], r)
	}
	for _, id := range slices.Sorted(maps.Keys(byCallee)) {
		evidence, ok, err := rd.rules(id)
		if err != nil {
			return in, err
		}
		rules := byCallee[id]
		if ok {
			withEvidence(rules, evidence)
		}
		in.Rules = append(in.Rules, rules...)
	}
	c, err := rd.changes()
	if err != nil {
		return in, err
	}
	in.Changes = c
	return in, nil
}

// operatorAllows are the bundle's operator allow rules as the review lists
// them: once per known callee the rule names, method and route.
func operatorAllows(l *loaded) []review.Rule {
	allows, _ := at(l.bundle.Data, "envoy", "authz", "overrides", "allow").([]any)
	var out []review.Rule
	for i, v := range allows {
		op := readOperatorRule("allow", i, v)
		callee, err := spiffeid.ParsePattern(op.Callee)
		if err != nil {
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(l.published.Modes)) {
			if !callee.Match(id) {
				continue
			}
			for _, m := range op.Methods {
				for _, rt := range op.Routes {
					out = append(out, review.Rule{Callee: id, Caller: op.Caller, Method: m, Route: rt, Origin: review.OriginOperator})
				}
			}
		}
	}
	return out
}

// withEvidence gives each rule its evidence entry: a learned rule the one
// of its caller, method and route; an operator rule the operator entry of
// the same route, which names it as the file wrote it.
func withEvidence(rules, evidence []review.Rule) {
	type key struct{ caller, method, route string }
	learned, operator := map[key]review.Rule{}, map[key]review.Rule{}
	for _, e := range evidence {
		if e.Origin == review.OriginOperator {
			operator[key{e.Caller, e.Method, anonymous(e.Route)}] = e
		} else {
			learned[key{e.Caller, e.Method, e.Route}] = e
		}
	}
	for i, r := range rules {
		if r.Origin == review.OriginOperator {
			if e, ok := operator[key{r.Caller, r.Method, r.Route}]; ok {
				rules[i] = e
			}
		} else if e, ok := learned[key{r.Caller, r.Method, r.Route}]; ok {
			e.Except = r.Except // the bundle's, whatever the review directory says
			rules[i] = e
		}
	}
}

// anonymous is an operator route as the bundle holds it: parameters
// without their names ({id} is {}, {id:int} is {int}).
func anonymous(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, "{"); ok && strings.HasSuffix(name, "}") {
			_, typ, typed := strings.Cut(strings.TrimSuffix(name, "}"), ":")
			if typed {
				segs[i] = "{" + typ + "}"
			} else {
				segs[i] = "{}"
			}
		}
	}
	return strings.Join(segs, "/")
}
