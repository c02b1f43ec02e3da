package route

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Errors a Learner returns, for counting skipped spans by reason.
var (
	ErrInvalidPath = errors.New("invalid path")
	ErrTraversal   = errors.New("path has a dot segment")
	ErrTooLong     = errors.New("path too long")
	ErrRedacted    = errors.New("path segment partly redacted")
)

// pixieRedaction is what Pixie's PxL script writes in place of a run of six
// or more hex digits.
const pixieRedaction = "<id>"

// Learner turns one observed path into a route.
type Learner struct {
	templates   []template
	maxLength   int
	maxSegments int
}

// NewLearner returns a Learner. Operator templates win over everything else,
// in the order given.
func NewLearner(templates []string, maxLength, maxSegments int) (*Learner, error) {
	l := &Learner{maxLength: maxLength, maxSegments: maxSegments}
	for _, tpl := range templates {
		t, err := parseTemplate(tpl)
		if err != nil {
			return nil, err
		}
		l.templates = append(l.templates, t)
	}
	return l, nil
}

// Learn returns the route for a request path (query and fragment are
// dropped). instrumented is the span's own route template (http.route), used
// when it matches the path. Without a template, identifier-like segments
// become typed wildcards and everything else stays literal.
func (l *Learner) Learn(path, instrumented string) (Route, error) {
	r, _, err := l.LearnFrom(path, instrumented, false)
	return r, err
}

// LearnRPC is Learn for a request the span shows to be a gRPC (or Connect)
// call: a two-segment path is its service and method, literal whatever
// their names look like. Operator templates still win.
func (l *Learner) LearnRPC(path string) (Route, error) {
	r, _, err := l.LearnFrom(path, "", true)
	return r, err
}

// Origin says what gave a route its shape, for the evidence people review.
type Origin uint8

// Origins, weakest first: when one access is learned several ways, the
// strongest is the one reported.
const (
	Heuristic     Origin = iota + 1 // the path's own segments, typed by the heuristics
	Instrumented                    // the span's http.route
	OperatorRoute                   // an operator's routes.templates entry
	OpenAPI                         // an operation of the callee's API spec (routes.openapi)
)

var originNames = [...]string{Heuristic: "learned", Instrumented: "http_route", OperatorRoute: "template", OpenAPI: "openapi"}

// String is the name the review files use; an unknown origin (state saved
// before origins were kept) reads as learned.
func (o Origin) String() string {
	if o >= Heuristic && o <= OpenAPI {
		return originNames[o]
	}
	return originNames[Heuristic]
}

// LearnFrom is Learn (or LearnRPC, when rpc is set) that also says what
// gave the route its shape.
func (l *Learner) LearnFrom(path, instrumented string, rpc bool) (Route, Origin, error) {
	return l.learn(nil, path, instrumented, rpc)
}

// AppendKey is LearnFrom that appends the route's canonical form (its
// String) to key and says whether it has a wildcard, without allocating:
// ingest calls it for every span.
func (l *Learner) AppendKey(key []byte, path, instrumented string, rpc bool) ([]byte, Origin, bool, error) {
	var buf [16]Segment
	r, origin, err := l.learn(buf[:0], path, instrumented, rpc)
	if err != nil {
		return key, 0, false, err
	}
	return r.AppendKey(key), origin, r.HasWildcard(), nil
}

// Errors of learn, made once: skipped spans must stay cheap.
var (
	errPathTooLong     = fmt.Errorf("%w: longer than the limit", ErrTooLong)
	errTooManySegments = fmt.Errorf("%w: more segments than the limit", ErrTooLong)
	errNotAbsolute     = fmt.Errorf("%w: does not start with /", ErrInvalidPath)
)

// learn is LearnFrom that builds the route in r's storage.
func (l *Learner) learn(r Route, path, instrumented string, rpc bool) (Route, Origin, error) {
	path = TrimQuery(path)
	if len(path) > l.maxLength {
		return nil, 0, errPathTooLong
	}
	if !strings.HasPrefix(path, "/") {
		return nil, 0, errNotAbsolute
	}
	if n := strings.Count(path, "/"); n > l.maxSegments {
		return nil, 0, errTooManySegments
	}
	var buf [32]string
	segs := split(buf[:0], path[1:])
	for _, t := range l.templates {
		if t.route.Match(segs) {
			return t.apply(r, segs), OperatorRoute, nil
		}
	}
	// A gRPC method is a name, never an identifier (Add123), whatever the
	// instrumentation calls it.
	grpc := rpc && len(segs) == 2 || isGRPCMethod(segs)
	if instrumented != "" && !grpc {
		if r, ok := fromInstrumented(r, instrumented, segs); ok {
			return r, Instrumented, nil
		}
	}
	r = slices.Grow(r[:0], len(segs))
	for i, s := range segs {
		if i > 0 && !grpc && strings.Contains(s, pixieRedaction) {
			t, err := redacted(s)
			if err != nil {
				return nil, 0, err
			}
			r = append(r, Segment{Wild: t})
			continue
		}
		if t, ok := identifier(i, s); ok && !grpc {
			r = append(r, Segment{Wild: t})
			continue
		}
		if err := checkLiteral(s); err != nil {
			return nil, 0, err
		}
		r = append(r, Segment{Lit: s})
	}
	return r, Heuristic, nil
}

