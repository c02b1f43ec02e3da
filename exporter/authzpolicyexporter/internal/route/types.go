// Package route turns observed request paths into routes: literal segments
// where the path is structure, typed one-segment wildcards where it carries
// an identifier.
package route

import (
	"regexp"
)

// Type is the class of values a wildcard segment admits. The classes form a
// small lattice (see Join) so that widening a slot stays as narrow as the
// observed values allow: a slot learned from numbers admits numbers only.
type Type uint8

// The wildcard types, narrowest first.
const (
	Int   Type = iota + 1 // decimal digits
	Hex                   // hexadecimal digits, at least one of them decimal
	UUID                  // canonical 8-4-4-4-12 UUID
	ID                    // token with at least one digit
	Token                 // any segment of unreserved characters but "." and ".."
)

var typeNames = [...]string{Int: "int", Hex: "hex", UUID: "uuid", ID: "id", Token: "token"}

func (t Type) String() string {
	if t >= Int && t <= Token {
		return typeNames[t]
	}
	return "invalid"
}

// ParseType returns the type named s.
func ParseType(s string) (Type, bool) {
	for t := Int; t <= Token; t++ {
		if typeNames[t] == s {
			return t, true
		}
	}
	return 0, false
}

// Patterns are the regular expressions the rendered policy uses for each
// type. They are the single definition of what a wildcard admits: the Go
// matchers below are tested against them.
var Patterns = map[string]string{
	"int":   `^[0-9]+$`,
	"hex":   `^[0-9a-fA-F]*[0-9][0-9a-fA-F]*$`,
	"uuid":  `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
	"id":    `^[A-Za-z0-9._~-]*[0-9][A-Za-z0-9._~-]*$`,
	"token": `^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+)$`,
}

// compiled is used by tests and fuzzing to check the fast matchers.
var compiled = func() map[Type]*regexp.Regexp {
	m := make(map[Type]*regexp.Regexp, len(Patterns))
	for name, p := range Patterns {
		t, _ := ParseType(name)
		m[t] = regexp.MustCompile(p)
	}
	return m
}()

// Matches reports whether a wildcard of type t admits segment s. It agrees
// with Patterns[t.String()].
func (t Type) Matches(s string) bool {
	if s == "" {
		return false
	}
	switch t {
	case Int:
		return all(s, isDigit)
	case Hex:
		// A digit is required so that a hex slot never admits words
		// such as "added" or "cafe".
		return all(s, isHex) && some(s, isDigit)
	case UUID:
		return isUUID(s)
	case ID:
		return all(s, isUnreserved) && some(s, isDigit)
	case Token:
		return all(s, isUnreserved) && s != "." && s != ".."
	}
	return false
}

// Classify returns the narrowest type that admits s, or false when no
// wildcard type does (such a segment can only ever be a literal).
func Classify(s string) (Type, bool) {
	for t := Int; t <= Token; t++ {
		if t.Matches(s) {
			return t, true
		}
	}
	return 0, false
}

// Join returns the narrowest type that admits everything a and b admit.
// Int, Hex, ID and Token form a chain, each within the next; a UUID need
// not contain a digit, so it only meets the others in Token.
func Join(a, b Type) Type {
	switch {
	case a == b:
		return a
	case a == UUID || b == UUID:
		return Token
	}
	return max(a, b)
}

// Within reports whether every segment a admits, b admits too.
func Within(a, b Type) bool { return Join(a, b) == b }

// Meet reports whether some segment is admitted by both a and b: one is
// within the other, or a UUID with a digit is an ID.
func Meet(a, b Type) bool {
	return Within(a, b) || Within(b, a) || a == UUID && b == ID || a == ID && b == UUID
}

func all(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func some(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if f(s[i]) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// isUnreserved is RFC 3986's unreserved set.
func isUnreserved(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}
