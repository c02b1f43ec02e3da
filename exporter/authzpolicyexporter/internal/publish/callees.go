package publish

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// CalleesDir holds each callee's own bundle below the output.
const CalleesDir = "callees"

// ErrReservedName refuses a callee whose object could collide with
// another's.
var ErrReservedName = errors.New("a segment named " + BundleName + " is reserved")

// CalleeKey is where a callee's own bundle goes below the output:
// callees/<trust domain>/<path>/bundle.tar.gz. Below callees/ a directory
// holds segment directories and at most one bundle.tar.gz, so the objects
// of two valid SPIFFE IDs never collide, also on a file output, where one
// ID's object could otherwise stand where another's directory must be
// (spiffe://td/a and spiffe://td/a/bundle.tar.gz): an ID with a segment
// named bundle.tar.gz gets no object.
func CalleeKey(id string) (string, error) {
	if err := spiffeid.Validate(id); err != nil {
		return "", err
	}
	segs := spiffeid.Segments(id)
	for _, s := range segs {
		if s == BundleName {
			return "", fmt.Errorf("callee %s: %w", id, ErrReservedName)
		}
	}
	return CalleesDir + "/" + strings.Join(segs, "/") + "/" + BundleName, nil
}

// CalleePublisher writes callees' own bundles, each only when its revision
// changed. It remembers what it wrote (or found in place), so that a flush
// costs a request only for the callees that changed.
type CalleePublisher struct {
	p       Publisher
	written map[string]string // key -> revision in place
}

// NewCalleePublisher writes callees' bundles below p's output.
func NewCalleePublisher(p Publisher) *CalleePublisher {
	return &CalleePublisher{p: p, written: map[string]string{}}
}

// CalleeResult counts what one Publish did.
type CalleeResult struct {
	Written, Unchanged int
	// Refused are the callees with a reserved name (see CalleeKey).
	Refused []string
}

// Publish writes the bundles whose revision differs from the one in
// place. It stops at the first failure; the bundles not written are tried
// again at the next call.
func (c *CalleePublisher) Publish(ctx context.Context, bundles []*render.CalleeBundle) (CalleeResult, error) {
	var res CalleeResult
	for _, b := range bundles {
		key, err := CalleeKey(b.ID)
		if err != nil {
			res.Refused = append(res.Refused, b.ID)
			continue
		}
		if c.written[key] == b.Revision {
			res.Unchanged++
			continue
		}
		changed, err := c.p.PublishObject(ctx, key, b.Revision, b.Tarball)
		if err != nil {
			return res, fmt.Errorf("bundle of %s: %w", b.ID, err)
		}
		c.written[key] = b.Revision
		if changed {
			res.Written++
		} else {
			res.Unchanged++
		}
	}
	return res, nil
}

// PublishObject writes a callee's bundle at key below the directory unless
// the file in place already has the same bytes.
func (d *Dir) PublishObject(_ context.Context, key, _ string, tarball []byte) (bool, error) {
	return writeIfChanged(filepath.Join(d.dir, filepath.FromSlash(key)), tarball)
}

// PublishObject uploads a callee's bundle at key unless the object in
// place already carries its revision.
func (p *Blob) PublishObject(ctx context.Context, key, revision string, tarball []byte) (bool, error) {
	if same, err := p.inPlace(ctx, key, revision); same || err != nil {
		return false, err
	}
	return true, p.bucket.WriteAll(ctx, key, tarball, writerOptions(revision, tarball))
}
