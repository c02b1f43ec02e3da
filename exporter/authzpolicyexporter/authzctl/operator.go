package authzctl

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// operatorRule is an allow or deny rule of the overrides file as the
// bundle's data holds it, written back in the file's syntax: "*" is any
// identity, a trailing "/**" any rest, {type} a typed parameter and {} any
// one segment.
type operatorRule struct {
	Kind    string   `json:"kind"`  // allow or deny
	Index   int      `json:"index"` // in the overrides file's list of its kind
	Callee  string   `json:"callee"`
	Caller  string   `json:"caller"`
	Methods []string `json:"methods"`
	Routes  []string `json:"routes"`
}

// String names the rule by its place in the file, 1-based.
func (r *operatorRule) String() string { return fmt.Sprintf("#%d: %s", r.Index+1, r.body()) }

// body is what the rule says, wherever it is in the file.
func (r *operatorRule) body() string {
	return fmt.Sprintf("callee %s, caller %s, methods [%s], routes [%s]", r.Callee, r.Caller,
		strings.Join(r.Methods, " "), strings.Join(r.Routes, " "))
}

// operatorRule reads the i-th rule of kind from data.envoy.authz.overrides.
func (x *explainer) operatorRule(kind string, i int) *operatorRule {
	op := &operatorRule{Kind: kind, Index: i}
	rules, _ := at(x.authz, "overrides", kind).([]any)
	if i < 0 || i >= len(rules) {
		return op
	}
	return readOperatorRule(kind, i, rules[i])
}

func readOperatorRule(kind string, i int, v any) *operatorRule {
	rule, _ := v.(map[string]any)
	op := &operatorRule{Kind: kind, Index: i, Callee: patternText(rule["callee"]), Caller: patternText(rule["caller"])}
	methods, _ := rule["methods"].(map[string]any)
	op.Methods = slices.Sorted(maps.Keys(methods))
	routes, _ := rule["routes"].([]any)
	for _, r := range routes {
		if t := routeText(r); !slices.Contains(op.Routes, t) {
			op.Routes = append(op.Routes, t)
		}
	}
	return op
}

// patternText writes an identity pattern ({"segments": [...], "rest": b}).
func patternText(v any) string {
	p, _ := v.(map[string]any)
	segs := stringList(p["segments"])
	rest, _ := p["rest"].(bool)
	if len(segs) == 0 {
		if rest {
			return "*"
		}
		return "(none)"
	}
	s := "spiffe://" + strings.Join(segs, "/")
	if rest {
		s += "/**"
	}
	return s
}

// routeText writes a rule's route ({"segments": [...], "rest": b}).
func routeText(v any) string {
	r, _ := v.(map[string]any)
	segs, _ := r["segments"].([]any)
	rest, _ := r["rest"].(bool)
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		switch s := s.(type) {
		case string:
			b.WriteString(s)
		case map[string]any:
			if t, _ := s["type"].(string); t != "any" {
				b.WriteString("{" + t + "}")
			} else {
				b.WriteString("{}")
			}
		}
	}
	if rest {
		b.WriteString("/**")
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
