package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"gocloud.dev/gcerrors"
)

// ErrTooLarge refuses an object bigger than the reader's limit, before it
// is read: what other writers put in the output is bounded.
var ErrTooLarge = errors.New("object is larger than the limit")

// ReadObject reads the file at key below the directory, nil when there is
// none, ErrTooLarge when it is bigger than limit bytes.
func (d *Dir) ReadObject(_ context.Context, key string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(d.dir, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadLimited(f, key, limit)
}

// DeleteObject removes the file at key below the directory; one already
// gone is no error.
func (d *Dir) DeleteObject(_ context.Context, key string) error {
	err := os.Remove(filepath.Join(d.dir, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// ReadObject reads the object at key, nil when there is none, ErrTooLarge
// when it is bigger than limit bytes.
func (p *Blob) ReadObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	r, err := p.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes: %w", key, r.Size(), ErrTooLarge)
	}
	return ReadLimited(r, key, limit)
}

// DeleteObject removes the object at key; one already gone is no error.
func (p *Blob) DeleteObject(ctx context.Context, key string) error {
	if err := p.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return err
	}
	return nil
}

// ReadLimited reads r whole unless it holds more than limit bytes
// (ErrTooLarge); name says what r is in the errors.
func ReadLimited(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", name, limit, ErrTooLarge)
	}
	return data, nil
}
