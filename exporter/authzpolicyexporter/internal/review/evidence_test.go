package review

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shop is one callee's rules, one of each origin, in no particular order.
func shop() []Rule {
	return []Rule{
		{Callee: orders, Caller: frontend, Method: "GET", Route: "/orders/{int}", Origin: OriginBackstop,
			FirstSeen: day, LastSeen: day.Add(50 * time.Hour), Count: 812, TimeBuckets: 9, DistinctValues: 140},
		{Callee: orders, Caller: checkout, Method: "POST", Route: "/orders", Origin: OriginLearned,
			FirstSeen: day, LastSeen: day.Add(3 * time.Hour), Count: 20, TimeBuckets: 3},
		{Callee: orders, Caller: frontend, Method: "GET", Route: "/orders/{uuid}/items", Origin: OriginHTTPRoute,
			FirstSeen: day, LastSeen: day.Add(time.Hour), Count: 7, TimeBuckets: 2, DistinctValues: 5},
		{Callee: orders, Caller: frontend, Method: "DELETE", Route: "/orders/{int}", Origin: OriginTemplate,
			FirstSeen: day, LastSeen: day, Count: 1, TimeBuckets: 1, DistinctValues: 1},
		{Callee: orders, Caller: checkout, Method: "GET", Route: "/health", Origin: OriginOperator},
	}
}

func TestEvidenceGolden(t *testing.T) {
	files := Evidence(shop())
	require.Len(t, files, 1)
	golden(t, "evidence.json", files[orders])
}

func TestEvidenceOneFilePerCallee(t *testing.T) {
	rules := append(shop(), Rule{Callee: stock, Caller: checkout, Method: "PUT", Route: "/stock/{id}", Origin: OriginLearned})
	files := Evidence(rules)
	assert.Len(t, files, 2)
	assert.Equal(t, `[
  {
    "caller": "spiffe://example.org/ns/shop/sa/checkout",
    "method": "PUT",
    "route": "/stock/{id}",
    "origin": "learned"
  }
]
`, string(files[stock]))
	assert.Empty(t, Evidence(nil))
}

func TestEvidenceOrderAndOmission(t *testing.T) {
	got := string(Evidence(shop())[orders])
	// caller, then method, then route
	assert.Regexp(t, `(?s)checkout.*"GET".*"/health".*checkout.*"POST".*frontend.*"DELETE".*frontend.*"GET".*"/orders/\{int\}".*"/orders/\{uuid\}/items"`, got)
	// the operator rule was never seen: no times, counts or buckets
	assert.Contains(t, got, `"route": "/health",
    "origin": "operator"
  },`)
	// a literal rule has no distinct_values
	assert.Contains(t, got, `"route": "/orders",
    "origin": "learned",
    "first_seen": "2026-11-02T09:30:15Z",
    "last_seen": "2026-11-02T12:30:15Z",
    "count": 20,
    "time_buckets": 3
  }`)
}

func TestEvidenceTimesAreUTCWholeSeconds(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	r := Rule{Callee: stock, Caller: checkout, Method: "GET", Route: "/stock", Origin: OriginLearned,
		FirstSeen: time.Date(2026, 11, 2, 11, 0, 0, 999_999_999, zone), LastSeen: day.Add(time.Millisecond), Count: 2, TimeBuckets: 1}
	got := string(Evidence([]Rule{r})[stock])
	assert.Contains(t, got, `"first_seen": "2026-11-02T09:00:00Z"`)
	assert.Contains(t, got, `"last_seen": "2026-11-02T09:30:15Z"`)
}

func TestEvidenceIsDeterministic(t *testing.T) {
	rules := append(shop(),
		// a repeated access with other evidence still sorts one way
		Rule{Callee: orders, Caller: checkout, Method: "POST", Route: "/orders", Origin: OriginLearned, Count: 3},
		Rule{Callee: stock, Caller: orders, Method: "GET", Route: "/stock/{int}", Origin: OriginLearned, Count: 4},
	)
	want := Evidence(rules)
	for range 20 {
		assert.Equal(t, want, Evidence(shuffled(rules)))
	}
}

// ParseEvidence reads back what Evidence wrote, and Changes' output parses
// back too, so that a tool can show a review directory.
func TestParseEvidenceAndChangesRoundTrip(t *testing.T) {
	rules := shop()
	got, err := ParseEvidence(orders, Evidence(rules)[orders])
	require.NoError(t, err)
	want := slices.Clone(rules)
	slices.SortFunc(want, compareRules)
	assert.Equal(t, want, got)
	_, err = ParseEvidence(orders, []byte(`[{"first_seen":"yesterday"}]`))
	assert.Error(t, err)

	raw, _ := Changes(publication())
	log, err := ParseChanges(raw)
	require.NoError(t, err)
	assert.Equal(t, raw, log.Encode())
	_, err = ParseChanges([]byte("{"))
	assert.Error(t, err)
}
