package authzctl

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// The first line of explain's output.
const (
	decisionAllow     = "ALLOW"
	decisionDeny      = "DENY"
	decisionWouldDeny = "AUDIT would-deny"
)

// Kinds of reasons, stable for --json.
const (
	kindMatched         = "matched"          // the rule that granted the request
	kindCalleeIdentity  = "callee_identity"  // the policy finds no callee identity in the request
	kindCallerIdentity  = "caller_identity"  // nor a caller identity
	kindCalleeUnknown   = "callee_unknown"   // the bundle does not know the callee
	kindCallerUnknown   = "caller_unknown"   // the caller was never seen calling the callee
	kindMethodUnknown   = "method_unknown"   // the pair was never seen with this method
	kindRouteUnmatched  = "route_unmatched"  // no learned route of the pair and method matches the path
	kindWildcardType    = "wildcard_type"    // the nearest route differs only where its wildcard type refuses the segment
	kindOperationTaken  = "operation_taken"  // a route matches, but the path is another operation of the callee's API spec
	kindRemoved         = "removed"          // changes.json: the latest revision removed a rule that matched
	kindDeniedByRule    = "denied_by_rule"   // an operator deny rule matches
	kindMode            = "mode"             // the callee's mode
	kindPolicyNoDetails = "policy_no_detail" // OPA denies, and the data shows nothing missing (another policy version)
)

// explanation is explain's result; --json prints it as it is.
type explanation struct {
	Decision  string `json:"decision"`
	Allowed   bool   `json:"allowed"`
	WouldDeny bool   `json:"would_deny"`
	Revision  string `json:"revision"`
	Callee    string `json:"callee,omitempty"`
	Caller    string `json:"caller,omitempty"`
	// Identities says where the policy took them from: "principals"
	// (Envoy's mTLS handshake) or "xfcc" (the forwarded header).
	Identities string   `json:"identities,omitempty"`
	Method     string   `json:"method"`
	Path       string   `json:"path"`
	Mode       string   `json:"mode,omitempty"`
	Reasons    []reason `json:"reasons"`
}

type reason struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// details are further lines of text output.
	details  []string
	Callers  []string      `json:"callers,omitempty"`
	Methods  []string      `json:"methods,omitempty"`
	Nearest  []nearRoute   `json:"nearest,omitempty"`
	Rule     *ruleInfo     `json:"rule,omitempty"`
	Operator *operatorRule `json:"operator_rule,omitempty"`
	Wildcard *wildcardMiss `json:"wildcard,omitempty"`
	Mode     string        `json:"mode,omitempty"`
	Reason   string        `json:"reason,omitempty"` // of a removal
	Into     string        `json:"into,omitempty"`
}

// ruleInfo is a learned rule and, with --review, its evidence.
type ruleInfo struct {
	Callee         string `json:"callee"`
	Caller         string `json:"caller"`
	Method         string `json:"method"`
	Route          string `json:"route"`
	Origin         string `json:"origin,omitempty"`
	FirstSeen      string `json:"first_seen,omitempty"`
	LastSeen       string `json:"last_seen,omitempty"`
	Count          uint64 `json:"count,omitempty"`
	TimeBuckets    int    `json:"time_buckets,omitempty"`
	DistinctValues int    `json:"distinct_values,omitempty"`
}

// nearRoute is a learned route close to the request's path, and where
// they part.
type nearRoute struct {
	Route    string `json:"route"`
	Segments int    `json:"segments"`
	// Segment is the 1-based position of the first segment that differs,
	// 0 when the shorter of the two is a prefix of the other.
	Segment int    `json:"segment,omitempty"`
	Want    string `json:"want,omitempty"` // the route's segment there
	Got     string `json:"got,omitempty"`  // the request's
	Note    string `json:"note"`
}

type wildcardMiss struct {
	Route   string `json:"route"`
	Segment int    `json:"segment"`
	Type    string `json:"type"`
	Value   string `json:"value"`
}

