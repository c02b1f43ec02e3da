package authzctl

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
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

// pageInput is what the page shows of a bundle: its rules (with their
// evidence, for the callees the review directory has it for), its modes
// and the directory's change log.
func pageInput(l *loaded, rd reviewDir) (review.PageInput, error) {
	in := review.PageInput{Revision: l.revision(), Modes: map[string]review.ModeInfo{}}
	callees := map[string]bool{}
	for id, m := range l.published.Modes {
		in.Modes[id] = review.ModeInfo{Mode: string(m)}
		callees[id] = true
	}
	for _, r := range l.published.Rules {
		callees[r.Destination] = true
	}
	evidenced := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(callees)) {
		rules, ok, err := rd.rules(id)
		if err != nil {
			return in, err
		}
		if ok {
			evidenced[id] = true
			in.Rules = append(in.Rules, rules...)
		}
	}
	for _, r := range l.published.Rules {
		if !evidenced[r.Destination] {
			in.Rules = append(in.Rules, review.Rule{Callee: r.Destination, Caller: r.Source, Method: r.Method, Route: r.Route.String()})
		}
	}
	c, err := rd.changes()
	if err != nil {
		return in, err
	}
	in.Changes = c
	return in, nil
}
