// Package xfcc parses Envoy's x-forwarded-client-cert (XFCC) header.
//
// The header is a ','-separated list of elements, each a ';'-separated list
// of Key=Value pairs. Values containing ',', ';' or '=' are double-quoted,
// with '\' escaping the next character. When Envoy runs in append-forward
// mode every proxy appends its own element, so only the last element was
// written by the proxy in front of the application: earlier ones may have
// been supplied by the client and must not be trusted for identity.
package xfcc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

const (
	// The limits bound the work done per header; Envoy's own headers stay
	// far below them, even with a URL-encoded certificate chain.
	maxHeaderLen = 64 << 10
	maxElements  = 64
	maxPairs     = 64

	spiffeScheme = "spiffe://"
)

// Errors returned by this package, wrapped with details, so callers can tell
// why a header was rejected with errors.Is.
var (
	ErrSyntax            = errors.New("xfcc: syntax error")
	ErrTooLong           = errors.New("xfcc: header too long")
	ErrNoIdentity        = errors.New("xfcc: no SPIFFE identity")
	ErrAmbiguousIdentity = errors.New("xfcc: ambiguous SPIFFE identity")
	ErrInvalidIdentity   = errors.New("xfcc: invalid SPIFFE identity")
)

// Pair is one Key=Value pair of an element.
type Pair struct {
	// Key is lowercased, with the legacy "san" renamed to "uri".
	Key string
	// Value is unquoted and unescaped.
	Value string
}

// Element is the information one proxy added about one client certificate.
type Element []Pair

// Values returns the values of every pair with the given key, matched
// case-insensitively, in header order.
func (e Element) Values(key string) []string {
	key = normalizeKey(key)
	var vals []string
	for _, p := range e {
		if p.Key == key {
			vals = append(vals, p.Value)
		}
	}
	return vals
}

// Parse parses a whole header.
func Parse(header string) ([]Element, error) {
	var elems []Element
	_, err := walk(header, func(elem int, f field) {
		if elem == len(elems) {
			elems = append(elems, nil)
		}
		elems[elem] = append(elems[elem], Pair{Key: normalizeKey(f.key), Value: f.value()})
	})
	if err != nil {
		return nil, err
	}
	return elems, nil
}

// ParseLast validates the whole header and returns its last element, the one
// added by the nearest proxy.
func ParseLast(header string) (Element, error) {
	start, err := walk(header, nil)
	if err != nil {
		return nil, err
	}
	var elem Element
	lastElement(header, start, func(f field) {
		elem = append(elem, Pair{Key: normalizeKey(f.key), Value: f.value()})
	})
	return elem, nil
}

// Hop returns the identities of the current hop (last element): dst = its By, src = its URI.
// Each must be exactly one distinct valid SPIFFE ID; among repeated values,
// values without a spiffe:// scheme are ignored, so that another URI SAN next
// to the SPIFFE one does not make the peer unidentifiable. The scheme is
// matched case-insensitively there, so that a malformed SPIFFE ID fails with
// ErrInvalidIdentity rather than being skipped.
func Hop(header string) (dst, src string, err error) {
	start, err := walk(header, nil)
	if err != nil {
		return "", "", err
	}
	var by, uri identity
	lastElement(header, start, func(f field) {
		switch {
		case strings.EqualFold(f.key, "by"):
			by.add(f.value(), f.escaped)
		case strings.EqualFold(f.key, "uri"), strings.EqualFold(f.key, "san"):
			uri.add(f.value(), f.escaped)
		}
	})
	if dst, err = by.result("By"); err != nil {
		return "", "", err
	}
	if src, err = uri.result("URI"); err != nil {
		return "", "", err
	}
	return dst, src, nil
}

// identity collects the SPIFFE IDs found among the values of one key.
type identity struct {
	id        string
	invalid   bool
	ambiguous bool
}

// add takes one value. A SPIFFE ID never needs escapes; an escaped one is
// invalid rather than unescaped, because the policy reads the header as
// written and would see another identity than the one learned.
func (c *identity) add(v string, escaped bool) {
	if len(v) < len(spiffeScheme) || !strings.EqualFold(v[:len(spiffeScheme)], spiffeScheme) {
		return
	}
	switch {
	case escaped || spiffeid.Validate(v) != nil:
		c.invalid = true
	case c.id == "":
		c.id = v
	case c.id != v:
		c.ambiguous = true
	}
}

// result reports the single identity found. Errors name the key but never
// the values, which come from certificates.
func (c *identity) result(key string) (string, error) {
	switch {
	case c.invalid:
		return "", fmt.Errorf("%w: %s of the last element is not a valid SPIFFE ID", ErrInvalidIdentity, key)
	case c.ambiguous:
		return "", fmt.Errorf("%w: %s of the last element holds several SPIFFE IDs", ErrAmbiguousIdentity, key)
	case c.id == "":
		return "", fmt.Errorf("%w: %s of the last element holds no SPIFFE ID", ErrNoIdentity, key)
	}
	return c.id, nil
}

