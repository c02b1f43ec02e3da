package authzctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/rego"
)

// The decisions OPA-Envoy asks for: the boolean at its default path and
// the object decision audit mode marks requests in.
const (
	allowQuery    = "data.envoy.authz.allow"
	decisionQuery = "data.envoy.authz.decision"
)

// whyQuery asks the policy itself what it made of a request, in the terms
// an explanation needs: who it takes the callee and caller for, the
// segments it matches routes on, and which operator rules match. Every
// value is a list, empty where the policy leaves the rule undefined.
const whyQuery = `
destination := [x | x := data.envoy.authz.destination]
source := [x | x := data.envoy.authz.source]
envoy_principal := [x | x := data.envoy.authz.envoy_principal]
segments := [x | x := data.envoy.authz.segments]
granted := [x | x := data.envoy.authz.granted]
audit := [x | x := data.envoy.authz.audit]
unseen := [x | x := data.envoy.authz.unseen]
unseen_mode := [x | x := data.envoy.authz.unseen_mode]
allowed_by := [i | some i, rule in data.envoy.authz.overrides.allow; dst := data.envoy.authz.destination; data.envoy.authz.valid_id(dst); data.envoy.authz.id_matches(rule.callee, data.envoy.authz.id_path(dst)); data.envoy.authz.operator_allows(rule)]
denied_by := [i | some i, rule in data.envoy.authz.overrides.deny; data.envoy.authz.denies_callee(rule.callee); data.envoy.authz.operator_denies(rule)]
`

// verdict is OPA's decision for one request.
type verdict struct {
	Allowed   bool
	WouldDeny bool // allowed by audit mode, marked x-authz-policy: would-deny
}

// why is what the policy made of the request (see whyQuery); nil fields
// where the policy leaves them undefined.
type why struct {
	Destination, Source *string
	EnvoyPrincipal      bool
	Segments            []string
	HasSegments         bool
	Granted, Audit      bool
	Unseen              bool
	UnseenMode          string
	AllowedBy, DeniedBy []int
}

// policy is a bundle loaded into OPA.
type policy struct {
	decide rego.PreparedEvalQuery
	why    *rego.PreparedEvalQuery // nil when the bundle's policy has other rules
}

func newPolicy(ctx context.Context, l *loaded) (*policy, error) {
	d, err := rego.New(rego.Query("allow := "+allowQuery+"\ndecision := "+decisionQuery), rego.ParsedBundle("authz", l.bundle)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: the policy does not compile: %w", l.name, err)
	}
	p := &policy{decide: d}
	// A policy of another version may lack a rule the explanation reads:
	// its decision is still OPA's, only the explanation is thinner.
	if w, err := rego.New(rego.Query(whyQuery), rego.ParsedBundle("authz", l.bundle)).PrepareForEval(ctx); err == nil {
		p.why = &w
	}
	return p, nil
}

// decide evaluates OPA-Envoy's decisions for input, and checks that the
// boolean and the object decision agree.
func (p *policy) decideInput(ctx context.Context, input any) (verdict, error) {
	rs, err := p.decide.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return verdict{}, err
	}
	if len(rs) != 1 {
		return verdict{}, errors.New("the policy gives no decision")
	}
	allowed, ok := rs[0].Bindings["allow"].(bool)
	if !ok {
		return verdict{}, fmt.Errorf("%s is not a boolean", allowQuery)
	}
	d, ok := rs[0].Bindings["decision"].(map[string]any)
	if !ok || d["allowed"] != allowed {
		return verdict{}, fmt.Errorf("%s and %s disagree", allowQuery, decisionQuery)
	}
	v := verdict{Allowed: allowed}
	if h, ok := d["response_headers_to_add"].(map[string]any); ok && h["x-authz-policy"] == "would-deny" {
		v.WouldDeny = true
	}
	return v, nil
}

// explainInput asks the policy what it made of input; nil when the
// bundle's policy cannot say.
func (p *policy) explainInput(ctx context.Context, input any) (*why, error) {
	if p.why == nil {
		return nil, nil
	}
	rs, err := p.why.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, nil
	}
	b := rs[0].Bindings
	w := &why{}
	w.Destination = firstString(b["destination"])
	w.Source = firstString(b["source"])
	w.EnvoyPrincipal = firstBool(b["envoy_principal"])
	if segs, ok := first(b["segments"]).([]any); ok {
		w.HasSegments = true
		for _, s := range segs {
			str, _ := s.(string)
			w.Segments = append(w.Segments, str)
		}
	}
	w.Granted = firstBool(b["granted"])
	w.Audit = firstBool(b["audit"])
	w.Unseen = firstBool(b["unseen"])
	if m := firstString(b["unseen_mode"]); m != nil {
		w.UnseenMode = *m
	}
	w.AllowedBy = ints(b["allowed_by"])
	w.DeniedBy = ints(b["denied_by"])
	return w, nil
}

func first(v any) any {
	if l, ok := v.([]any); ok && len(l) > 0 {
		return l[0]
	}
	return nil
}

func firstString(v any) *string {
	if s, ok := first(v).(string); ok {
		return &s
	}
	return nil
}

func firstBool(v any) bool {
	b, _ := first(v).(bool)
	return b
}

func ints(v any) []int {
	l, _ := v.([]any)
	var out []int
	for _, x := range l {
		switch n := x.(type) {
		case float64:
			out = append(out, int(n))
		case int:
			out = append(out, n)
		case interface{ Int64() (int64, error) }:
			if i, err := n.Int64(); err == nil {
				out = append(out, int(i))
			}
		}
	}
	return out
}
