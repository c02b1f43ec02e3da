// Package spiffeid validates and splits SPIFFE IDs as defined by the SPIFFE
// ID specification (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md).
//
// Only the canonical form is accepted: it is what identity providers issue,
// and accepting variants (uppercase scheme, percent-encoding, dot segments)
// would let two spellings of one identity be treated as different principals.
package spiffeid

import (
	"fmt"
	"strings"
)

const (
	scheme = "spiffe://"

	// maxLen is the limit the specification sets for a whole SPIFFE ID.
	maxLen = 2048

	// maxQuoted bounds how much of a rejected input an error echoes, so that
	// hostile or huge inputs do not flood logs.
	maxQuoted = 64
)

// Validate returns nil if id is a SPIFFE ID in canonical form and an error
// describing the first problem otherwise.
func Validate(id string) error {
	if reason := problem(id); reason != "" {
		return invalid("SPIFFE ID", id, reason)
	}
	return nil
}

// problem returns the first reason id is not a canonical SPIFFE ID, or ""
// when it is one. Offsets in the reason are offsets in id.
func problem(id string) string {
	if len(id) > maxLen {
		return fmt.Sprintf("length %d exceeds %d bytes", len(id), maxLen)
	}
	rest, ok := strings.CutPrefix(id, scheme)
	if !ok {
		return `scheme must be "spiffe://"`
	}
	td, _, hasPath := strings.Cut(rest, "/")
	if td == "" {
		return "empty trust domain"
	}
	for i := len(scheme); i < len(scheme)+len(td); i++ {
		if !isTrustDomainChar(id[i]) {
			return invalidChar(id, i, "trust domain")
		}
	}
	// A trust domain is a DNS-like name: "." and ".." would also be path
	// elements wherever IDs become file names (the unpacked bundle).
	if td[0] == '.' || td[len(td)-1] == '.' {
		return "trust domain starts or ends with '.'"
	}
	if !hasPath {
		return ""
	}

	segStart := len(scheme) + len(td) + 1
	for i := segStart; i <= len(id); i++ {
		if i < len(id) && id[i] != '/' {
			if !isPathChar(id[i]) {
				return invalidChar(id, i, "path")
			}
			continue
		}
		switch id[segStart:i] {
		case "":
			if i == len(id) {
				return "trailing slash"
			}
			return fmt.Sprintf("empty path segment at offset %d", i)
		case ".", "..":
			return fmt.Sprintf("dot segment at offset %d", segStart)
		}
		segStart = i + 1
	}
	return ""
}

// TrustDomain returns the trust domain of id, which must have passed Validate.
func TrustDomain(id string) string {
	td, _, _ := strings.Cut(strings.TrimPrefix(id, scheme), "/")
	return td
}

// Segments returns the trust domain of id followed by its path segments; id
// must have passed Validate.
func Segments(id string) []string {
	return strings.Split(strings.TrimPrefix(id, scheme), "/")
}

func isTrustDomainChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

func isPathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '-' || c == '_'
}

func invalidChar(id string, off int, where string) string {
	return fmt.Sprintf("invalid character %q in %s at offset %d", id[off:off+1], where, off)
}

func invalid(what, s, reason string) error {
	return fmt.Errorf("spiffeid: invalid %s %s: %s", what, quote(s), reason)
}

func quote(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:maxQuoted])
}
