// Package headerjson finds one header in a JSON object of request headers,
// such as Pixie's http.req_headers, without decoding the whole object: the
// exporter reads one header per span at high rates.
package headerjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrSyntax is returned for a document that is not a JSON object of
// headers up to the point where the header was found. ErrTruncated, which
// is also an ErrSyntax, says the document ended inside the object: it was
// cut, so a header may be missing or shortened.
var (
	ErrSyntax    = errors.New("headerjson: malformed headers object")
	ErrTruncated = fmt.Errorf("%w: it ends inside the object", ErrSyntax)
)

// Find returns the values of header name (matched case-insensitively) in
// doc, a JSON object whose values are strings or arrays of strings. Repeated
// headers are joined with ",", in document order, as HTTP joins them.
// Scanning stops at the end of the object; text after it is ignored, but
// anything malformed before it is an error, so a document truncated in the
// middle of the object (Pixie cuts header maps at 8 KiB) is refused with
// ErrTruncated.
func Find(doc, name string) (string, bool, error) {
	var v string
	found := false
	err := FindEach(doc, []string{name}, nil, func(_ int, part string) {
		if found {
			v += "," + part
		} else {
			v, found = part, true
		}
	})
	if err != nil {
		return "", false, err
	}
	return v, found, nil
}

// FindEach is Find for several headers in one pass over doc, part by part:
// f gets the index in names of each header found and one of its values (an
// element of an array, or the value of one of the repeated keys), in
// document order. On an error, what f was given is not to be used. Values
// with escapes are unescaped into arena when it is not nil, so that they
// cost no allocation of their own; they stay valid, as a Builder never
// rewrites what it holds.
func FindEach(doc string, names []string, arena *strings.Builder, f func(i int, value string)) error {
	s := scanner{doc: doc}
	s.space()
	if !s.consume('{') {
		return s.fail()
	}
	s.space()
	if s.consume('}') {
		return nil
	}
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return s.fail()
		}
		s.space()
		if !s.consume(':') {
			return s.fail()
		}
		s.space()
		start := s.pos
		if !s.skipValue(0) {
			return s.fail()
		}
		for i, name := range names {
			if !strings.EqualFold(key, name) {
				continue
			}
			if err := eachValue(doc[start:s.pos], arena, func(v string) { f(i, v) }); err != nil {
				return err
			}
		}
		s.space()
		if s.consume('}') {
			return nil
		}
		if !s.consume(',') {
			return s.fail()
		}
	}
}

// eachValue decodes a header's value, a string or an array of strings,
// and calls f with each string.
func eachValue(raw string, arena *strings.Builder, f func(string)) error {
	if arena == nil {
		arena = &strings.Builder{}
	}
	if v, ok := simpleString(raw, arena); ok {
		f(v)
		return nil
	}
	var one string
	if err := json.Unmarshal([]byte(raw), &one); err == nil {
		f(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal([]byte(raw), &many); err != nil {
		return ErrSyntax
	}
	for _, v := range many {
		f(v)
	}
	return nil
}

type scanner struct {
	doc string
	pos int
}

// fail is the error for a scan that stopped: a document that ran out
// before the object closed was cut.
func (s *scanner) fail() error {
	if s.pos >= len(s.doc) {
		return ErrTruncated
	}
	return ErrSyntax
}

func (s *scanner) space() {
	for s.pos < len(s.doc) {
		switch s.doc[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.doc) && s.doc[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// str reads a JSON string and returns its decoded value.
func (s *scanner) str() (string, bool) {
	start := s.pos
	if !s.skipString() {
		return "", false
	}
	raw := s.doc[start:s.pos]
	if !strings.Contains(raw, `\`) {
		return raw[1 : len(raw)-1], true
	}
	var v string
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return "", false
	}
	return v, true
}

func (s *scanner) skipString() bool {
	if !s.consume('"') {
		return false
	}
	for s.pos < len(s.doc) {
		// Up to the next quote, in one search; then what is before it
		// is checked for escapes and control characters.
		rest := s.doc[s.pos:]
		q := strings.IndexByte(rest, '"')
		if q < 0 {
			q = len(rest)
		}
		if e := strings.IndexByte(rest[:q], '\\'); e >= 0 {
			if hasControl(rest[:e]) {
				return false
			}
			s.pos += e + 2
			continue
		}
		if hasControl(rest[:q]) {
			return false
		}
		s.pos += q + 1
		return q < len(rest)
	}
	return false
}

// hasControl reports whether s holds a byte below 0x20, which a JSON
// string must escape.
func hasControl(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; len(s) >= 8; s = s[8:] {
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		// A byte below 0x20 borrows when 0x20 is taken from it, and
		// sets its high bit where it was clear.
		if (x-0x20*ones)&^x&highs != 0 {
			return true
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// maxDepth bounds nesting so that a hostile document cannot recurse deeply.
const maxDepth = 32

// skipValue moves past one JSON value. Strings are checked closely, since
// they carry the header; other scalars only loosely, since they are skipped.
func (s *scanner) skipValue(depth int) bool {
	if s.pos >= len(s.doc) || depth > maxDepth {
		return false
	}
	switch s.doc[s.pos] {
	case '"':
		return s.skipString()
	case '{', '[':
		open := s.doc[s.pos]
		closing := byte('}')
		if open == '[' {
			closing = ']'
		}
		s.pos++
		s.space()
		if s.consume(closing) {
			return true
		}
		for {
			s.space()
			if open == '{' {
				if !s.skipString() {
					return false
				}
				s.space()
				if !s.consume(':') {
					return false
				}
				s.space()
			}
			if !s.skipValue(depth + 1) {
				return false
			}
			s.space()
			if s.consume(closing) {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	default:
		start := s.pos
		for s.pos < len(s.doc) && strings.IndexByte(",}] \t\n\r", s.doc[s.pos]) < 0 {
			s.pos++
		}
		return s.pos > start
	}
}

// simpleString decodes a JSON string whose only escapes are \" \\ and \/,
// the common case for XFCC headers (Subject=""), without encoding/json,
// into b.
func simpleString(raw string, b *strings.Builder) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(body, '\\') < 0 {
		return body, true
	}
	start := b.Len()
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			continue
		}
		if i+1 >= len(body) {
			return "", false
		}
		switch body[i+1] {
		case '"', '\\', '/':
		default:
			return "", false
		}
		i++
	}
	// Valid: copy it, runs between escapes at a time.
	for {
		i := strings.IndexByte(body, '\\')
		if i < 0 {
			b.WriteString(body)
			return b.String()[start:], true
		}
		b.WriteString(body[:i])
		b.WriteByte(body[i+1])
		body = body[i+2:]
	}
}
