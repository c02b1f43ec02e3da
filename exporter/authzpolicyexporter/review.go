package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// publication is what the bundle in place holds, for the change log: its
// learned rules (the shrink guard's, not copied) and the operator's allow
// rules it lists. The change log needs no evidence of the rules before, so
// they are made into review rules only when it is written.
type publication struct {
	revision string
	learned  []render.Rule
	operator []review.Rule
	modes    map[string]string
}

func (p publication) rules() []review.Rule {
	out := make([]review.Rule, 0, len(p.learned)+len(p.operator))
	for _, r := range p.learned {
		out = append(out, review.Rule{Callee: r.Destination, Caller: r.Source, Method: r.Method, Route: r.Route.String()})
	}
	return append(out, p.operator...)
}

func modeNames(modes map[string]lifecycle.Mode) map[string]string {
	out := make(map[string]string, len(modes))
	for id, m := range modes {
		out[id] = string(m)
	}
	return out
}

// pageModes is each callee's mode for the review page, with the end of its
// learning or relearning period.
func pageModes(statuses map[string]lifecycle.Status) map[string]review.ModeInfo {
	out := make(map[string]review.ModeInfo, len(statuses))
	for id, st := range statuses {
		m := review.ModeInfo{Mode: string(st.Mode)}
		if st.Mode == lifecycle.Audit && (st.Reason == lifecycle.Learning || st.Reason == lifecycle.Relearning) {
			m.LearningUntil = st.Until
		}
		out[id] = m
	}
	return out
}

// review lists the bundle's rules with their evidence, says what changed
// since the bundle in place, and adds the review files to b when there is
// an unpacked directory to write them to.
func (e *authzExporter) review(b *render.Bundle, statuses map[string]lifecycle.Status, modes map[string]lifecycle.Mode, ov *overrides.Set, snapshot, kept []aggregate.Record) ([]review.Rule, review.Summary, error) {
	next := review.Rules(b, ov, modes)
	filtered := map[group]bool{}
	if len(kept) < len(snapshot) {
		held := make(map[aggregate.Key]bool, len(kept))
		for _, r := range kept {
			held[r.Key] = true
		}
		for _, r := range snapshot {
			if !held[r.Key] {
				filtered[group{r.Destination, r.Source, r.Method}] = true
			}
		}
	}
	changes, summary := review.Diff(review.Input{
		Revision:         b.Revision,
		PreviousRevision: e.published.revision,
		Previous:         e.published.rules(),
		Next:             next,
		ModesBefore:      e.published.modes,
		ModesAfter:       modeNames(modes),
		Reasons: review.Reasons{
			Denied: ov.Denies,
			Filtered: func(dst, src, method string, _ route.Route) bool {
				return filtered[group{dst, src, method}]
			},
			Expired: func(dst, src, method string) bool { return e.guard.expired[group{dst, src, method}] },
		},
	})
	if e.cfg.Output.UnpackedDir == "" {
		return next, summary, nil
	}
	files := map[string][]byte{
		review.ChangesFile: changes.Encode(),
		review.PageFile:    review.Page(review.PageInput{Revision: b.Revision, Rules: next, Modes: pageModes(statuses), Changes: &changes, Replicas: e.merged}),
	}
	for callee, evidence := range review.Evidence(next) {
		files[render.CalleeDir(callee)+"/"+review.EvidenceFile] = evidence
	}
	return next, summary, b.AddReview(files, e.signing)
}

// recordChanges counts a publication's added rules by origin and removed
// rules by reason.
func (e *authzExporter) recordChanges(ctx context.Context, s review.Summary) {
	count := func(change string, by map[string]int) {
		reasons := make([]string, 0, len(by))
		for r := range by {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			e.telemetry.AuthzPolicyRuleChanges.Add(ctx, int64(by[r]),
				metric.WithAttributes(attribute.String("change", change), attribute.String("reason", r)))
		}
	}
	count("added", s.Added)
	count("removed", s.Removed)
}
