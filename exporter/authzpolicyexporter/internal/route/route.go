package route

import (
	"errors"
	"fmt"
	"strings"
)

// Segment is one path segment of a route: a literal, or a wildcard of a type
// that matches exactly one segment.
type Segment struct {
	Lit  string
	Wild Type // zero for a literal
}

// Route is a path template. The first segment is the one after the leading
// slash; "/" is the single empty literal.
type Route []Segment

// String is the canonical form, also the aggregate key: literals as sent,
// wildcards as {type}. It is unambiguous because a literal never contains
// a brace (see checkLiteral).
func (r Route) String() string {
	return string(r.AppendKey(make([]byte, 0, 64)))
}

// AppendKey appends r's canonical form (String) to b.
func (r Route) AppendKey(b []byte) []byte {
	for _, s := range r {
		b = append(b, '/')
		if s.Wild != 0 {
			b = append(b, '{')
			b = append(b, s.Wild.String()...)
			b = append(b, '}')
		} else {
			b = append(b, s.Lit...)
		}
	}
	return b
}

// HasWildcard reports whether r matches more than one path.
func (r Route) HasWildcard() bool {
	for _, s := range r {
		if s.Wild != 0 {
			return true
		}
	}
	return false
}

// Matches reports whether s admits the raw segment v.
func (s Segment) Matches(v string) bool {
	if s.Wild != 0 {
		return s.Wild.Matches(v)
	}
	return s.Lit == v
}

// Match reports whether r admits the raw segments segs.
func (r Route) Match(segs []string) bool {
	if len(r) != len(segs) {
		return false
	}
	for i, s := range r {
		if !s.Matches(segs[i]) {
			return false
		}
	}
	return true
}

// Overlaps reports whether some path is admitted by both a and b.
func Overlaps(a, b Route) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		switch {
		case x.Wild == 0 && y.Wild == 0:
			if x.Lit != y.Lit {
				return false
			}
		case x.Wild == 0:
			if !y.Wild.Matches(x.Lit) {
				return false
			}
		case y.Wild == 0:
			if !x.Wild.Matches(y.Lit) {
				return false
			}
		case !Meet(x.Wild, y.Wild):
			return false
		}
	}
	return true
}

// MaxSegments is the most segments a route may have: routes::max_segments
// cannot exceed it, and a key read back (a saved state) with more is
// refused rather than generalized, which recurses once per segment.
const MaxSegments = 1024

// ParseKey parses the canonical form written by Route.String.
func ParseKey(key string) (Route, error) {
	if !strings.HasPrefix(key, "/") {
		return nil, errors.New("route must start with /")
	}
	if n := strings.Count(key, "/"); n > MaxSegments {
		return nil, fmt.Errorf("route has %d segments, more than %d", n, MaxSegments)
	}
	parts := strings.Split(key[1:], "/")
	r := make(Route, len(parts))
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			t, ok := ParseType(p[1 : len(p)-1])
			if !ok {
				return nil, fmt.Errorf("unknown wildcard type %q", p)
			}
			r[i].Wild = t
			continue
		}
		if err := checkLiteral(p); err != nil {
			return nil, err
		}
		r[i].Lit = p
	}
	return r, nil
}

// ParseTemplate parses an operator-given or instrumentation-given route
// template such as /users/{id}, /users/{id:int} or /users/:id. A parameter
// without a type is a Token wildcard here; a Learner narrows every
// parameter of an instrumentation template, and the untyped ones of an
// operator template, to the observed value's type. Multi-segment wildcards
// are refused: a catch-all is never learned.
func ParseTemplate(tpl string) (Route, error) {
	t, err := parseTemplate(tpl)
	return t.route, err
}

// ParseTemplateTyped is ParseTemplate that also reports, per segment,
// whether it is a parameter declared with a type ({id:int}): a reader that
// gives untyped parameters another meaning needs to tell them apart.
func ParseTemplateTyped(tpl string) (Route, []bool, error) {
	t, err := parseTemplate(tpl)
	return t.route, t.typed, err
}

