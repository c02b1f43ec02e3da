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
	err := FindEach(doc, []string{name}, func(_ int, part string) {
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
// document order. On an error, what f was given is not to be used.
func FindEach(doc string, names []string, f func(i int, value string)) error {
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
				f(i, v)
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
