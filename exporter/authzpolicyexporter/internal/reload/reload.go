// Package reload keeps a file's parsed content and reads it again when it
// changes: a new content is used only once two reads in a row find it (a
// file being written in place, read half-way, may parse as something
// shorter), and a bad new version never replaces the last good one.
package reload

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

// Parse turns a file's content into its value; path is for its errors.
type Parse[T any] func(path string, data []byte) (T, error)

// File is a file's value, read again by Reload.
type File[T any] struct {
	path    string
	limit   int64
	parse   Parse[T]
	value   T
	sum     [sha256.Size]byte // of the content in use
	pending [sha256.Size]byte // of a new content read once
	bad     [sha256.Size]byte // of the last content refused
}

// Open reads and parses the file, of which at most limit+1 bytes are read
// (enough for parse to refuse a larger one). An error means there is no
// value to start with.
func Open[T any](path string, limit int64, parse Parse[T]) (*File[T], error) {
	data, err := Read(path, limit)
	if err != nil {
		return nil, err
	}
	v, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	return &File[T]{path: path, limit: limit, parse: parse, value: v, sum: sha256.Sum256(data)}, nil
}

// Reload reads the file again. It reports whether a new value is in use,
// and returns an error once for each bad content: the same bad file is not
// reported again at every reload, unless the file was good in between.
func (f *File[T]) Reload() (changed bool, err error) {
	data, err := Read(f.path, f.limit)
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
		var v T
		if v, err = f.parse(f.path, data); err == nil {
			f.value, f.sum, f.bad = v, sum, [sha256.Size]byte{}
			return true, nil
		}
	}
	f.bad = sum
	return false, err
}

// Value returns the value in use.
func (f *File[T]) Value() T { return f.value }

// Path is the file's path.
func (f *File[T]) Path() string { return f.path }

// Read returns the file's content, at most limit+1 bytes of it.
func Read(path string, limit int64) ([]byte, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(fd, limit+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b.Bytes(), nil
}