// template is a parsed route template and, per segment, whether it is a
// parameter with a declared type ({id:int}).
type template struct {
	route Route
	typed []bool
}

func parseTemplate(tpl string) (template, error) {
	n := strings.Count(tpl, "/")
	t := template{route: make(Route, 0, n), typed: make([]bool, 0, n)}
	var err error
	t.route, err = parseRoute(t.route, &t.typed, tpl)
	if err != nil {
		return template{}, err
	}
	return t, nil
}

// parseRoute parses a template into r's storage and, when typed is not
// nil, appends to it whether each segment is a parameter with a declared
// type.
func parseRoute(r Route, typed *[]bool, tpl string) (Route, error) {
	if !strings.HasPrefix(tpl, "/") {
		return nil, fmt.Errorf("template %q must start with /", truncate(tpl))
	}
	r = r[:0]
	for rest, more := tpl[1:], true; more; {
		var p string
		p, rest, more = strings.Cut(rest, "/")
		var seg Segment
		hasType := false
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			var name, typ string
			name, typ, hasType = strings.Cut(p[1:len(p)-1], ":")
			if name == "" && !hasType || strings.HasSuffix(name, "...") || strings.ContainsAny(name, "*{}") {
				return nil, fmt.Errorf("template %q: parameter %q must be {name} or {name:type}", truncate(tpl), p)
			}
			seg.Wild = Token
			if hasType {
				w, ok := ParseType(typ)
				if !ok {
					return nil, fmt.Errorf("template %q: unknown type %q (want int, hex, uuid, id or token)", truncate(tpl), typ)
				}
				seg.Wild = w
			}
		case strings.HasPrefix(p, ":") && len(p) > 1:
			// path-to-regexp modifiers and patterns (:p*, :p+, :p?, :p(.*))
			// may span several segments or none: only a plain name is a
			// one-segment parameter.
			if !all(p[1:], isWord) {
				return nil, fmt.Errorf("template %q: parameter %q must be :name", truncate(tpl), p)
			}
			seg.Wild = Token
		case strings.Contains(p, "*"):
			return nil, fmt.Errorf("template %q: wildcards are written {name}; %q is not allowed", truncate(tpl), p)
		default:
			if err := checkLiteral(p); err != nil {
				return nil, fmt.Errorf("template %q: %w", truncate(tpl), err)
			}
			seg.Lit = p
		}
		r = append(r, seg)
		if typed != nil {
			*typed = append(*typed, hasType)
		}
	}
	return r, nil
}

func isWord(c byte) bool { return isDigit(c) || isAlpha(c) || c == '_' }

// isGRPCMethod reports whether a path's segments have a gRPC method's
// shape, /<package>.<Service>/<Method> (or /<Service>/<Method> with both
// names capitalized, for a service without a package). A method is a name:
// one caller's use of many methods of a service is no reason to allow the
// others, so such paths stay literal in learning and in the backstop.
func isGRPCMethod(segs []string) bool {
	if len(segs) != 2 || !isIdent(segs[1]) {
		return false
	}
	svc := segs[0]
	if !strings.Contains(svc, ".") {
		return isIdent(svc) && isUpper(svc[0]) && isUpper(segs[1][0])
	}
	for _, part := range strings.Split(svc, ".") {
		if !isIdent(part) {
			return false
		}
	}
	return true
}

// isIdent matches a protobuf identifier: a letter or '_', then letters,
// digits and '_'.
func isIdent(s string) bool {
	return s != "" && !isDigit(s[0]) && all(s, isWord)
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// ValidMethod accepts an HTTP method: an upper-case token of at most 32
// bytes. Envoy hands the method to the policy as sent, so lower-case
// spellings are refused rather than folded.
func ValidMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
