package serve

import (
	"context"
	"errors"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// tee serves every object the output holds once it is there, under the
// name it has there, so the server hands out what the output publishes
// and nothing else.
type tee struct {
	publish.Publisher
	s *Server
}

// Publishing makes s serve what p publishes, as soon as it is in place
// (also when it was in place already). A failed publication serves
// nothing new.
func Publishing(p publish.Publisher, s *Server) publish.Publisher {
	return &tee{Publisher: p, s: s}
}

func (t *tee) Publish(ctx context.Context, b *render.Bundle) (bool, error) {
	changed, err := t.Publisher.Publish(ctx, b)
	var review *publish.ReviewError
	if err == nil || errors.As(err, &review) {
		t.s.Set(publish.BundleName, b.Revision, b.Tarball)
	}
	return changed, err
}

func (t *tee) PublishObject(ctx context.Context, key, revision string, tarball []byte) (bool, error) {
	changed, err := t.Publisher.PublishObject(ctx, key, revision, tarball)
	if err == nil {
		t.s.Set(key, revision, tarball)
	}
	return changed, err
}

// mirror serves what would be published without writing it: reads (the
// bundle in place, listings) go to the output, writes only to the server.
type mirror struct {
	publish.Publisher
	s *Server
}

// errMirror refuses what a mirror must never do to the output.
var errMirror = errors.New("a mirror writes nothing to the output")

// Mirroring makes s serve what p would have published, leaving p as it
// is: a replica that follows another's publications hands out, through
// the same publishers, what that one writes.
func Mirroring(p publish.Publisher, s *Server) publish.Publisher {
	return &mirror{Publisher: p, s: s}
}

func (m *mirror) Publish(_ context.Context, b *render.Bundle) (bool, error) {
	m.s.Set(publish.BundleName, b.Revision, b.Tarball)
	return true, nil
}

func (m *mirror) PublishObject(_ context.Context, key, revision string, tarball []byte) (bool, error) {
	m.s.Set(key, revision, tarball)
	return true, nil
}

func (*mirror) DeleteObject(context.Context, string) error { return errMirror }
