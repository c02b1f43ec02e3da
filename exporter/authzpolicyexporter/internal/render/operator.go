package render

import (
	"maps"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// Unseen callees: what the policy does for a callee the bundle does not
// know.
const (
	UnseenAudit = "audit"
	UnseenDeny  = "deny"
)

// calleeEntries are each known callee's mode and the operator rules that
// name it. A learned callee Options.Callees leaves out (one past the
// lifecycle's limit) is enforced: taken for an unseen one, it could be
// audited.
func calleeEntries(opts Options, learned map[string]bool) map[string]any {
	var allow, deny []overrides.Rule
	if opts.Overrides != nil {
		allow, deny = opts.Overrides.Allow, opts.Overrides.Deny
	}
	modes := make(map[string]lifecycle.Mode, len(opts.Callees)+len(learned))
	for id := range learned {
		modes[id] = lifecycle.Enforce
	}
	maps.Copy(modes, opts.Callees)
	callees := make(map[string]any, len(modes))
	for id, mode := range modes {
		if spiffeid.Validate(id) != nil {
			continue
		}
		c := map[string]any{"mode": string(mode)}
		if i := naming(allow, id); len(i) > 0 {
			c["allow"] = i
		}
		if i := naming(deny, id); len(i) > 0 {
			c["deny"] = i
		}
		callees[id] = c
	}
	return callees
}

// sharedData is what the policy reads besides the grants and the known
// callees, the same in every bundle: the operator's modes and rules, and
// what to do for callees the bundle does not know.
func sharedData(opts Options) map[string]any {
	var allow, deny []overrides.Rule
	if opts.Overrides != nil {
		allow, deny = opts.Overrides.Allow, opts.Overrides.Deny
	}
	rules := make([]any, 0, len(opts.ModeRules))
	for _, r := range opts.ModeRules {
		ps := make([]any, len(r.Callees))
		for i, p := range r.Callees {
			ps[i] = patternJSON(p)
		}
		rules = append(rules, map[string]any{"callees": ps, "mode": string(r.Mode)})
	}
	tds := make(map[string]bool, len(opts.TrustDomains))
	for _, td := range opts.TrustDomains {
		tds[td] = true
	}
	unseen := opts.UnseenCallees
	if unseen != UnseenAudit {
		unseen = UnseenDeny
	}
	unseenAudit := unseen == UnseenAudit
	for _, r := range opts.ModeRules {
		unseenAudit = unseenAudit || r.Mode == lifecycle.Audit
	}
	return map[string]any{
		"unseen_audit":   unseenAudit,
		"modes":          rules,
		"trust_domains":  tds,
		"unseen_callees": unseen,
		"overrides":      map[string]any{"allow": rulesJSON(allow, false), "deny": rulesJSON(deny, true)},
	}
}

// naming returns the indexes of the rules whose callee pattern matches id.
func naming(rules []overrides.Rule, id string) []int {
	var out []int
	for i, r := range rules {
		if r.Callee.Match(id) {
			out = append(out, i)
		}
	}
	return out
}

// rulesJSON lays out rules as the policy reads them. A deny rule's route
// with percent-escaped literals is also listed decoded (decoded), as
// overrides.Rule.Denies matches it.
func rulesJSON(rules []overrides.Rule, decoded bool) []any {
	out := make([]any, len(rules))
	for i, r := range rules {
		methods := map[string]bool{}
		for _, m := range r.Methods {
			methods[m] = true
		}
		if len(r.Methods) == 0 {
			methods["*"] = true
		}
		routes := make([]any, 0, len(r.Routes))
		for _, rt := range r.Routes {
			routes = append(routes, routeJSON(rt))
			if dec, ok := rt.Decoded(); ok && decoded {
				routes = append(routes, routeJSON(dec))
			}
		}
		out[i] = map[string]any{"callee": patternJSON(r.Callee), "caller": patternJSON(r.Caller), "methods": methods, "routes": routes}
	}
	return out
}

func patternJSON(p spiffeid.Pattern) map[string]any {
	segs := p.Segments()
	if segs == nil {
		segs = []string{}
	}
	return map[string]any{"segments": segs, "rest": p.Rest()}
}

func routeJSON(rt overrides.Route) map[string]any {
	segs := make([]any, len(rt.Segments))
	for k, s := range rt.Segments {
		switch {
		case s.Any:
			segs[k] = wildcard{Type: "any"}
		case s.Wild != 0:
			segs[k] = wildcard{Type: s.Wild.String()}
		default:
			segs[k] = s.Lit
		}
	}
	return map[string]any{"segments": segs, "rest": rt.Rest}
}
