// Package review produces the files that sit next to each published bundle
// in the reviewed, git-committed directory. A team approves a policy only if it
// can read it: evidence.json says why each rule of a callee exists (where its
// route came from, when and how often it was seen), and changes.json says what
// the latest revision changed and why each removal happened. The functions do
// no I/O and read no clock: the same rules give the same bytes, in a sorted
// order, so the committed diff shows only what changed.
package review

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// Origins of a rule.
const (
	OriginLearned   = "learned"    // heuristics typed the observed path
	OriginHTTPRoute = "http_route" // the span's instrumentation template
	OriginTemplate  = "template"   // an operator routes.templates entry
	OriginOpenAPI   = "openapi"    // an operation of the callee's API spec (routes.openapi)
	OriginBackstop  = "backstop"   // the cardinality backstop generalized several routes into it
	OriginOperator  = "operator"   // an allow rule of the overrides file
)

// The review files in the unpacked directory: the change log and the page
// at its top, each callee's evidence beside its data.json.
const (
	ChangesFile  = "changes.json"
	PageFile     = "index.html"
	EvidenceFile = "evidence.json"
)

// Rule is one allow rule of a bundle with its evidence.
type Rule struct {
	Callee, Caller, Method string
	Route                  string // canonical form, route.Route.String(): "/users/{int}/orders"
	// Except is what the route leaves out, comma-separated
	// (render.Rule.ExceptText): other operations of the callee's API spec.
	Except              string
	Origin              string
	FirstSeen, LastSeen time.Time // zero for an operator rule never observed
	Count               uint64
	TimeBuckets         int // distinct time buckets it was seen in
	// DistinctValues estimates how many distinct concrete paths a wildcard
	// rule was learned from (0 for literal rules: omitted).
	DistinctValues int
}

// key identifies the rule's access. Its order (callee, caller, method,
// route; aggregate.CompareKeys) is the order of every array a reviewer reads,
// the one that keeps their diffs small.
func (r Rule) key() aggregate.Key {
	return aggregate.Key{Destination: r.Callee, Source: r.Caller, Method: r.Method, Route: r.Route}
}

// encode writes v as the review files are written: two-space indents, a
// final newline, and <, > and & as they are, for people reading diffs.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		// The encoded types hold only strings, integers and slices of them.
		panic("review: " + err.Error())
	}
	return b.Bytes()
}

// timestamp is t in RFC 3339, UTC, whole seconds; "" (omitted) when zero.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}