func explainCommand(e *env) func() (int, error) {
	f := e.flags
	e.positionalUsage = ""
	e.commandDescription = `Evaluates the bundle with OPA for one request, as OPA-Envoy would, prints
ALLOW, DENY or "AUDIT would-deny" (audit mode lets it pass, the learned
policy would deny it) on the first line, then why: the rule that matched,
or what is missing. Give the request by --callee, --caller, --method and
--path (Envoy reports the identities as mTLS principals, or with --xfcc in
x-forwarded-client-cert), or as an OPA-Envoy input document (--input).
Exit status: 0 ALLOW and AUDIT would-deny, 1 DENY, 2 bad input.`
	bundleSrc := f.String("bundle", "", "the `bundle`: a file, a directory, an output URL or a bundle server URL (default: --review's directory)")
	review := f.String("review", "", "the review `directory` (output.unpacked_dir): evidence and changes of the rules")
	callee := f.String("callee", "", "the callee's SPIFFE `ID`")
	caller := f.String("caller", "", "the caller's SPIFFE `ID`")
	method := f.String("method", "GET", "the request's `method`, as sent")
	path := f.String("path", "", "the request's `path`, with its query if any")
	xfcc := f.Bool("xfcc", false, "name the identities in x-forwarded-client-cert instead of Envoy's principals")
	headers := headerFlag{}
	f.Var(headers, "header", "a request `name=value` header (repeatable), such as content-type=application/grpc")
	inputFile := f.String("input", "", "an OPA-Envoy input document `file` (- for stdin) instead of the request flags")
	asJSON := f.Bool("json", false, "print one JSON object")
	return func() (int, error) {
		if len(e.positional) > 0 {
			return 0, badUsage("unexpected argument %q", e.positional[0])
		}
		input, req, err := e.explainInput(*inputFile, *callee, *caller, *method, *path, *xfcc, headers)
		if err != nil {
			return 0, err
		}
		l, rd, err := e.loadReviewed(*bundleSrc, *review)
		if err != nil {
			return 0, err
		}
		p, err := newPolicy(e.ctx, l)
		if err != nil {
			return 0, err
		}
		v, err := p.decideInput(e.ctx, input)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", l.name, err)
		}
		w, err := p.explainInput(e.ctx, input)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", l.name, err)
		}
		x, err := newExplainer(l, rd).explain(req, v, w)
		if err != nil {
			return 0, err
		}
		if err := e.print(*asJSON, x, x.write); err != nil {
			return 0, err
		}
		if !v.Allowed {
			return exitNo, nil
		}
		return exitOK, nil
	}
}

// headerFlag collects --header name=value.
type headerFlag map[string]string

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, not %q", s)
	}
	h[strings.ToLower(name)] = value
	return nil
}

