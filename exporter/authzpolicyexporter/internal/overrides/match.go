package overrides

import (
	"net/url"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// Match reports whether r applies to a request: segs are the raw path
// segments after the leading "/", as route.Route.Match takes them.
func (r Rule) Match(callee, caller, method string, segs []string) bool {
	return r.some(callee, caller, method, func(own Route) bool { return own.Match(segs) })
}

// Allows reports whether allow rule r grants a request whose path has the
// raw segments segs. Only a path with no other spelling qualifies: no "."
// or ".." segment, nothing percent-encoded, no backslash and no empty
// segment but a trailing one, also before a segment's path parameters
// ("..;x"), so that a wildcard never reaches a route by a detour
// (/debug/../balances/0, /debug/..;/balances/0).
func (r Rule) Allows(callee, caller, method string, segs []string) bool {
	for i, s := range segs {
		if s == "" {
			if i < len(segs)-1 {
				return false
			}
			continue
		}
		name, _, _ := strings.Cut(s, ";")
		if name == "" || name == "." || name == ".." || strings.ContainsAny(s, `%\`) {
			return false
		}
	}
	return r.Match(callee, caller, method, segs)
}

// Denies reports whether deny rule r forbids a request for path (without
// its query). Each of r's routes, as written and with its literals decoded,
// is matched against the path as written and as a server may read it:
// decoded ("+" is a plus sign in a path), with empty and "." segments
// dropped (/cart//0, /cart/%30 and /cart/0/ are /cart/0), and without each
// segment's path parameters (/cart;v=1/0). A path that names ".." once
// decoded (also before path parameters, "..;x"), holds a backslash or does
// not decode could lead anywhere, and is forbidden whenever r's callee,
// caller and method match.
func (r Rule) Denies(callee, caller, method, path string) bool {
	if !r.key(callee, caller, method) {
		return false
	}
	var raw []string
	if rest, ok := strings.CutPrefix(path, "/"); ok {
		raw = strings.Split(rest, "/")
	}
	decoded, err := url.PathUnescape(path)
	if err != nil || strings.Contains(decoded, `\`) {
		return true
	}
	var norm, params []string
	for s := range strings.SplitSeq(decoded, "/") {
		if s == "" || s == "." {
			continue
		}
		name, _, _ := strings.Cut(s, ";")
		switch name {
		case "..":
			return true
		case "", ".":
		default:
			params = append(params, name)
		}
		norm = append(norm, s)
	}
	semi := strings.Contains(decoded, ";")
	match := func(own Route) bool {
		return own.Match(raw) || own.Match(norm) || semi && own.Match(params)
	}
	return slices.ContainsFunc(r.Routes, func(own Route) bool {
		dec, ok := own.Decoded()
		return match(own) || ok && match(dec)
	})
}

// Decoded returns r with its literals percent-decoded, as a server reads
// them (/caf%C3%A9 is also /caf%c3%a9 and /%63af%C3%A9), and whether that
// differs from r. A deny rule matches a path in both spellings.
func (r Route) Decoded() (Route, bool) {
	d, changed := r, false
	for i, s := range r.Segments {
		if s.Any || s.Wild != 0 || !strings.Contains(s.Lit, "%") {
			continue
		}
		lit, err := url.PathUnescape(s.Lit)
		if err != nil || lit == s.Lit {
			continue
		}
		if !changed {
			d.Segments, changed = slices.Clone(r.Segments), true
		}
		d.Segments[i].Lit = lit
	}
	return d, changed
}

// Covers reports whether r matches every request that the learned route
// rt admits for callee, caller and method, so that a deny may drop the
// learned rule altogether. It is conservative: a route that only several
// of r's routes cover together is not covered.
func (r Rule) Covers(callee, caller, method string, rt route.Route) bool {
	return r.some(callee, caller, method, func(own Route) bool { return own.covers(rt) })
}

// some reports whether r applies to callee, caller and method and f holds
// for one of its routes.
func (r Rule) some(callee, caller, method string, f func(Route) bool) bool {
	return r.key(callee, caller, method) && slices.ContainsFunc(r.Routes, f)
}

func (r Rule) key(callee, caller, method string) bool {
	if !r.Callee.Match(callee) || !r.Caller.Match(caller) {
		return false
	}
	// Any method is any spelling too: a deny of every method must not
	// miss one that is not a valid token.
	if r.Methods == nil {
		return true
	}
	_, ok := slices.BinarySearch(r.Methods, method)
	return ok
}

// Match reports whether r admits the raw path segments segs.
func (r Route) Match(segs []string) bool {
	if !r.length(len(segs)) {
		return false
	}
	for i, s := range r.Segments {
		if !s.match(segs[i]) {
			return false
		}
	}
	return true
}

// length reports whether r admits paths of n segments.
func (r Route) length(n int) bool {
	return n == len(r.Segments) || r.Rest && n > len(r.Segments)
}

func (s Segment) match(v string) bool {
	switch {
	case s.Any:
		return v != ""
	case s.Wild != 0:
		return s.Wild.Matches(v)
	}
	return s.Lit == v
}

// covers reports whether r admits every path rt admits: a length r admits,
// and each of r's segments covering rt's in its place; rt's segments past
// them are in r's Rest, which admits anything.
func (r Route) covers(rt route.Route) bool {
	if !r.length(len(rt)) {
		return false
	}
	for i, s := range r.Segments {
		if !s.covers(rt[i]) {
			return false
		}
	}
	return true
}

// covers reports whether s admits every value l admits.
func (s Segment) covers(l route.Segment) bool {
	switch {
	case l.Wild == 0:
		return s.match(l.Lit)
	case s.Any:
		return true // a wildcard never admits the empty segment
	}
	return s.Wild != 0 && route.Join(l.Wild, s.Wild) == s.Wild
}
