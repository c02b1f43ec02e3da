package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

// noteVersion records a version a callee's span announced, and logs and
// counts a relearn it starts.
func (e *authzExporter) noteVersion(ctx context.Context, callee, version string, now time.Time) {
	if !e.life.Version(callee, version, now) {
		return
	}
	e.telemetry.AuthzPolicyRelearns.Add(ctx, 1)
	e.logger.Info("A new version of an enforced callee is seen; it is audited while its routes are learned again",
		zap.String("callee", callee), zap.String("version", version), zap.Duration("relearn_period", e.cfg.RelearnPeriod))
}

// noteCallees starts the learning period of callees observed for the first
// time, at their earliest evidence.
func (e *authzExporter) noteCallees(snapshot []aggregate.Record) {
	untracked := 0
	for i := 0; i < len(snapshot); {
		// The snapshot is sorted by destination first.
		dst, first := snapshot[i].Destination, snapshot[i].FirstSeen
		for ; i < len(snapshot) && snapshot[i].Destination == dst; i++ {
			if snapshot[i].FirstSeen.Before(first) {
				first = snapshot[i].FirstSeen
			}
		}
		if !e.life.Seen(dst, first) {
			untracked++
		}
	}
	if untracked > 0 {
		e.logger.Warn("More callees than max_entries: those beyond it have no mode of their own and are treated as unseen", zap.Int("callees", untracked))
	}
}

// enforced lists the callees enforced in modes.
func enforced(modes map[string]lifecycle.Mode) []string {
	var out []string
	for id, m := range modes {
		if m == lifecycle.Enforce {
			out = append(out, id)
		}
	}
	return out
}

func (e *authzExporter) recordModes(ctx context.Context, modes map[string]lifecycle.Mode) {
	var audit, enforce int64
	for _, m := range modes {
		if m == lifecycle.Audit {
			audit++
		} else {
			enforce++
		}
	}
	e.telemetry.AuthzPolicyCallees.Record(ctx, audit, metric.WithAttributes(attribute.String("mode", string(lifecycle.Audit))))
	e.telemetry.AuthzPolicyCallees.Record(ctx, enforce, metric.WithAttributes(attribute.String("mode", string(lifecycle.Enforce))))
}

// logModeChanges logs each callee that the bundle just published moved out
// of its learning period.
func (e *authzExporter) logModeChanges(statuses map[string]lifecycle.Status, before map[string]string) {
	ids := make([]string, 0, len(statuses))
	for id, st := range statuses {
		if st.Mode == lifecycle.Enforce && st.Reason == lifecycle.Learned && before[id] == string(lifecycle.Audit) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		e.logger.Info("A callee left its learning period and is now enforced", zap.String("callee", id))
	}
}
