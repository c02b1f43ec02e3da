package review

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

func rule(callee, caller, method, rt, origin string) Rule {
	return Rule{Callee: callee, Caller: caller, Method: method, Route: rt, Origin: origin}
}

func decode(t *testing.T, b []byte) ChangeLog {
	t.Helper()
	var f ChangeLog
	require.NoError(t, json.Unmarshal(b, &f))
	return f
}

func always(string, string, string, route.Route) bool { return true }

func expiredAlways(string, string, string) bool { return true }

func TestRemovedReasons(t *testing.T) {
	removed := rule(orders, frontend, "GET", "/orders/7", OriginLearned)
	backstop := []Rule{rule(orders, frontend, "GET", "/orders/{int}", OriginBackstop)}
	every := Reasons{Denied: always, Filtered: always, Expired: expiredAlways}
	tests := []struct {
		name    string
		removed Rule
		next    []Rule
		reasons Reasons
		want    Removed
	}{
		{
			name:    "operator removed comes first",
			removed: rule(orders, frontend, "GET", "/orders/7", OriginOperator),
			next:    backstop,
			reasons: every,
			want:    Removed{Reason: ReasonOperatorRemoved},
		},
		{
			name:    "denied before generalized",
			removed: removed,
			next:    backstop,
			reasons: every,
			want:    Removed{Reason: ReasonOperatorDenied},
		},
		{
			name:    "generalized before evidence",
			removed: removed,
			next:    backstop,
			reasons: Reasons{Filtered: always, Expired: expiredAlways},
			want:    Removed{Reason: ReasonGeneralized, Into: "/orders/{int}"},
		},
		{
			name:    "generalized into the first covering route",
			removed: removed,
			next: []Rule{
				rule(orders, frontend, "GET", "/orders/{token}", OriginBackstop),
				rule(orders, frontend, "GET", "/orders/{id}", OriginBackstop),
				rule(orders, frontend, "GET", "/orders/{int}", OriginBackstop),
			},
			want: Removed{Reason: ReasonGeneralized, Into: "/orders/{id}"},
		},
		{
			name:    "a wildcard generalized into a wider one",
			removed: rule(orders, frontend, "GET", "/orders/{int}", OriginLearned),
			next:    []Rule{rule(orders, frontend, "GET", "/orders/{hex}", OriginBackstop)},
			want:    Removed{Reason: ReasonGeneralized, Into: "/orders/{hex}"},
		},
		{
			name:    "only the same callee, caller and method generalize",
			removed: removed,
			next: []Rule{
				rule(stock, frontend, "GET", "/orders/{int}", OriginBackstop),
				rule(orders, checkout, "GET", "/orders/{int}", OriginBackstop),
				rule(orders, frontend, "PUT", "/orders/{int}", OriginBackstop),
				rule(orders, frontend, "GET", "/orders/{uuid}", OriginBackstop),
				rule(orders, frontend, "GET", "/orders/7/items", OriginLearned),
			},
			want: Removed{Reason: ReasonOther},
		},
		{
			name:    "evidence before expired",
			removed: removed,
			reasons: Reasons{Filtered: always, Expired: expiredAlways},
			want:    Removed{Reason: ReasonEvidence},
		},
		{
			name:    "expired",
			removed: removed,
			reasons: Reasons{Expired: expiredAlways},
			want:    Removed{Reason: ReasonExpired},
		},
		{
			name:    "other",
			removed: removed,
			want:    Removed{Reason: ReasonOther},
		},
		{
			name:    "an unknown previous origin is not the operator's",
			removed: rule(orders, frontend, "GET", "/orders/7", ""),
			want:    Removed{Reason: ReasonOther},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, sum := Changes(Input{Previous: []Rule{tt.removed}, Next: tt.next, Reasons: tt.reasons})
			f := decode(t, b)
			require.Len(t, f.Removed, 1)
			want := tt.want
			want.Callee, want.Caller, want.Method, want.Route = tt.removed.Callee, tt.removed.Caller, tt.removed.Method, tt.removed.Route
			assert.Equal(t, want, f.Removed[0])
			assert.Equal(t, map[string]int{want.Reason: 1}, sum.Removed)
		})
	}
}

