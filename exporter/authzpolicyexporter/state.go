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

// Keys in the storage extension: the aggregate, and each callee's learning
// start, mode history and version. firstStart is the single learning start
// of earlier versions, read once to carry it over.
const (
	stateKey      = "aggregate"
	calleesKey    = "callees"
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
	if err := e.restoreAggregate(ctx); err != nil {
		return err
	}
	return e.restoreCallees(ctx)
}

// restoreAggregate restores the aggregate saved by an earlier run.
func (e *authzExporter) restoreAggregate(ctx context.Context) error {
	client := e.state
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

// restoreCallees restores each callee's learning start and mode history.
// What cannot be read ends the learning periods of the callees restored
// with the aggregate: a restart never reopens audit mode.
func (e *authzExporter) restoreCallees(ctx context.Context) error {
	data, err := e.state.Get(ctx, calleesKey)
	if err != nil {
		return fmt.Errorf("storage: reading the callees: %w", err)
	}
	if data != nil {
		n, err := e.life.RestoreState(data)
		if err == nil {
			e.logger.Info("Restored the callees", zap.Int("callees", n))
			return nil
		}
		aside := calleesKey + ".unreadable"
		if serr := e.state.Set(ctx, aside, data); serr != nil {
			return fmt.Errorf("storage: the saved callees are unreadable (%w) and could not be kept aside: %w", err, serr)
		}
		e.logger.Error("The saved callees could not be read; they are kept aside and the learning periods of the restored callees are over",
			zap.String("key", aside), zap.Error(err))
		e.life.Enforced(e.restoredCallees(), e.now())
		return nil
	}
	// A state saved before callees had their own periods: they all
	// started at the first start.
	raw, err := e.state.Get(ctx, firstStartKey)
	if err != nil {
		return fmt.Errorf("storage: reading the first start: %w", err)
	}
	if raw == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		e.logger.Error("The saved first start is unreadable; the learning periods of the restored callees are over", zap.Error(err))
		e.life.Enforced(e.restoredCallees(), e.now())
		return nil
	}
	for _, id := range e.restoredCallees() {
		e.life.Seen(id, t)
	}
	return nil
}

// restoredCallees lists the callees of the aggregate.
func (e *authzExporter) restoredCallees() []string {
	var ids []string
	for _, r := range e.agg.Snapshot() {
		if len(ids) == 0 || ids[len(ids)-1] != r.Destination {
			ids = append(ids, r.Destination)
		}
	}
	return ids
}

// saveState writes the aggregate, as snapshot holds it, to the storage
// extension.
func (e *authzExporter) saveState(ctx context.Context, snapshot []aggregate.Record) {
	if e.state == nil {
		return
	}
	if err := e.state.Set(ctx, stateKey, aggregate.EncodeState(snapshot)); err != nil {
		e.logger.Warn("Saving the aggregate failed; a restart would lose what was learned since the last save", zap.Error(err))
	}
	data, err := e.life.MarshalState()
	if err == nil {
		err = e.state.Set(ctx, calleesKey, data)
	}
	if err != nil {
		e.logger.Warn("Saving the callees failed; a restart would start the learning periods of new callees again", zap.Error(err))
	}
}
