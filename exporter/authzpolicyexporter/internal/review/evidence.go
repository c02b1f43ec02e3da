package review

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// EvidenceEntry is one rule in evidence.json; the callee is the file's.
// Readers of the review directory decode the file into a list of them.
type EvidenceEntry struct {
	Caller         string `json:"caller"`
	Method         string `json:"method"`
	Route          string `json:"route"`
	Except         string `json:"except,omitempty"`
	Origin         string `json:"origin"`
	FirstSeen      string `json:"first_seen,omitempty"`
	LastSeen       string `json:"last_seen,omitempty"`
	Count          uint64 `json:"count,omitempty"`
	TimeBuckets    int    `json:"time_buckets,omitempty"`
	DistinctValues int    `json:"distinct_values,omitempty"`
}

// Evidence returns, for each callee, its evidence.json: one entry per rule,
// sorted by caller, method and route. The map key is the callee's SPIFFE ID;
// where the file goes is the caller's choice. Only what a rule states and
// the counts about it are written, never an observed value.
func Evidence(rules []Rule) map[string][]byte {
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, compareRules)
	out := map[string][]byte{}
	for i := 0; i < len(sorted); {
		callee := sorted[i].Callee
		var entries []EvidenceEntry
		for ; i < len(sorted) && sorted[i].Callee == callee; i++ {
			r := sorted[i]
			entries = append(entries, EvidenceEntry{
				Caller:         r.Caller,
				Method:         r.Method,
				Route:          r.Route,
				Except:         r.Except,
				Origin:         r.Origin,
				FirstSeen:      timestamp(r.FirstSeen),
				LastSeen:       timestamp(r.LastSeen),
				Count:          r.Count,
				TimeBuckets:    r.TimeBuckets,
				DistinctValues: r.DistinctValues,
			})
		}
		out[callee] = encode(entries)
	}
	return out
}

// compareRules orders rules by callee, caller, method and route; the
// evidence fields break ties, so that even a repeated rule gives the same
// bytes whatever the input order.
func compareRules(a, b Rule) int {
	return cmp.Or(
		aggregate.CompareKeys(a.key(), b.key()),
		cmp.Compare(a.Except, b.Except),
		cmp.Compare(a.Origin, b.Origin),
		a.FirstSeen.Compare(b.FirstSeen),
		a.LastSeen.Compare(b.LastSeen),
		cmp.Compare(a.Count, b.Count),
		cmp.Compare(a.TimeBuckets, b.TimeBuckets),
		cmp.Compare(a.DistinctValues, b.DistinctValues),
	)
}

// ParseEvidence reads a callee's evidence.json back into its rules, for a
// tool that shows a review directory (Page).
func ParseEvidence(callee string, data []byte) ([]Rule, error) {
	var entries []EvidenceEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("evidence.json of %s: %w", callee, err)
	}
	out := make([]Rule, 0, len(entries))
	for _, e := range entries {
		r := Rule{
			Callee: callee, Caller: e.Caller, Method: e.Method, Route: e.Route, Except: e.Except, Origin: e.Origin,
			Count: e.Count, TimeBuckets: e.TimeBuckets, DistinctValues: e.DistinctValues,
		}
		var err error
		if r.FirstSeen, err = parseTimestamp(e.FirstSeen); err != nil {
			return nil, fmt.Errorf("evidence.json of %s: first_seen: %w", callee, err)
		}
		if r.LastSeen, err = parseTimestamp(e.LastSeen); err != nil {
			return nil, fmt.Errorf("evidence.json of %s: last_seen: %w", callee, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseTimestamp reads what timestamp wrote; "" is the zero time.
func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}
