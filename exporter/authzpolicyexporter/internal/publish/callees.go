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

// Beside bundle.tar.gz, output.per_callee writes: each callee's own bundle
// below callees/, the bundle of callees that have none yet, and the
// discovery bundle that points each sidecar at one of them. No SPIFFE ID
// maps to a key outside callees/.
const (
	CalleesDir    = "callees"
	UnseenName    = "unseen.tar.gz"
	DiscoveryName = "discovery.tar.gz"
)

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
	signing *render.SigningOptions
	written map[string]string // key -> revision in place
	placed  map[string]bool   // callees whose bundle is in place
	// discovery is the discovery bundle of placed as it was last made.
	discovery *render.CalleeBundle
	listed    int
}

// NewCalleePublisher writes callees' bundles below p's output, signing
// the discovery bundle with s when set.
func NewCalleePublisher(p Publisher, s *render.SigningOptions) *CalleePublisher {
	return &CalleePublisher{p: p, signing: s, written: map[string]string{}, placed: map[string]bool{}}
}

// CalleeResult counts what one Publish did.
type CalleeResult struct {
	Written, Unchanged int
	// Refused are the callees with a reserved name (see CalleeKey).
	Refused []string
}

// Publish writes the callees' bundles of b whose revision differs from the
// one in place, then the unseen bundle, then the discovery bundle, which
// lists only callees whose bundle is in place. It stops at the first
// failure; what it did not write is tried again at the next call.
func (c *CalleePublisher) Publish(ctx context.Context, b *render.Bundle) (CalleeResult, error) {
	var res CalleeResult
	for _, cb := range b.Callees {
		key, err := CalleeKey(cb.ID)
		if err != nil {
			res.Refused = append(res.Refused, cb.ID)
			continue
		}
		changed, err := c.object(ctx, key, cb)
		if err != nil {
			return res, fmt.Errorf("bundle of %s: %w", cb.ID, err)
		}
		c.placed[cb.ID] = true
		if changed {
			res.Written++
		} else {
			res.Unchanged++
		}
	}
	if b.Unseen != nil {
		if _, err := c.object(ctx, UnseenName, b.Unseen); err != nil {
			return res, fmt.Errorf("unseen callees' bundle: %w", err)
		}
	}
	if c.discovery == nil || c.listed != len(c.placed) {
		ids := make([]string, 0, len(c.placed))
		for id := range c.placed {
			ids = append(ids, id)
		}
		d, err := render.Discovery(ctx, ids, c.signing)
		if err != nil {
			return res, err
		}
		c.discovery, c.listed = d, len(ids)
	}
	if _, err := c.object(ctx, DiscoveryName, c.discovery); err != nil {
		return res, fmt.Errorf("discovery bundle: %w", err)
	}
	return res, nil
}

// object writes b at key unless it is the revision written there last.
func (c *CalleePublisher) object(ctx context.Context, key string, b *render.CalleeBundle) (bool, error) {
	if c.written[key] == b.Revision {
		return false, nil
	}
	changed, err := c.p.PublishObject(ctx, key, b.Revision, b.Tarball)
	if err != nil {
		return false, err
	}
	c.written[key] = b.Revision
	return changed, nil
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