func TestReasonsSeeTheRule(t *testing.T) {
	var denied, filtered, expired []string
	rs := Reasons{
		Denied: func(callee, caller, method string, rt route.Route) bool {
			denied = append(denied, callee, caller, method, rt.String())
			return false
		},
		Filtered: func(callee, caller, method string, rt route.Route) bool {
			filtered = append(filtered, callee, caller, method, rt.String())
			return false
		},
		Expired: func(callee, caller, method string) bool {
			expired = append(expired, callee, caller, method)
			return false
		},
	}
	Changes(Input{Previous: []Rule{rule(orders, frontend, "GET", "/orders/{int}/items", OriginLearned)}, Reasons: rs})
	want := []string{orders, frontend, "GET", "/orders/{int}/items"}
	assert.Equal(t, want, denied)
	assert.Equal(t, want, filtered)
	assert.Equal(t, want[:3], expired)
}

func TestUnparseableRoutesDoNotPanic(t *testing.T) {
	bad := []string{"", "orders", "/{nope}", "/a{b", "/orders/{int", "/{}", "/\x00", "/a b"}
	for _, rt := range bad {
		t.Run(rt, func(t *testing.T) {
			prev := []Rule{rule(orders, frontend, "GET", rt, OriginLearned)}
			// A route that does not parse is never denied, generalized or
			// filtered, nor does it cover another.
			next := []Rule{rule(orders, frontend, "GET", rt+"/x", OriginLearned), rule(orders, frontend, "GET", "/{token}", OriginBackstop)}
			var f ChangeLog
			require.NotPanics(t, func() {
				b, _ := Changes(Input{Previous: prev, Next: next, Reasons: Reasons{Denied: always, Filtered: always}})
				f = decode(t, b)
			})
			require.Len(t, f.Removed, 1)
			assert.Equal(t, ReasonOther, f.Removed[0].Reason)

			b, _ := Changes(Input{Previous: prev, Reasons: Reasons{Denied: always, Filtered: always, Expired: expiredAlways}})
			assert.Equal(t, ReasonExpired, decode(t, b).Removed[0].Reason, "expiry needs no route")
		})
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]string
		want          []ModeChange
	}{
		{name: "none", want: []ModeChange{}},
		{name: "unchanged", before: map[string]string{orders: "audit"}, after: map[string]string{orders: "audit"}, want: []ModeChange{}},
		{
			name:   "enforced",
			before: map[string]string{orders: "audit"}, after: map[string]string{orders: "enforce"},
			want: []ModeChange{{orders, "audit", "enforce"}},
		},
		{
			name:  "new callee",
			after: map[string]string{stock: "audit"},
			want:  []ModeChange{{stock, ModeUnseen, "audit"}},
		},
		{
			name:   "gone callee",
			before: map[string]string{stock: "enforce"},
			want:   []ModeChange{{stock, "enforce", ModeUnseen}},
		},
		{
			name:   "sorted by callee",
			before: map[string]string{stock: "audit", orders: "enforce", checkout: "audit", frontend: "audit"},
			after:  map[string]string{stock: "enforce", orders: "audit", frontend: "audit"},
			want:   []ModeChange{{checkout, "audit", ModeUnseen}, {orders, "enforce", "audit"}, {stock, "audit", "enforce"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, sum := Changes(Input{ModesBefore: tt.before, ModesAfter: tt.after})
			assert.Equal(t, tt.want, decode(t, b).Modes)
			assert.Equal(t, len(tt.want), sum.Modes)
		})
	}
}

