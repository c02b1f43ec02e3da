package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
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
	// published is the spec the bundle in place was rendered with, as
	// far as this process knows: the one read at start until it
	// publishes (flushes only).
	published *openapi.Spec
}

func openSpec(callee spiffeid.Pattern, path string, strict bool) (*specEntry, error) {
	f, err := reload.Open(path, openapi.MaxSpecBytes, parseSpec)
	if err != nil {
		return nil, err
	}
	e := &specEntry{callee: callee, strict: strict, file: f, published: f.Value()}
	e.inUse.Store(f.Value())
	return e, nil
}

// parseSpec is openapi.Load for content already read.
func parseSpec(path string, data []byte) (*openapi.Spec, error) { return openapi.Parse(data, path) }

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
		return calleeSpec{e.spec(), e.strict}
	}
	return nil
}

// calleeSpec is an entry's spec as rendering reads it, with the entry's
// strict.
type calleeSpec struct {
	*openapi.Spec
	strict bool
}

func (c calleeSpec) Strict() bool { return c.strict }

// changed reports whether a spec changed since the bundle in place was
// rendered.
func (s *specSet) changed() bool {
	if s == nil {
		return false
	}
	for _, e := range s.entries {
		if e.spec().Digest() != e.published.Digest() {
			return true
		}
	}
	return false
}

// publishedSpec is the spec callee dst's rules in place were rendered
// with, nil for none (render.Options.Specs).
func (s *specSet) publishedSpec(dst string) render.Spec {
	if e := s.find(dst); e != nil {
		return calleeSpec{e.published, e.strict}
	}
	return nil
}

// operation names the operation of a callee's spec whose enum grants
// rule r as one of its values (shrinkGuard.operation).
func (s *specSet) operation(r render.Rule) (string, bool) {
	e := s.find(r.Destination)
	if e == nil {
		return "", false
	}
	op, ok := e.spec().EnumOperation(r.Method, r.Route)
	if !ok {
		return "", false
	}
	return r.Destination + " " + r.Source + " " + op, true
}

// markPublished notes that the bundle in place is what the specs in use
// render.
func (s *specSet) markPublished() {
	if s == nil {
		return
	}
	for _, e := range s.entries {
		e.published = e.spec()
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
