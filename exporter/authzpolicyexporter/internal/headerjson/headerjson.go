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
	var v [1]string
	var found [1]bool
	if err := FindAll(doc, []string{name}, v[:], found[:]); err != nil {
		return "", false, err
	}
	return v[0], found[0], nil
}

// FindAll is Find for several headers in one pass over doc: vals[i] gets
// the values of names[i] and found[i] says whether it was there. vals and
// found must be as long as names; on an error they hold nothing useful.
func FindAll(doc string, names, vals []string, found []bool) error {
	for i := range names {
		vals[i], found[i] = "", false
	}
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
			vs, err := headerValues(doc[start:s.pos])
			if err != nil {
				return err
			}
			for _, v := range vs {
				if found[i] {
					vals[i] += "," + v
				} else {
					vals[i], found[i] = v, true
				}
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

// headerValues decodes a header's value: a string or an array of strings.
func headerValues(raw string) ([]string, error) {
	if v, ok := simpleString(raw); ok {
		return []string{v}, nil
	}
	var one string
	if err := json.Unmarshal([]byte(raw), &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal([]byte(raw), &many); err != nil {
		return nil, ErrSyntax
	}
	return many, nil
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
		switch c := s.doc[s.pos]; {
		case c == '"':
			s.pos++
			return true
		case c == '\\':
			s.pos += 2
		case c < 0x20:
			return false
		default:
			s.pos++
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
// the common case for XFCC headers (Subject=""), without encoding/json.
func simpleString(raw string) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(body, '\\') < 0 {
		return body, true
	}
	var b strings.Builder
	b.Grow(len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(body) {
			return "", false
		}
		i++
		switch body[i] {
		case '"', '\\', '/':
			b.WriteByte(body[i])
		default:
			return "", false
		}
	}
	return b.String(), true
}
