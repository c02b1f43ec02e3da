package review

import (
	"math/bits"
	"slices"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// Rules lists a rendered bundle's rules for review: the learned ones with
// their evidence, and each operator allow rule for every known callee it
// names, once per method and route as written ("*" for any method).
func Rules(b *render.Bundle, ov *overrides.Set, callees map[string]lifecycle.Mode) []Rule {
	out := make([]Rule, 0, len(b.Rules))
	for i, r := range b.Rules {
		ev := b.Evidence[i]
		rule := Rule{
			Callee: r.Destination, Caller: r.Source, Method: r.Method, Route: r.Route.String(),
			Except:    r.ExceptText(),
			Origin:    ev.Origin,
			FirstSeen: ev.FirstSeen, LastSeen: ev.LastSeen,
			Count:       ev.Count,
			TimeBuckets: bits.OnesCount64(ev.Buckets),
		}
		if r.Route.HasWildcard() {
			rule.DistinctValues = aggregate.DistinctValues(ev.Values)
		}
		out = append(out, rule)
	}
	if ov == nil {
		return out
	}
	ids := make([]string, 0, len(callees))
	for id := range callees {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, a := range ov.Allow {
		methods := a.Methods
		if methods == nil {
			methods = []string{"*"}
		}
		for _, id := range ids {
			if !a.Callee.Match(id) {
				continue
			}
			for _, m := range methods {
				for _, rt := range a.Routes {
					out = append(out, Rule{Callee: id, Caller: a.Caller.String(), Method: m, Route: rt.Text, Origin: OriginOperator})
				}
			}
		}
	}
	return out
}
