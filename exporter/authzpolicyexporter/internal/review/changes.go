package review

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// Reasons a rule was removed, in the order they are decided: the operator's
// own edits first, then what the learning did, then what time did.
const (
	ReasonOperatorRemoved = "operator_removed" // the operator deleted the allow rule from the overrides file
	ReasonOperatorDenied  = "operator_denied"  // an operator deny rule covers it
	ReasonGeneralized     = "generalized"      // a wider rule of the same caller and method covers it
	ReasonEvidence        = "evidence"         // still observed, but held back by raised evidence thresholds
	ReasonExpired         = "expired"          // the caller lost the method to window expiry
	ReasonOther           = "other"
)

// ModeUnseen stands for the mode of a callee on the side it is absent from.
const ModeUnseen = "unseen"

// Reasons tells Changes what it cannot see in two lists of rules. A nil
// func means "never".
type Reasons struct {
	// Denied reports that an operator deny rule covers the rule (it was removed on purpose).
	Denied func(callee, caller, method string, rt route.Route) bool
	// Filtered reports that the rule's access is still in the aggregate but was held back by raised evidence thresholds.
	Filtered func(callee, caller, method string, rt route.Route) bool
	// Expired reports that (callee, caller, method) lost access to window expiry since the previous publication.
	Expired func(callee, caller, method string) bool
}

// Input is one publication and the bundle it replaces.
type Input struct {
	Revision, PreviousRevision string
	Previous                   []Rule // the bundle in place (origin may be "" when unknown; evidence fields unused)
	Next                       []Rule
	ModesBefore, ModesAfter    map[string]string // callee -> "audit" | "enforce"
	Reasons                    Reasons
}

// Summary counts a publication's changes for a log line and metrics.
type Summary struct {
	Added   map[string]int // by origin
	Removed map[string]int // by reason
	Modes   int            // callees whose mode changed
}

// ChangeLog is changes.json: what a publication changed compared with the
// bundle in place before it. Its lists are sorted by callee, caller, method
// and route (Modes by callee).
type ChangeLog struct {
	Revision         string       `json:"revision"`
	PreviousRevision string       `json:"previous_revision"`
	Added            []Added      `json:"added"`
	Removed          []Removed    `json:"removed"`
	Modes            []ModeChange `json:"modes"`
}

// Added is a rule a publication added.
type Added struct {
	Callee string `json:"callee"`
	Caller string `json:"caller"`
	Method string `json:"method"`
	Route  string `json:"route"`
	Origin string `json:"origin"`
}

// Removed is a rule a publication removed, and why.
type Removed struct {
	Callee string `json:"callee"`
	Caller string `json:"caller"`
	Method string `json:"method"`
	Route  string `json:"route"`
	Reason string `json:"reason"`
	Into   string `json:"into,omitempty"` // the covering route, for generalized
}

