package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
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
		// Starting empty is safe: nothing is published until something is
		// learned, and the shrink guard holds back a smaller policy.
		e.logger.Error("The saved aggregate could not be read; starting empty", zap.Error(err))
		return nil
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
	if t, perr := time.Parse(time.RFC3339Nano, string(raw)); raw != nil && perr == nil {
		e.firstStart = t
		return nil
	}
	return e.state.Set(ctx, firstStartKey, []byte(e.firstStart.UTC().Format(time.RFC3339Nano)))
}
