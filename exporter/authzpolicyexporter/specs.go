package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"fmt"
	"sync/atomic"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/reload"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// specSet is the routes::openapi entries, in order: a callee's spec is the
// first entry whose pattern it matches.
type specSet struct {
	entries []*specEntry
}

// specEntry is one callee pattern's spec. The spec in use changes on a
// reload (by flushes, one at a time) while spans are read.
type specEntry struct {
	callee spiffeid.Pattern
	strict bool
	file   *reload.File[*openapi.Spec]
	inUse  atomic.Pointer[openapi.Spec]
	// published is the digest of the spec the bundle in place was
	// rendered with (flushes only).
	published [32]byte
}

func openSpec(callee spiffeid.Pattern, path string, strict bool) (*specEntry, error) {
	f, err := reload.Open(path, openapi.MaxSpecBytes, parseSpec)
	if err != nil {
		return nil, err
	}
	e := &specEntry{callee: callee, strict: strict, file: f, published: f.Value().Digest()}
	e.inUse.Store(f.Value())
	return e, nil
}

// parseSpec is openapi.Load for content already read.
func parseSpec(path string, data []byte) (*openapi.Spec, error) {
	if len(data) > openapi.MaxSpecBytes {
		return nil, fmt.Errorf("openapi spec %s: %w: larger than %d bytes", path, openapi.ErrUnreadable, openapi.MaxSpecBytes)
	}
	return openapi.Parse(data, path)
}

// find returns the entry for callee dst, nil for none.
func (s *specSet) find(dst string) *specEntry {
	if s == nil {
		return nil
	}
	for _, e := range s.entries {
		if e.callee.Match(dst) {
			return e
		}
	}
	return nil
}

// renderSpec is the spec in use for callee dst, nil for none
// (render.Options.Specs).
func (s *specSet) renderSpec(dst string) render.Spec {
	if e := s.find(dst); e != nil {
		return e.spec()
	}
	return nil
}

// changedFor reports whether callee dst's spec changed since the bundle
// in place was rendered: a new version explains the rules it takes away.
func (s *specSet) changedFor(dst string) bool {
	e := s.find(dst)
	return e != nil && e.spec().Digest() != e.published
}

// markPublished notes that the bundle in place was rendered with the
// specs in use.
func (s *specSet) markPublished() {
	if s == nil {
		return
	}
	for _, e := range s.entries {
		e.published = e.spec().Digest()
	}
}

// spec returns the spec in use.
func (e *specEntry) spec() *openapi.Spec { return e.inUse.Load() }

// reload reads the spec again (see reload.File.Reload); it is not safe
// for concurrent use with itself.
func (e *specEntry) reload() (changed bool, err error) {
	changed, err = e.file.Reload()
	if changed {
		e.inUse.Store(e.file.Value())
	}
	return changed, err
}

// matchSpec returns the operation of spec a request is, and the raw
// segments of its path (without the query).
func matchSpec(spec *openapi.Spec, method, path string) (*openapi.Operation, []string, bool) {
	path = route.TrimQuery(path)
	op, ok := spec.Match(method, path)
	if !ok {
		return nil, nil, false
	}
	return op, route.AppendSegments(make([]string, 0, len(op.Segments)), path), true
}
