package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
)

// Keys in the storage extension: the aggregate, and when the exporter first
// started (the start of the learning period).
const (
	stateKey      = "aggregate"
	firstStartKey = "first_start"
)

// restoreState connects to the configured storage extension and restores
// the aggregate saved by an earlier run, so that a restart (or a crash)
// publishes the same policy instead of an empty or shrunk one.
func (e *authzExporter) restoreState(ctx context.Context, host component.Host) error {
	if e.cfg.Storage == nil {
		return nil
	}
	ext, ok := host.GetExtensions()[*e.cfg.Storage]
	if !ok {
		return fmt.Errorf("storage: extension %q is not configured", e.cfg.Storage)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return fmt.Errorf("storage: extension %q is not a storage extension", e.cfg.Storage)
	}
	client, err := se.GetClient(ctx, component.KindExporter, e.id, "")
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	e.state = client
	if err := e.restoreFirstStart(ctx); err != nil {
		return err
	}
	data, err := client.Get(ctx, stateKey)
	if err != nil {
		return fmt.Errorf("storage: reading the aggregate: %w", err)
	}
	if data == nil {
		return nil
	}
	n, err := e.agg.RestoreState(data)
	if err != nil {
		// Keep the unreadable state aside rather than overwrite it at the
		// next save; starting empty is safe: the shrink guard holds back a
		// smaller policy.
		aside := stateKey + ".unreadable"
		if serr := client.Set(ctx, aside, data); serr != nil {
			return fmt.Errorf("storage: the saved aggregate is unreadable (%w) and could not be kept aside: %w", err, serr)
		}
		e.logger.Error("The saved aggregate could not be read; it is kept aside and the exporter starts empty",
			zap.String("key", aside), zap.Error(err))
		return nil
	}
	// A configuration narrowed since the state was saved applies to it.
	if dropped := e.agg.Retain(func(k aggregate.Key) bool { return e.extract.trusted(k.Destination, k.Source) }); dropped > 0 {
		e.logger.Info("Dropped restored access outside trust_domains", zap.Int("entries", dropped))
	}
	if n > 0 {
		e.learnedAny.Store(true)
	}
	e.logger.Info("Restored the aggregate", zap.Int("entries", n))
	return nil
}

// saveState writes the aggregate to the storage extension.
func (e *authzExporter) saveState(ctx context.Context) {
	if e.state == nil {
		return
	}
	data, err := e.agg.MarshalState()
	if err == nil {
		err = e.state.Set(ctx, stateKey, data)
	}
	if err != nil {
		e.logger.Warn("Saving the aggregate failed; a restart would lose what was learned since the last save", zap.Error(err))
	}
}

// restoreFirstStart reads the first start time, or records this start as
// the first.
func (e *authzExporter) restoreFirstStart(ctx context.Context) error {
	raw, err := e.state.Get(ctx, firstStartKey)
	if err != nil {
		return fmt.Errorf("storage: reading the first start: %w", err)
	}
	if raw == nil {
		return e.state.Set(ctx, firstStartKey, []byte(e.firstStart.UTC().Format(time.RFC3339Nano)))
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		// Fail closed: an unreadable start must not reopen the learning
		// period (audit mode allows everything).
		e.logger.Error("The saved first start is unreadable; the learning period is treated as over", zap.Error(err))
		t = time.Time{}
	}
	e.firstStart = t
	return nil
}