// explainInput is the input document the flags give.
func (e *env) explainInput(file, callee, caller, method, path string, xfcc bool, headers map[string]string) (map[string]any, request, error) {
	if file != "" {
		if callee != "" || caller != "" || path != "" || xfcc || len(headers) > 0 {
			return nil, request{}, badUsage("--input and the request flags exclude each other")
		}
		var data []byte
		var err error
		if file == "-" {
			data, err = publish.ReadLimited(e.stdin, "stdin", maxInput)
		} else {
			data, err = readFile(file, maxInput)
		}
		if err != nil {
			return nil, request{}, err
		}
		return parseInput(data)
	}
	for name, v := range map[string]string{"--callee": callee, "--caller": caller} {
		if v == "" {
			return nil, request{}, badUsage("give %s (or --input)", name)
		}
		if err := spiffeid.Validate(v); err != nil {
			return nil, request{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if path == "" {
		return nil, request{}, badUsage("give --path (or --input)")
	}
	if method == "" {
		return nil, request{}, badUsage("--method is empty")
	}
	_, hasHeader := headers["x-forwarded-client-cert"]
	return flagInput(callee, caller, method, path, xfcc, headers), request{Method: method, Path: path, HasHeader: xfcc || hasHeader}, nil
}

// explainer reads a bundle's data to say why OPA decided as it did.
type explainer struct {
	l      *loaded
	review reviewDir
	// grants are the learned rules by callee, caller and method.
	grants map[string]map[string]map[string][]render.Rule
	authz  map[string]any
}

func newExplainer(l *loaded, review reviewDir) *explainer {
	x := &explainer{l: l, review: review, grants: map[string]map[string]map[string][]render.Rule{}}
	for _, r := range l.published.Rules {
		bySrc := x.grants[r.Destination]
		if bySrc == nil {
			bySrc = map[string]map[string][]render.Rule{}
			x.grants[r.Destination] = bySrc
		}
		if bySrc[r.Source] == nil {
			bySrc[r.Source] = map[string][]render.Rule{}
		}
		bySrc[r.Source][r.Method] = append(bySrc[r.Source][r.Method], r)
	}
	for _, bySrc := range x.grants {
		for _, byMethod := range bySrc {
			for _, rules := range byMethod {
				slices.SortFunc(rules, func(a, b render.Rule) int { return strings.Compare(a.Route.String(), b.Route.String()) })
			}
		}
	}
	x.authz, _ = at(l.bundle.Data, "envoy", "authz").(map[string]any)
	return x
}

// explain says why: for an allowed request the rule that matched, for any
// other what the request lacks, in the order a person checks it. The
// decision is OPA's (v); w is what the policy made of the request.
func (x *explainer) explain(req request, v verdict, w *why) (*explanation, error) {
	out := &explanation{Revision: x.l.revision(), Method: req.Method, Path: req.Path, Allowed: v.Allowed, WouldDeny: v.WouldDeny, Reasons: []reason{}}
	switch {
	case !v.Allowed:
		out.Decision = decisionDeny
	case v.WouldDeny:
		out.Decision = decisionWouldDeny
	default:
		out.Decision = decisionAllow
	}
	if w == nil {
		out.Reasons = append(out.Reasons, reason{Kind: kindPolicyNoDetails, Message: "the bundle's policy is of another version: OPA's decision only"})
		return out, nil
	}
	if w.Destination != nil {
		out.Callee = *w.Destination
	}
	if w.Source != nil {
		out.Caller = *w.Source
	}
	if w.Destination != nil || w.Source != nil {
		out.Identities = "xfcc"
		if w.EnvoyPrincipal {
			out.Identities = "principals"
		}
	}
	mode := x.mode(out, w)
	if v.Allowed && !v.WouldDeny {
		r, err := x.matched(out, w)
		if err != nil {
			return nil, err
		}
		out.Reasons = append(out.Reasons, r, mode)
		return out, nil
	}
	missing, err := x.missing(out, req, w)
	if err != nil {
		return nil, err
	}
	out.Reasons = append(append(out.Reasons, missing...), mode)
	return out, nil
}

// matched is the rule that granted an allowed request: a learned route
// the Go matcher finds for the segments the policy matched, else the
// operator allow rule the policy found.
func (x *explainer) matched(out *explanation, w *why) (reason, error) {
	if w.HasSegments {
		for _, r := range x.grants[out.Callee][out.Caller][out.Method] {
			if rt := r.Route; r.Admits(w.Segments) {
				info := &ruleInfo{Callee: out.Callee, Caller: out.Caller, Method: out.Method, Route: rt.String(), Origin: "learned"}
				details, err := x.addEvidence(info)
				if err != nil {
					return reason{}, err
				}
				return reason{
					Kind:    kindMatched,
					Message: fmt.Sprintf("%s %s from %s", out.Method, rt, out.Caller),
					details: details,
					Rule:    info,
				}, nil
			}
		}
	}
	if len(w.AllowedBy) > 0 {
		op := x.operatorRule("allow", w.AllowedBy[0])
		return reason{
			Kind:     kindMatched,
			Message:  "operator allow rule " + op.String(),
			details:  []string{"origin operator (overrides file)"},
			Operator: op,
		}, nil
	}
	return reason{Kind: kindMatched, Message: "granted by the policy (no rule of the data shows which)"}, nil
}

// addEvidence fills in the rule's evidence from the review directory and
// returns it as lines of text.
func (x *explainer) addEvidence(info *ruleInfo) ([]string, error) {
	entries, err := x.review.evidence(info.Callee)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Caller != info.Caller || e.Method != info.Method || e.Route != info.Route {
			continue
		}
		info.Origin, info.FirstSeen, info.LastSeen, info.Count = e.Origin, e.FirstSeen, e.LastSeen, e.Count
		info.TimeBuckets, info.DistinctValues = e.TimeBuckets, e.DistinctValues
		line := "origin " + e.Origin
		if e.FirstSeen != "" {
			line += ", first seen " + e.FirstSeen + ", last seen " + e.LastSeen
		}
		if e.Count > 0 {
			line += fmt.Sprintf(", seen %d times", e.Count)
		}
		if e.TimeBuckets > 0 {
			line += fmt.Sprintf(" in %d time buckets", e.TimeBuckets)
		}
		if e.DistinctValues > 0 {
			line += fmt.Sprintf(", about %d distinct paths", e.DistinctValues)
		}
		return []string{line}, nil
	}
	if x.review == "" {
		return []string{"origin learned (--review DIR shows its evidence)"}, nil
	}
	return []string{"origin learned (no evidence for it in " + string(x.review) + ")"}, nil
}

// missing lists what a request the learned policy denies lacks.
func (x *explainer) missing(out *explanation, req request, w *why) ([]reason, error) {
	var rs []reason
	if w.Destination == nil {
		rs = append(rs, reason{Kind: kindCalleeIdentity, Message: identityProblem("callee", "destination", "By", w.EnvoyPrincipal, req.HasHeader)})
	}
	if w.Source == nil {
		rs = append(rs, reason{Kind: kindCallerIdentity, Message: identityProblem("caller", "source", "URI", w.EnvoyPrincipal, req.HasHeader)})
	}
	learned := false // a learned route matches: a deny rule must be why
	if w.Destination != nil {
		r, ok, err := x.grantProblem(out, w)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r...)
		learned = ok
		removed, err := x.removed(out, w)
		if err != nil {
			return nil, err
		}
		rs = append(rs, removed...)
	}
	for _, i := range w.DeniedBy {
		op := x.operatorRule("deny", i)
		rs = append(rs, reason{Kind: kindDeniedByRule, Message: "operator deny rule " + op.String(), Operator: op,
			details: []string{"a deny rule wins over learned grants, allow rules and audit mode"}})
	}
	if len(rs) == 0 || learned && len(w.DeniedBy) == 0 && w.Destination != nil && w.Source != nil {
		rs = append(rs, reason{Kind: kindPolicyNoDetails, Message: "OPA denies it, and the bundle's data shows no missing grant"})
	}
	return rs, nil
}

func identityProblem(side, principal, key string, envoy, header bool) string {
	if envoy {
		return fmt.Sprintf("no %s identity: Envoy reports a principal, but none for the %s (%s.principal), and then x-forwarded-client-cert is never read", side, side, principal)
	}
	if !header {
		return fmt.Sprintf("no %s identity: neither Envoy's %s.principal nor an x-forwarded-client-cert header", side, principal)
	}
	return fmt.Sprintf("no %s identity: x-forwarded-client-cert does not parse, or its last element has no single valid SPIFFE ID as %s", side, key)
}

// grantProblem checks, in order, that the bundle knows the callee, that
// the caller called it, with this method, on a route that matches; it
// reports the first that fails, or that a learned route matches.
func (x *explainer) grantProblem(out *explanation, w *why) ([]reason, bool, error) {
	callee := out.Callee
	if _, known := x.l.published.Modes[callee]; !known {
		return []reason{x.calleeUnknown(callee, w)}, false, nil
	}
	if w.Source == nil {
		return nil, false, nil
	}
	callers := x.grants[callee]
	methods, ok := callers[out.Caller]
	if !ok {
		r := reason{Kind: kindCallerUnknown, Message: fmt.Sprintf("%s was never seen calling %s", out.Caller, callee)}
		r.Callers = slices.Sorted(maps.Keys(callers))
		if len(r.Callers) == 0 {
			r.details = []string{"the callee has no learned callers"}
		} else {
			r.details = []string{"callers seen: " + strings.Join(r.Callers, ", ")}
		}
		return []reason{r}, false, nil
	}
	rules, ok := methods[out.Method]
	if !ok {
		r := reason{Kind: kindMethodUnknown, Message: fmt.Sprintf("%s was never seen calling %s with %s", out.Caller, callee, out.Method)}
		r.Methods = slices.Sorted(maps.Keys(methods))
		r.details = []string{"methods seen: " + strings.Join(r.Methods, ", ")}
		return []reason{r}, false, nil
	}
	if !w.HasSegments {
		return []reason{{Kind: kindRouteUnmatched, Message: fmt.Sprintf("the path %q does not start with /: no route matches it", out.Path)}}, false, nil
	}
	routes := make([]route.Route, len(rules))
	for i, r := range rules {
		if r.Admits(w.Segments) {
			return nil, true, nil
		}
		routes[i] = r.Route
	}
	for _, r := range rules {
		if r.Route.Match(w.Segments) {
			return []reason{operationTaken(out, w.Segments, r)}, false, nil
		}
	}
	return []reason{routeProblem(out, w.Segments, routes)}, false, nil
}

// operationTaken is the reason for a path a rule's route matches but
// leaves out: the API spec matches it first, as another operation.
func operationTaken(out *explanation, segs []string, r render.Rule) reason {
	i := slices.IndexFunc(r.Except, func(e route.Route) bool { return e.Match(segs) })
	return reason{
		Kind: kindOperationTaken,
		Message: fmt.Sprintf("%s %s from %s leaves out %s: the callee's API spec matches the path there first, as another operation, which %s was never seen using",
			out.Method, r.Route, out.Caller, r.Except[i], out.Caller),
		Rule: &ruleInfo{Callee: out.Callee, Caller: out.Caller, Method: out.Method, Route: r.Route.String()},
	}
}

// calleeUnknown is the reason for a callee the bundle does not know, with
// what the policy does for unseen callees.
func (x *explainer) calleeUnknown(callee string, w *why) reason {
	r := reason{Kind: kindCalleeUnknown, Message: fmt.Sprintf("the bundle does not know the callee %s", callee)}
	if err := spiffeid.Validate(callee); err != nil {
		r.details = append(r.details, "it is no canonical SPIFFE ID: "+err.Error())
	}
	unseen, _ := x.authz["unseen_callees"].(string)
	if unseen != "" {
		r.details = append(r.details, "unseen callees: "+unseen)
	}
	if tds, ok := x.authz["trust_domains"].(map[string]any); ok && len(tds) > 0 {
		r.details = append(r.details, "trust domains: "+strings.Join(slices.Sorted(maps.Keys(tds)), ", "))
	}
	if w.Unseen {
		r.Mode = w.UnseenMode
		r.details = append(r.details, "the policy takes it for an unseen callee, mode "+w.UnseenMode)
	} else {
		r.details = append(r.details, "an unseen callee is audited only when Envoy names it (destination.principal) by a canonical SPIFFE ID within the trust domains; this one is denied")
	}
	return r
}

// mode is the callee's mode, as its reason.
func (x *explainer) mode(out *explanation, w *why) reason {
	if out.Callee == "" {
		return reason{Kind: kindMode, Message: "no callee: denied"}
	}
	m, known := x.l.published.Modes[out.Callee]
	if !known {
		if !w.Unseen {
			return reason{Kind: kindMode, Message: "unknown callee, not one the policy may audit: denied"}
		}
		m = lifecycle.Mode(w.UnseenMode)
		out.Mode = string(m)
		r := reason{Kind: kindMode, Mode: string(m), Message: "unseen callee, " + string(m) + " (modes rules, then unseen_callees)"}
		return r
	}
	out.Mode = string(m)
	r := reason{Kind: kindMode, Mode: string(m)}
	switch m {
	case lifecycle.Audit:
		r.Message = "audit: every request passes, those the learned policy denies marked x-authz-policy: would-deny; a deny rule still denies"
	case lifecycle.Enforce:
		r.Message = "enforce: only what was learned or an allow rule grants passes"
	default:
		r.Message = string(m)
	}
	return r
}

// removed are the removals of the review directory's changes.json of
// rules that would have matched the request.
func (x *explainer) removed(out *explanation, w *why) ([]reason, error) {
	c, err := x.review.changes()
	if err != nil || c == nil || !w.HasSegments || w.Source == nil {
		return nil, err
	}
	var rs []reason
	for _, r := range c.Removed {
		if r.Callee != out.Callee || r.Caller != out.Caller || r.Method != out.Method {
			continue
		}
		rt, err := route.ParseKey(r.Route)
		if err != nil || !rt.Match(w.Segments) {
			continue
		}
		msg := fmt.Sprintf("revision %s removed %s %s from %s (%s)", c.Revision, r.Method, r.Route, r.Caller, r.Reason)
		if r.Into != "" {
			msg += ", into " + r.Into
		}
		rs = append(rs, reason{Kind: kindRemoved, Message: msg, Reason: r.Reason, Into: r.Into,
			Rule: &ruleInfo{Callee: r.Callee, Caller: r.Caller, Method: r.Method, Route: r.Route}})
	}
	return rs, nil
}

// routeProblem describes the learned routes nearest to the path, and
// names a wildcard type that refused a segment where that is the only
// difference from the nearest.
func routeProblem(out *explanation, segs []string, routes []route.Route) reason {
	near := nearest(segs, routes, 3)
	r := reason{
		Kind:    kindRouteUnmatched,
		Message: fmt.Sprintf("no route learned for %s from %s matches %s", out.Method, out.Caller, out.Path),
	}
	for _, n := range near {
		r.Nearest = append(r.Nearest, n.nearRoute)
		r.details = append(r.details, "nearest "+n.Route+": "+n.Note)
	}
	if len(near) > 0 && near[0].onlyTypes {
		n := near[0]
		r.Kind = kindWildcardType
		r.Wildcard = &wildcardMiss{Route: n.Route, Segment: n.Segment, Type: n.Want, Value: n.Got}
		r.Message = fmt.Sprintf("%s of %s refused %q (segment %d)", n.Want, n.Route, n.Got, n.Segment)
	}
	return r
}

type candidate struct {
	nearRoute
	sameLen   bool
	prefix    int // leading segments that match
	closeness int // at the first difference: 2 per common leading byte with a literal, 1 for a wildcard
	matching  int // segments that match in all
	onlyTypes bool
}

// nearest ranks routes by how close they are to segs: the same number
// of segments first, then the longest matching prefix, then how near the
// first differing segment is, then the most matching segments.
func nearest(segs []string, routes []route.Route, n int) []candidate {
	cs := make([]candidate, 0, len(routes))
	for _, rt := range routes {
		c := candidate{nearRoute: nearRoute{Route: rt.String(), Segments: len(rt)}, sameLen: len(rt) == len(segs)}
		first := -1
		typesOnly := c.sameLen
		for i := range min(len(rt), len(segs)) {
			if rt[i].Matches(segs[i]) {
				c.matching++
				if first < 0 {
					c.prefix++
				}
				continue
			}
			if rt[i].Wild == 0 {
				typesOnly = false
			}
			if first < 0 {
				first = i
			}
		}
		c.onlyTypes = typesOnly && first >= 0
		if first >= 0 {
			s := rt[first]
			c.Segment, c.Got = first+1, segs[first]
			if s.Wild != 0 {
				c.Want = "{" + s.Wild.String() + "}"
				c.closeness = 1
				c.Note = fmt.Sprintf("%s refused %q at segment %d", c.Want, c.Got, c.Segment)
			} else {
				c.Want = s.Lit
				c.closeness = 2 * commonPrefix(s.Lit, c.Got)
				c.Note = fmt.Sprintf("segment %d is %q, the route has %q", c.Segment, c.Got, c.Want)
			}
		}
		if !c.sameLen {
			l := fmt.Sprintf("the path has %d segments, the route %d", len(segs), len(rt))
			if c.Note == "" {
				c.Note = l
			} else {
				c.Note += "; " + l
			}
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b candidate) int {
		return cmp.Or(
			-cmpBool(a.sameLen, b.sameLen),
			-cmp.Compare(a.prefix, b.prefix),
			-cmp.Compare(a.closeness, b.closeness),
			-cmp.Compare(a.matching, b.matching),
			strings.Compare(a.Route, b.Route),
		)
	})
	return cs[:min(n, len(cs))]
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// write prints the explanation as text: the decision, the request as the
// policy read it, then each reason and its details.
func (x *explanation) write(w io.Writer) {
	fmt.Fprintln(w, x.Decision)
	if x.Callee != "" {
		line := "callee   " + x.Callee
		if x.Mode != "" {
			line += "  (mode " + x.Mode + ")"
		}
		fmt.Fprintln(w, line)
	}
	if x.Caller != "" {
		fmt.Fprintln(w, "caller   "+x.Caller)
	}
	fmt.Fprintf(w, "request  %s %s\n", x.Method, x.Path)
	switch x.Identities {
	case "principals":
		fmt.Fprintln(w, "identity from Envoy's principals (x-forwarded-client-cert is not read)")
	case "xfcc":
		fmt.Fprintln(w, "identity from x-forwarded-client-cert (Envoy reports no principal)")
	}
	fmt.Fprintln(w, "revision "+x.Revision)
	for _, r := range x.Reasons {
		fmt.Fprintf(w, "%s: %s\n", r.Kind, r.Message)
		for _, d := range r.details {
			fmt.Fprintln(w, "    "+d)
		}
	}
}
