package overrides

import (
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/reload"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// File is a rules file that is read again when its content changes. A new
// content is used only once two reads in a row find it: a file being
// written in place, read half-way, may parse as a shorter list of deny
// rules. A bad new version never replaces the last good one.
type File struct {
	f *reload.File[*Set]
}

// Open reads the file; an error (with the file, line and reason) means the
// collector cannot start with it.
func Open(path string) (*File, error) {
	f, err := reload.Open(path, maxSize, Parse)
	if err != nil {
		return nil, err
	}
	return &File{f: f}, nil
}

// Reload reads the file again. It reports whether new rules are in use,
// and returns an error once for each bad content: the same bad file is not
// reported again at every reload, unless the file was good in between.
func (f *File) Reload() (changed bool, err error) { return f.f.Reload() }

// Rules returns the rules in use; nil for no file.
func (f *File) Rules() *Set {
	if f == nil {
		return nil
	}
	return f.f.Value()
}

// Denies reports whether a deny rule matches every request that route rt
// admits for callee, caller and method; false for no rules.
func (s *Set) Denies(callee, caller, method string, rt route.Route) bool {
	if s == nil {
		return false
	}
	for _, r := range s.Deny {
		if r.Covers(callee, caller, method, rt) {
			return true
		}
	}
	return false
}

func read(path string) ([]byte, error) { return reload.Read(path, maxSize) }
