package spiffeid

import (
	"slices"
	"strings"
)

// Pattern is a set of SPIFFE IDs an operator rule names: "*" for any ID,
// an exact ID, or an ID in which whole segments are "*" (exactly one
// segment, the trust domain included) and that may end in "/**" (zero or
// more further path segments). Wildcards are whole segments only, so a
// pattern means the same in Go and in the policy, which compares IDs
// segment by segment.
type Pattern struct {
	text string
	segs []string // trust domain, then path segments; "*" matches one
	rest bool     // trailing "/**"
}

// ParsePattern parses a pattern. Its segments other than wildcards follow
// the rules Validate enforces.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{text: s, rest: true}, nil
	}
	body, ok := strings.CutPrefix(s, scheme)
	if !ok {
		return Pattern{}, invalid("SPIFFE ID pattern", s, `must be "*" or start with "spiffe://"`)
	}
	p := Pattern{text: s}
	if b, ok := strings.CutSuffix(body, "/**"); ok {
		body, p.rest = b, true
	}
	p.segs = strings.Split(body, "/")
	for _, seg := range p.segs {
		switch {
		case seg == "**":
			return Pattern{}, invalid("SPIFFE ID pattern", s, `"**" is allowed only as a last path segment, after the trust domain`)
		case seg != "*" && strings.Contains(seg, "*"):
			return Pattern{}, invalid("SPIFFE ID pattern", s, `"*" must be a whole segment`)
		}
	}
	// A one-byte stand-in valid in every position keeps the offsets of
	// Validate's reasons true of the pattern as written.
	if reason := problem(scheme + strings.ReplaceAll(body, "*", "x")); reason != "" {
		return Pattern{}, invalid("SPIFFE ID pattern", s, reason)
	}
	return p, nil
}

// Match reports whether id is a valid SPIFFE ID the pattern admits. It does
// not allocate: it runs for every callee on every flush.
func (p Pattern) Match(id string) bool {
	if len(id) > maxLen {
		return false
	}
	rest, ok := strings.CutPrefix(id, scheme)
	if !ok {
		return false
	}
	for i := 0; ; i++ {
		seg, tail, more := strings.Cut(rest, "/")
		switch {
		case i < len(p.segs) && p.segs[i] != "*":
			// A literal of a parsed pattern is valid, so equality
			// is all that is needed.
			if seg != p.segs[i] {
				return false
			}
		case i >= len(p.segs) && !p.rest:
			return false
		case !validSegment(i, seg):
			return false
		}
		if !more {
			return i+1 >= len(p.segs)
		}
		rest = tail
	}
}

// validSegment reports whether seg may be segment i of a valid ID (the
// trust domain when i is 0); it agrees with Validate.
func validSegment(i int, seg string) bool {
	if seg == "" {
		return false
	}
	if i == 0 {
		return seg[0] != '.' && seg[len(seg)-1] != '.' && allBytes(seg, isTrustDomainChar)
	}
	return seg != "." && seg != ".." && allBytes(seg, isPathChar)
}

func allBytes(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// Segments returns the trust domain and path segments the pattern fixes,
// "*" where it admits any one segment; nil for "*" alone.
func (p Pattern) Segments() []string { return slices.Clone(p.segs) }

// Rest reports whether the pattern admits any further path segments after
// its Segments (a trailing "/**", or "*" alone).
func (p Pattern) Rest() bool { return p.rest }

// Exact returns the one ID the pattern admits, if it has no wildcard.
func (p Pattern) Exact() (string, bool) {
	if p.rest || p.segs == nil || slices.Contains(p.segs, "*") {
		return "", false
	}
	return p.text, true
}