func TestAddedAndRepeatedRules(t *testing.T) {
	prev := []Rule{
		rule(orders, checkout, "GET", "/health", ""),
		rule(orders, checkout, "GET", "/health", OriginOperator),
		rule(orders, frontend, "GET", "/orders", OriginLearned),
	}
	next := []Rule{
		rule(orders, frontend, "GET", "/orders", OriginLearned),
		rule(stock, checkout, "PUT", "/stock/{id}", OriginLearned),
		rule(stock, checkout, "PUT", "/stock/{id}", OriginOperator),
		rule(stock, checkout, "PUT", "/stock/{id}", ""),
		rule(orders, checkout, "POST", "/orders", OriginHTTPRoute),
	}
	b, sum := Changes(Input{Previous: prev, Next: next})
	f := decode(t, b)
	assert.Equal(t, []Added{
		{orders, checkout, "POST", "/orders", OriginHTTPRoute},
		// an allow rule that was also learned is the operator's
		{stock, checkout, "PUT", "/stock/{id}", OriginOperator},
	}, f.Added)
	assert.Equal(t, []Removed{{orders, checkout, "GET", "/health", ReasonOperatorRemoved, ""}}, f.Removed)
	assert.Equal(t, Summary{
		Added:   map[string]int{OriginHTTPRoute: 1, OriginOperator: 1},
		Removed: map[string]int{ReasonOperatorRemoved: 1},
	}, sum)
}

func TestNoChanges(t *testing.T) {
	rules := shop()
	b, sum := Changes(Input{Revision: "r2", PreviousRevision: "r1", Previous: rules, Next: shuffled(rules)})
	assert.Equal(t, `{
  "revision": "r2",
  "previous_revision": "r1",
  "added": [],
  "removed": [],
  "modes": []
}
`, string(b))
	assert.Equal(t, Summary{Added: map[string]int{}, Removed: map[string]int{}}, sum)
}

// publication replaces a bundle with one of every kind of change.
func publication() Input {
	return Input{
		Revision:         "9f2c4e1a",
		PreviousRevision: "41d07b3c",
		Previous: []Rule{
			rule(orders, checkout, "GET", "/health", OriginOperator),
			rule(orders, checkout, "POST", "/orders", ""),
			rule(orders, frontend, "DELETE", "/orders/{int}", ""),
			rule(orders, frontend, "GET", "/orders/17", ""),
			rule(orders, frontend, "GET", "/orders/18", ""),
			rule(orders, frontend, "GET", "/orders/{uuid}/items", ""),
			rule(stock, checkout, "GET", "/stock/{id}", ""),
			rule(stock, checkout, "PUT", "/stock/{id}", ""),
			rule(stock, orders, "POST", "/stock/reservations", ""),
		},
		Next: []Rule{
			rule(orders, checkout, "POST", "/orders", OriginLearned),
			rule(orders, frontend, "GET", "/orders/{int}", OriginBackstop),
			rule(orders, frontend, "GET", "/orders/{uuid}/items", OriginHTTPRoute),
			rule(orders, frontend, "GET", "/orders/{uuid}/receipt", OriginTemplate),
			rule(payments, checkout, "POST", "/payments", OriginLearned),
		},
		ModesBefore: map[string]string{orders: "audit", stock: "enforce"},
		ModesAfter:  map[string]string{orders: "enforce", payments: "audit"},
		Reasons: Reasons{
			Denied: func(callee, _, method string, _ route.Route) bool { return callee == orders && method == "DELETE" },
			Filtered: func(callee, _, method string, _ route.Route) bool {
				return callee == stock && method == "PUT"
			},
			Expired: func(callee, _, method string) bool { return callee == stock && method == "GET" },
		},
	}
}

const payments = "spiffe://example.org/ns/shop/sa/payments"

func TestChangesGolden(t *testing.T) {
	b, sum := Changes(publication())
	golden(t, "changes.json", b)
	assert.Equal(t, Summary{
		Added:   map[string]int{OriginLearned: 1, OriginBackstop: 1, OriginTemplate: 1},
		Removed: map[string]int{ReasonOperatorRemoved: 1, ReasonOperatorDenied: 1, ReasonGeneralized: 2, ReasonEvidence: 1, ReasonExpired: 1, ReasonOther: 1},
		Modes:   3,
	}, sum)
}

func TestChangesIsDeterministic(t *testing.T) {
	in := publication()
	want, _ := Changes(in)
	for range 20 {
		in.Previous, in.Next = shuffled(in.Previous), shuffled(in.Next)
		got, _ := Changes(in)
		assert.Equal(t, string(want), string(got))
	}
}
