package overrides

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// File is a rules file that is read again when its content changes. A new
// content is used only once two reads in a row find it: a file being
// written in place, read half-way, may parse as a shorter list of deny
// rules. A bad new version never replaces the last good one.
type File struct {
	path    string
	set     *Set
	sum     [sha256.Size]byte // of the content in use
	pending [sha256.Size]byte // of a new content read once
	bad     [sha256.Size]byte // of the last content refused
}

// Open reads the file; an error (with the file, line and reason) means the
// collector cannot start with it.
func Open(path string) (*File, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	set, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	return &File{path: path, set: set, sum: sha256.Sum256(data)}, nil
}

// Reload reads the file again. It reports whether new rules are in use,
// and returns an error once for each bad content: the same bad file is not
// reported again at every reload, unless the file was good in between.
func (f *File) Reload() (changed bool, err error) {
	data, err := read(f.path)
	var sum [sha256.Size]byte
	if err != nil {
		sum = sha256.Sum256([]byte("unreadable: " + err.Error()))
	} else {
		sum = sha256.Sum256(data)
	}
	switch {
	case sum == f.sum:
		// Good again: a bad version that comes back is a new edit, and
		// is reported again.
		f.bad, f.pending = [sha256.Size]byte{}, [sha256.Size]byte{}
		return false, nil
	case sum == f.bad:
		// Not reported again, but a read all the same: what was pending
		// was not found twice in a row.
		f.pending = [sha256.Size]byte{}
		return false, nil
	case sum != f.pending:
		f.pending = sum // settled only if the next read finds it too
		return false, nil
	}
	f.pending = [sha256.Size]byte{}
	if err == nil {
		var set *Set
		if set, err = Parse(f.path, data); err == nil {
			f.set, f.sum, f.bad = set, sum, [sha256.Size]byte{}
			return true, nil
		}
	}
	f.bad = sum
	return false, err
}

// Rules returns the rules in use; nil for no file.
func (f *File) Rules() *Set {
	if f == nil {
		return nil
	}
	return f.set
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

func read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than the limit is enough for Parse to refuse it.
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(f, maxSize+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b.Bytes(), nil
}