// TrimQuery removes a path's query and fragment.
func TrimQuery(path string) string {
	// Two byte searches are faster than one for either byte.
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	return path
}

// AppendSegments appends the raw segments of path, which starts with a
// slash, to segs: the segments a Route matches, split as the Learner does.
func AppendSegments(segs []string, path string) []string {
	return split(segs, path[1:])
}

// split appends the '/'-separated parts of s to segs, as strings.Split
// returns them.
func split(segs []string, s string) []string {
	for {
		part, rest, more := strings.Cut(s, "/")
		segs = append(segs, part)
		if !more {
			return segs
		}
		s = rest
	}
}

// apply returns the route an operator template gives the matching segments
// segs: a parameter declared with a type keeps it, as the operator said; an
// untyped one takes the narrowest type of the observed value, so
// /users/{id} seen with 4711 admits numbers, not /users/admin.
func (t template) apply(r Route, segs []string) Route {
	r = append(r[:0], t.route...)
	for i := range r {
		if r[i].Wild != 0 && !t.typed[i] {
			r[i].Wild = narrow(r[i].Wild, segs[i])
		}
	}
	return r
}

// fromInstrumented applies the span's http.route when it is a one-segment
// template that matches the path. Its parameters, typed or not, take the
// narrowest type of the observed value, so /users/{id} seen with numbers
// admits numbers. A route whose first segment is a parameter is ignored:
// instrumentation may not widen the first segment, which the heuristics
// keep literal.
func fromInstrumented(r Route, tpl string, segs []string) (Route, bool) {
	r, err := parseRoute(r, nil, tpl)
	if err != nil || !r.Match(segs) || r[0].Wild != 0 {
		return nil, false
	}
	for i := range r {
		if r[i].Wild != 0 {
			r[i].Wild = narrow(r[i].Wild, segs[i])
		}
	}
	return r, true
}

// narrow returns the narrowest type of s when that type lies within the
// declared type w (which admits s), and w otherwise: Hex is the narrowest
// type of "abc1" but is not within ID.
func narrow(w Type, s string) Type {
	if t, ok := Classify(s); ok && Join(t, w) == w {
		return t
	}
	return w
}

// redacted types a segment in which Pixie replaced hex runs by <id>: a
// whole run is hex, and a UUID keeps its short groups. Anything else hides
// what the value was, so it is refused rather than guessed.
func redacted(s string) (Type, error) {
	if s == pixieRedaction {
		return Hex, nil
	}
	p := pixieRedaction
	if len(s) == 2*len(p)+16 && strings.HasPrefix(s, p+"-") && strings.HasSuffix(s, "-"+p) &&
		isUUID("00000000"+s[len(p):len(s)-len(p)]+"000000000000") {
		return UUID, nil
	}
	return 0, ErrRedacted
}

// identifier reports whether segment s at position i looks like an
// identifier, and of which type. The first segment and version- or
// date-like segments are structure and stay literal.
func identifier(i int, s string) (Type, bool) {
	if i == 0 || s == "" || isStructural(s) || isDate(s) {
		return 0, false
	}
	t, ok := Classify(s)
	if !ok {
		return 0, false
	}
	switch t {
	case Int, UUID:
		return t, true
	case Hex:
		// Hex words such as "cafe" or "added" are names; hex with digits
		// and letters, six or longer, is an identifier.
		if len(s) >= 6 && some(s, isDigit) && some(s, isAlpha) {
			return Hex, true
		}
	}
	digits, letters := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case isDigit(s[i]):
			digits++
		case isAlpha(s[i]):
			letters++
		}
	}
	switch {
	case len(s) >= 6 && digits >= 3 && digits > letters:
		// Mostly digits: ord-2024-000123, acct12345; not sha256 or x86_64.
		return ID, true
	case len(s) > 32 && digits > 0:
		// Very long tokens with digits are keys, hashes or encoded
		// blobs; long words (gRPC method names) stay literal.
		return t, true
	}
	return 0, false
}

// isStructural reports segments that name API structure rather than data:
// "api" and versions such as v1 or v2beta1. They are never generalized.
func isStructural(s string) bool {
	if strings.EqualFold(s, "api") {
		return true
	}
	if len(s) >= 2 && (s[0] == 'v' || s[0] == 'V') && isDigit(s[1]) {
		rest := s[1:]
		for len(rest) > 0 && isDigit(rest[0]) {
			rest = rest[1:]
		}
		// v1, v2beta1, v1alpha
		for len(rest) > 0 && 'a' <= rest[0] && rest[0] <= 'z' {
			rest = rest[1:]
		}
		return all(rest, isDigit)
	}
	return false
}