// ModeChange is a callee whose mode a publication changed.
type ModeChange struct {
	Callee string `json:"callee"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// access is a rule but for its route: what generalizing keeps.
type access struct{ callee, caller, method string }

// candidate is a route of the next bundle that may cover a removed one.
type candidate struct {
	key string
	rt  route.Route
}

// Changes returns changes.json for a publication, what it changed compared
// with the bundle in place before it, and the counts of those changes.
// Rules are compared by callee, caller, method and route.
func Changes(in Input) ([]byte, Summary) {
	f, sum := Diff(in)
	return f.Encode(), sum
}

// Encode writes the change log as changes.json.
func (f ChangeLog) Encode() []byte { return encode(f) }

// ParseChanges reads a changes.json back.
func ParseChanges(data []byte) (ChangeLog, error) {
	var f ChangeLog
	if err := json.Unmarshal(data, &f); err != nil {
		return ChangeLog{}, fmt.Errorf("changes.json: %w", err)
	}
	return f, nil
}

// Diff is Changes before encoding: the change log as a value.
func Diff(in Input) (ChangeLog, Summary) {
	prev, next := distinct(in.Previous), distinct(in.Next)
	f := ChangeLog{
		Revision:         in.Revision,
		PreviousRevision: in.PreviousRevision,
		Added:            []Added{},
		Removed:          []Removed{},
		Modes:            modeChanges(in.ModesBefore, in.ModesAfter),
	}
	sum := Summary{Added: map[string]int{}, Removed: map[string]int{}, Modes: len(f.Modes)}

	before := make(map[aggregate.Key]bool, len(prev))
	for _, r := range prev {
		before[r.key()] = true
	}
	after := make(map[aggregate.Key]bool, len(next))
	covering := map[access][]candidate{}
	for _, r := range next {
		after[r.key()] = true
		if rt, err := route.ParseKey(r.Route); err == nil {
			// next is sorted, so each list is in route order
			a := access{r.Callee, r.Caller, r.Method}
			covering[a] = append(covering[a], candidate{r.Route, rt})
		}
		if !before[r.key()] {
			f.Added = append(f.Added, Added{r.Callee, r.Caller, r.Method, r.Route, r.Origin})
			sum.Added[r.Origin]++
		}
	}
	for _, r := range prev {
		if after[r.key()] {
			continue
		}
		reason, into := in.Reasons.why(r, covering)
		f.Removed = append(f.Removed, Removed{r.Callee, r.Caller, r.Method, r.Route, reason, into})
		sum.Removed[reason]++
	}
	return f, sum
}

// why decides the reason a rule of the previous bundle is not in the next
// one and, for a generalized rule, the route that covers it. The reasons
// that need a route are passed over when the rule's route does not parse.
func (rs Reasons) why(r Rule, covering map[access][]candidate) (reason, into string) {
	if r.Origin == OriginOperator {
		return ReasonOperatorRemoved, ""
	}
	if rt, err := route.ParseKey(r.Route); err == nil {
		if rs.Denied != nil && rs.Denied(r.Callee, r.Caller, r.Method, rt) {
			return ReasonOperatorDenied, ""
		}
		for _, c := range covering[access{r.Callee, r.Caller, r.Method}] {
			if route.Covers(c.rt, rt) {
				return ReasonGeneralized, c.key
			}
		}
		if rs.Filtered != nil && rs.Filtered(r.Callee, r.Caller, r.Method, rt) {
			return ReasonEvidence, ""
		}
	}
	if rs.Expired != nil && rs.Expired(r.Callee, r.Caller, r.Method) {
		return ReasonExpired, ""
	}
	return ReasonOther, ""
}

// distinct sorts rules and keeps one per access. Of a repeated one it keeps
// the operator's (an allow rule that was also learned is still the
// operator's to remove), else one whose origin is known.
func distinct(rules []Rule) []Rule {
	rank := func(origin string) int {
		switch origin {
		case OriginOperator:
			return 0
		case "":
			return 2
		}
		return 1
	}
	s := slices.Clone(rules)
	slices.SortFunc(s, func(a, b Rule) int {
		return cmp.Or(
			aggregate.CompareKeys(a.key(), b.key()),
			cmp.Compare(rank(a.Origin), rank(b.Origin)),
			cmp.Compare(a.Origin, b.Origin),
		)
	})
	return slices.CompactFunc(s, func(a, b Rule) bool { return a.key() == b.key() })
}

// modeChanges lists the callees whose mode differs, sorted by callee.
func modeChanges(before, after map[string]string) []ModeChange {
	callees := slices.AppendSeq(slices.Collect(maps.Keys(before)), maps.Keys(after))
	slices.Sort(callees)
	out := []ModeChange{}
	for _, c := range slices.Compact(callees) {
		from, ok := before[c]
		if !ok {
			from = ModeUnseen
		}
		to, ok := after[c]
		if !ok {
			to = ModeUnseen
		}
		if from != to {
			out = append(out, ModeChange{c, from, to})
		}
	}
	return out
}