var knownKeys = [...]string{"by", "hash", "cert", "chain", "subject", "uri", "dns"}

// normalizeKey lowercases key, returning constants for the known keys so
// that parsing Envoy's headers does not allocate keys.
func normalizeKey(key string) string {
	for _, k := range knownKeys {
		if strings.EqualFold(key, k) {
			return k
		}
	}
	if strings.EqualFold(key, "san") {
		return "uri"
	}
	return strings.ToLower(key)
}

// walk checks the whole header against the grammar and the limits, calls add
// (when not nil) with every pair and the index of its element, and returns
// the offset where the last element starts.
func walk(header string, add func(elem int, f field)) (int, error) {
	if len(header) > maxHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes, limit is %d", ErrTooLong, len(header), maxHeaderLen)
	}
	pos, elems, pairs, lastStart := 0, 0, 0, 0
	for sep := byte(','); sep != 0; {
		if sep == ',' {
			pos = skipSpace(header, pos)
			if pos == len(header) || header[pos] == ',' {
				if elems == 0 && pos == len(header) {
					return 0, fmt.Errorf("%w: empty header", ErrSyntax)
				}
				return 0, syntaxError("empty element", pos)
			}
			if elems == maxElements {
				return 0, fmt.Errorf("%w: more than %d elements", ErrTooLong, maxElements)
			}
			elems++
			pairs = 0
			lastStart = pos
		}
		if pairs == maxPairs {
			return 0, fmt.Errorf("%w: more than %d pairs in element %d", ErrTooLong, maxPairs, elems)
		}
		pairs++
		f, next, nextSep, err := scanPair(header, pos)
		if err != nil {
			return 0, err
		}
		if add != nil {
			add(elems-1, f)
		}
		pos, sep = next, nextSep
	}
	return lastStart, nil
}

// lastElement calls fn with every pair of the element starting at pos, which
// walk has already validated.
func lastElement(header string, pos int, fn func(field)) {
	for {
		f, next, sep, _ := scanPair(header, pos)
		fn(f)
		if sep != ';' {
			return
		}
		pos = next
	}
}

// field is a pair as it appears in the header, before normalization.
type field struct {
	key string
	// val is still escaped when escaped is set.
	val     string
	escaped bool
}

func (f field) value() string {
	if !f.escaped {
		return f.val
	}
	var b strings.Builder
	b.Grow(len(f.val))
	for i := 0; i < len(f.val); i++ {
		if f.val[i] == '\\' {
			// scanPair guarantees that an escape is followed by a byte.
			i++
		}
		b.WriteByte(f.val[i])
	}
	return b.String()
}

// scanPair scans the Key=Value pair at s[pos:] and the separator after it.
// It returns the offset after the separator and the separator itself: ';',
// ',' or 0 at the end of s.
func scanPair(s string, pos int) (f field, next int, sep byte, err error) {
	i := skipSpace(s, pos)
	start := i
	for i < len(s) && isLetter(s[i]) {
		i++
	}
	if i == start {
		return field{}, 0, 0, syntaxError("expected key", i)
	}
	if i == len(s) || s[i] != '=' {
		return field{}, 0, 0, syntaxError("expected '=' after key", i)
	}
	f.key = s[start:i]
	i++

	if i == len(s) || s[i] != '"' {
		// Envoy does not quote URI and DNS SANs, so '=' is accepted here:
		// it cannot be mistaken for the start of a new pair.
		start = i
		for ; i < len(s); i++ {
			switch c := s[i]; c {
			case ';', ',':
				f.val = trimSpaceRight(s[start:i])
				return f, i + 1, c, nil
			case '"':
				return field{}, 0, 0, syntaxError("quote inside unquoted value", i)
			}
		}
		f.val = trimSpaceRight(s[start:])
		return f, i, 0, nil
	}

	open := i
	for i++; ; i++ {
		if i == len(s) {
			return field{}, 0, 0, syntaxError("unterminated quoted value", open)
		}
		if s[i] == '"' {
			break
		}
		// A backslash escapes the next byte; a trailing one is left for the
		// check above to reject as unterminated.
		if s[i] == '\\' && i+1 < len(s) {
			f.escaped = true
			i++
		}
	}
	f.val = s[open+1 : i]
	i = skipSpace(s, i+1)
	if i == len(s) {
		return f, i, 0, nil
	}
	if c := s[i]; c == ';' || c == ',' {
		return f, i + 1, c, nil
	}
	return field{}, 0, 0, syntaxError("unexpected character after quoted value", i)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func trimSpaceRight(s string) string {
	i := len(s)
	for i > 0 && (s[i-1] == ' ' || s[i-1] == '\t') {
		i--
	}
	return s[:i]
}

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func syntaxError(msg string, off int) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, msg, off)
}