// isDate matches YYYY-MM-DD. A single date stays literal (/reports/2024-01-15
// may be a fixed resource), but many dates after one parent are data and
// the cardinality backstop generalizes them.
func isDate(s string) bool {
	return len(s) == 10 && s[4] == '-' && s[7] == '-' &&
		all(s[:4], isDigit) && all(s[5:7], isDigit) && all(s[8:], isDigit)
}

// Errors of checkLiteral.
var (
	errBadEscape        = fmt.Errorf("%w: malformed percent escape", ErrInvalidPath)
	errEscapedSeparator = fmt.Errorf("%w: escaped separator, percent or control character", ErrInvalidPath)
	errNotUTF8          = fmt.Errorf("%w: escapes that are not UTF-8", ErrInvalidPath)
)

// badCharacter is the error for a character a path cannot hold; as a
// byte, it becomes an error without allocating.
type badCharacter byte

func (c badCharacter) Error() string {
	return fmt.Sprintf("%v: character %q not allowed in a path", ErrInvalidPath, byte(c))
}

func (badCharacter) Unwrap() error { return ErrInvalidPath }

// checkLiteral accepts a raw segment made of RFC 3986 path characters with
// well-formed percent escapes, and refuses what servers disagree about: dot
// segments in any spelling (escaped, overlong UTF-8, "..;" which Tomcat and
// Spring read as "..", or look-alikes, see dotLike), escaped separators,
// percents and controls.
func checkLiteral(s string) error {
	var buf [64]byte
	decoded := buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return errBadEscape
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			// An escaped '%' invites a second decoding (%252e%252e) in a
			// backend; separators and controls are ambiguous once decoded.
			if c == '/' || c == '\\' || c == '%' || c < 0x20 || c == 0x7f {
				return errEscapedSeparator
			}
			i += 2
		case isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@", c) >= 0:
		default:
			return badCharacter(c)
		}
		decoded = append(decoded, c)
	}
	if !utf8.Valid(decoded) {
		return errNotUTF8
	}
	name := decoded
	if i := bytes.IndexByte(decoded, ';'); i >= 0 {
		name = decoded[:i]
	}
	// Most names start with a letter or digit, which survives all that
	// dotLike undoes: only a leading dot, space, '+' or non-ASCII byte
	// needs it.
	if len(name) > 0 && (name[0] == '.' || name[0] == ' ' || name[0] == '+' || name[0] >= utf8.RuneSelf) && dotLike(name) {
		return ErrTraversal
	}
	return nil
}

// dotLike reports whether a decoded segment name is "." or "..", or becomes
// one when a server trims spaces from it, normalizes it (NFKC maps the
// fullwidth dot U+FF0E, the small full stop U+FE52 and the dot leaders
// U+2024 and U+2025 to dots), strips accents (NFKD, then marks dropped), or drops invisible characters (format characters such as the
// zero-width space and joiner, BOM and soft hyphen, variation selectors,
// other default-ignorable code points) and spaces (no-break space,
// ideographic space, and '+', a space to form decoders) from it, in any
// combination.
func dotLike(name []byte) bool {
	// An ASCII letter, digit or symbol other than '.' survives all of
	// these, so only names of dots, spaces and non-ASCII need a look;
	// all-ASCII ones need no Unicode work.
	dots, ascii := 0, true
	for _, c := range name {
		switch {
		case c == '.':
			dots++
		case c == ' ' || c == '+': // '+' is a space to form decoders
		case c >= utf8.RuneSelf:
			ascii = false
		default:
			return false
		}
	}
	if ascii {
		return dots == 1 || dots == 2
	}
	n := string(name)
	for _, f := range [...]string{
		strings.TrimFunc(n, unicode.IsSpace),
		strings.Map(dropInvisible, n),
		strings.Map(dropInvisible, norm.NFKC.String(n)),
		// Servers that strip accents decompose and drop the marks.
		strings.Map(dropInvisible, strings.Map(dropMarks, norm.NFKD.String(n))),
	} {
		if f == "." || f == ".." {
			return true
		}
	}
	return false
}

// dropMarks is a strings.Map function that removes marks (nonspacing,
// enclosing and spacing ones, as servers matching \p{M} do).
func dropMarks(r rune) rune {
	if unicode.Is(unicode.M, r) {
		return -1
	}
	return r
}

// dropInvisible is a strings.Map function that removes spaces and what
// renders as nothing: format characters (Unicode category Cf), variation
// selectors and the other default-ignorable code points (the combining
// grapheme joiner U+034F, the Hangul fillers).
func dropInvisible(r rune) rune {
	if r == '+' || unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
		return -1
	}
	return r
}

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
