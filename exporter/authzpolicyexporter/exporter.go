package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/serve"
)

type authzExporter struct {
	id        component.ID
	cfg       *Config
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder
	extract   *extractor
	agg       *aggregate.Aggregate
	publisher publish.Publisher
	state     storage.Client // nil without a storage extension
	// server hands what publisher publishes to OPA (serve), nil when off.
	server   *serve.Server
	listener *serve.Listener
	set      component.TelemetrySettings
	now      func() time.Time
	// signing, when set, signs every bundle; the key is loaded once.
	signing *render.SigningOptions

	// learnedAny is set by the first learned span: until then an empty
	// aggregate means "nothing seen yet", and publishing it would replace
	// a good bundle with one that denies everything.
	learnedAny atomic.Bool
	// skipped counts skips by reason since the last flush, for its log line.
	skipped [numReasons]atomic.Int64

	// life decides each callee's mode; modeRules are the operator's
	// modes, also rendered for callees the bundle does not know yet.
	life      *lifecycle.Lifecycle
	modeRules []lifecycle.Rule
	// rules is the overrides file, nil without one.
	rules *overrides.File

	// replicas is this collector's part in a group sharing the output
	// (output::replica_id), nil for a collector alone; merged are the
	// replicas whose shards the last rendering merged, for the review page.
	replicas *replicas
	merged   []string

	flushMu      sync.Mutex
	lastRevision string
	// cache keeps each callee's rendering between flushes.
	cache *render.Cache
	// callees writes the callees' own bundles (output::per_callee);
	// refused are those whose names are reserved, logged once each.
	callees      *publish.CalleePublisher
	refused      map[string]bool
	calleeOutage bool
	// calleeSource is what the callees' objects mirror: the callees' and
	// the unseen bundles of the bundle last published, or, until this
	// process publishes one, of the bundle in place (inPlace, split when
	// first needed), so that a flush that publishes nothing still brings
	// them in line with it.
	calleeSource *render.Bundle
	inPlace      []byte
	guard        *shrinkGuard
	guardReady   bool // the bundle in place was read (or there is none)
	// unreadable is set while the bundle in place could not be read and
	// nothing was published since: it may have enforced any callee, so
	// every callee known before the next publication is enforced.
	unreadable bool
	// published is what the bundle in place holds, for the change log.
	published publication
	// outage is set while publishing fails, so that an outage is logged
	// when it starts and when it ends, not at every flush.
	outage bool

	stop chan struct{}
	done chan struct{}
}

func newExporter(cfg *Config, set exporter.Settings) (*authzExporter, error) {
	x, err := newExtractor(cfg)
	if err != nil {
		return nil, err
	}
	signing, err := cfg.Signing.load(cfg.Output.UnpackedDir)
	if err != nil {
		return nil, err
	}
	if signing != nil {
		set.Logger.Info("Bundles will be signed", zap.String("algorithm", signing.Algorithm), zap.String("key_id", signing.KeyID))
	}
	modeRules, err := cfg.modeRules()
	if err != nil {
		return nil, err
	}
	var rules *overrides.File
	if cfg.OverridesFile != "" {
		if rules, err = overrides.Open(cfg.OverridesFile); err != nil {
			return nil, err
		}
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	reps, err := newReplicas(cfg)
	if err != nil {
		return nil, err
	}
	e := &authzExporter{
		id:        set.ID,
		cfg:       cfg,
		logger:    set.Logger,
		telemetry: tb,
		extract:   x,
		agg:       aggregate.New(aggregate.Limits{Entries: cfg.MaxEntries, PerCaller: cfg.MaxEntriesPerCaller, PerSource: cfg.MaxEntriesPerSource}),
		guard:     newShrinkGuard(cfg.MaxShrink, cfg.Window),
		modeRules: modeRules,
		rules:     rules,
		signing:   signing,
		cache:     render.NewCache(),
		refused:   map[string]bool{},
		now:       time.Now,
		set:       set.TelemetrySettings,
		replicas:  reps,
	}
	if x.specs != nil && len(x.specs.entries) > 0 {
		e.guard.operation = x.specs.operation
	}
	e.life = lifecycle.New(e.lifecycleConfig())
	return e, nil
}

// lifecycleConfig is the callees' lifecycle as configured.
func (e *authzExporter) lifecycleConfig() lifecycle.Config {
	return lifecycle.Config{
		LearningPeriod: e.cfg.LearningPeriod,
		RelearnPeriod:  e.cfg.RelearnPeriod,
		Rules:          e.modeRules,
		Limit:          e.cfg.MaxEntries,
	}
}

func (e *authzExporter) start(ctx context.Context, host component.Host) error {
	if err := e.restoreState(ctx, host); err != nil {
		return err
	}
	p, err := publish.Open(ctx, e.cfg.Output.URL, e.cfg.Output.UnpackedDir, e.cfg.Output.KeepRevisions)
	if err != nil {
		return err
	}
	if e.replicas != nil {
		e.replicas.output = p
	}
	if e.cfg.Serve.enabled() {
		e.server = serve.New(e.cfg.Serve.MaxWaiting, e.cfg.Serve.WriteTimeout)
		e.server.Observe = func(o serve.Outcome) {
			e.telemetry.AuthzPolicyBundleRequests.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", string(o))))
		}
		e.server.Waiting = func(delta int64) {
			e.telemetry.AuthzPolicyBundleRequestsWaiting.Add(context.Background(), delta)
		}
		p = serve.Publishing(p, e.server)
	}
	e.publisher = p
	if e.replicas != nil {
		// What storage restored is this replica's own: its shard is
		// what it wrote from it.
		e.replicas.resumed = e.agg.Len() > 0
	}
	if e.replicas != nil && !e.replicas.resumed {
		// Without a volume (or with an empty one) a replica resumes
		// from its own shard.
		if err := e.resumeShard(ctx); err != nil {
			e.logger.Warn("Could not read this replica's shard yet; it is read again before the first flush writes one", zap.Error(err))
		}
	}
	if e.cfg.Output.PerCallee {
		e.callees = publish.NewCalleePublisher(p, e.signing)
		if e.replicas != nil && e.server != nil {
			e.replicas.mirror = publish.NewCalleePublisher(serve.Mirroring(p, e.server), e.signing)
		}
	}
	if err := e.loadPublished(ctx); err != nil {
		e.logger.Warn("Could not read the bundle in place yet; publishing waits until it can", zap.Error(err))
	}
	if e.server != nil {
		if e.listener, err = serve.Listen(ctx, &e.cfg.Serve.ServerConfig, host, e.set, e.server); err != nil {
			e.publisher = nil
			return errors.Join(fmt.Errorf("serve: %w", err), p.Close())
		}
	}
	e.stop = make(chan struct{})
	e.done = make(chan struct{})
	go e.loop()
	return nil
}

func (e *authzExporter) loop() {
	defer close(e.done)
	if e.server != nil {
		// Until the first flush, serve the callees' objects in place.
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Output.Timeout)
		e.flushMu.Lock()
		if e.replicas != nil {
			_ = e.follow(ctx) // only the publisher writes; retried at every flush
		} else {
			_ = e.syncCallees(ctx) // logged and counted inside
		}
		e.flushMu.Unlock()
		cancel()
	}
	t := time.NewTicker(e.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(e.cfg.FlushInterval, e.cfg.Output.Timeout+10*time.Second))
			_ = e.flush(ctx) // logged and counted inside
			cancel()
		}
	}
}

// shutdown stops the periodic flush and publishes once more, so what was
// learned since the last tick is not lost.
func (e *authzExporter) shutdown(ctx context.Context) error {
	if e.stop != nil {
		close(e.stop)
		<-e.done
		e.stop = nil
	}
	var err error
	if e.publisher != nil {
		err = e.flush(ctx)
		if e.listener != nil {
			// After the last flush, so the held requests get its bundle.
			err = errors.Join(err, e.listener.Shutdown(ctx))
			e.listener = nil
		}
		err = errors.Join(err, e.publisher.Close())
	}
	if e.state != nil {
		err = errors.Join(err, e.state.Close(ctx))
		e.state = nil
	}
	e.telemetry.Shutdown()
	return err
}

func (e *authzExporter) consumeTraces(ctx context.Context, td ptrace.Traces) error {
	now := e.now()
	var counts [numReasons]int64
	b := e.extract.newBatch(td.SpanCount())
	defer b.done()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		b.resource(res)
		version, versioned := e.extract.version(res), ""
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				rec, why := b.observe(spans.At(k), now)
				counts[why]++
				if why != learned {
					continue
				}
				b.records = append(b.records, rec)
				// A learned span was let through: it may announce its
				// callee's version, once per callee and batch.
				if version != "" && rec.Destination != versioned {
					versioned = rec.Destination
					e.noteVersion(ctx, rec.Destination, version, now)
				}
			}
		}
	}
	dropped := e.agg.Observe(b.records)
	counts[learned] -= int64(dropped.Total())
	counts[reasonAggregateFull] += int64(dropped.Full)
	counts[reasonCallerFull] += int64(dropped.CallerFull)
	if counts[learned] > 0 {
		e.learnedAny.Store(true)
		e.telemetry.AuthzPolicySpansLearned.Add(ctx, counts[learned])
	}
	for r := learned + 1; r < numReasons; r++ {
		if counts[r] > 0 {
			e.skipped[r].Add(counts[r])
			e.telemetry.AuthzPolicySpansSkipped.Add(ctx, counts[r], metric.WithAttributes(attribute.String("reason", r.String())))
		}
	}
	return nil
}

// flush forgets expired access, decides each callee's mode, renders the
// aggregate and publishes it when its revision changed. A bundle that fails
// to render or compile is never published: the last good one stays.
func (e *authzExporter) flush(ctx context.Context) error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()

	e.logSkips()
	e.reloadOverrides(ctx)
	e.reloadSpecs(ctx)
	if e.replicas != nil && !e.replicas.resumed {
		// Before the snapshot: what is resumed is in this flush's shard.
		if err := e.resumeShard(ctx); err != nil {
			e.publishOutcome(ctx, "held_back")
			e.logger.Warn("Holding back: this replica's own shard could not be read yet", zap.Error(err))
			return nil
		}
	}
	now := e.now()
	expired := e.agg.Expire(now.Add(-e.cfg.Window))
	e.guard.expiredKeys(expired)
	// Read before the snapshot: a span learned after it must not make an
	// empty snapshot look like learned access that expired.
	learnedAny := e.learnedAny.Load()
	snapshot := e.agg.Snapshot()
	e.noteCallees(snapshot)
	e.saveState(ctx, snapshot)
	life := e.life
	if e.replicas != nil {
		m, err := e.syncShards(ctx, snapshot, now)
		if err != nil {
			e.publishOutcome(ctx, "held_back")
			e.logger.Warn("Holding back: the replicas' shards could not be read and written", zap.Error(err))
			return nil
		}
		if m.publisher != e.replicas.id {
			// Another replica publishes the same merge.
			if err := e.follow(ctx); err != nil {
				e.logger.Warn("Could not read the bundle in place", zap.Error(err))
			}
			return nil
		}
		if m.held {
			// Some replica learned something once: an empty merge is
			// expiry, to publish, not a first start.
			e.learnedAny.Store(true)
			learnedAny = true
		}
		snapshot, life, e.merged = m.records, m.life, m.replicas
	}
	entries := len(snapshot)
	e.telemetry.AuthzPolicyAggregateEntries.Record(ctx, int64(entries))
	if entries == 0 && !learnedAny {
		e.logger.Debug("Nothing learned yet; keeping the published bundle")
		return e.syncCallees(ctx)
	}
	if !e.guardReady {
		// Without the bundle in place neither the guard nor the callee
		// modes could tell a lost state from a first start: wait for the
		// store.
		if err := e.loadPublished(ctx); err != nil {
			e.publishOutcome(ctx, "held_back")
			e.logger.Warn("Holding back: the bundle in place could not be read yet", zap.Error(err))
			return nil
		}
	}

	if e.unreadable {
		// Callees first seen since the start may have been enforced by
		// the bundle that cannot be read, whatever state was lost.
		e.life.Enforced(e.life.Known(), now)
		life.Enforced(life.Known(), now)
	}
	statuses := life.Modes(now)
	modes := make(map[string]lifecycle.Mode, len(statuses))
	for id, st := range statuses {
		modes[id] = st.Mode
	}
	records := e.evidenced(snapshot)
	ov := e.rules.Rules()
	opts := render.Options{
		CardinalityThreshold: e.cfg.Routes.CardinalityThreshold,
		Callees:              modes,
		UnseenCallees:        e.cfg.unseenCallees(),
		ModeRules:            e.modeRules,
		TrustDomains:         e.cfg.TrustDomains,
		Overrides:            ov,
		Specs:                e.extract.specs.renderSpec,
		Signing:              e.signing,
		PerCallee:            e.callees != nil,
		Cache:                e.cache,
	}
	b, err := render.Render(ctx, records, opts)
	if err != nil {
		e.publishOutcome(ctx, "failed")
		e.logger.Error("Rendering the bundle failed; the last published bundle stays", zap.Error(err))
		return errors.Join(fmt.Errorf("render: %w", err), e.syncCallees(ctx))
	}
	e.telemetry.AuthzPolicyRules.Record(ctx, int64(len(b.Rules)))
	e.recordModes(ctx, modes)
	if b.Skipped > 0 {
		e.logger.Warn("Aggregate entries could not be rendered and were left out", zap.Int("entries", b.Skipped))
	}
	if b.Revision == e.lastRevision {
		e.extract.specs.markPublished()
		e.publishOutcome(ctx, "unchanged")
		// The callees' bundles a failure left behind; the others cost
		// nothing.
		return e.syncCallees(ctx)
	}
	// Rules of audited callees, rules an operator denied and rules a new
	// version of the callee's API spec takes away are removed on purpose:
	// an audited callee allows everything anyway.
	bySpec := e.removedBySpec(ctx, records, opts)
	explained := func(r render.Rule) bool {
		return modes[r.Destination] == lifecycle.Audit || ov.Denies(r.Destination, r.Source, r.Method, r.Route) || bySpec(r)
	}
	if unexplained, hold := e.guard.check(b.Rules, now, explained); hold {
		e.publishOutcome(ctx, "held_back")
		e.logger.Warn("Holding back a bundle that would remove many allow rules without their access expiring; the published bundle stays until the access is seen again or a window passes",
			zap.Int("rules_removed", unexplained), zap.Int("rules_published", len(e.guard.published)), zap.Float64("max_shrink", e.cfg.MaxShrink))
		return e.syncCallees(ctx)
	}
	next, summary, err := e.review(b, statuses, modes, ov, snapshot, records)
	if err != nil {
		e.publishOutcome(ctx, "failed")
		e.logger.Error("Writing the review files failed; the last published bundle stays", zap.Error(err))
		return errors.Join(fmt.Errorf("review: %w", err), e.syncCallees(ctx))
	}
	changed, err := e.publish(ctx, b)
	var reviewErr *publish.ReviewError
	if errors.As(err, &reviewErr) {
		// The enforced bundle is in place; only the review copy failed.
		e.logger.Warn("Writing the unpacked review copy failed; it is written again with the next revision", zap.Error(reviewErr))
		err = nil
	}
	if err != nil {
		e.publishOutcome(ctx, "failed")
		if !e.outage {
			e.outage = true
			e.logger.Error("Publishing the bundle failed; the aggregate is kept and every flush retries. Further failures are not logged until it recovers",
				zap.String("revision", b.Revision), zap.Error(err))
		}
		return fmt.Errorf("publish: %w", err)
	}
	if e.outage {
		e.outage = false
		e.logger.Info("Publishing recovered", zap.String("revision", b.Revision))
	}
	e.lastRevision = b.Revision
	if e.replicas != nil {
		e.replicas.mirrored = "" // its server holds this publication's objects
	}
	e.unreadable = false
	e.guard.setPublished(b.Rules)
	e.extract.specs.markPublished()
	before := e.published.modes
	// review.Rules lists b.Rules first, then the operator's.
	e.published = publication{revision: b.Revision, learned: b.Rules, operator: slices.Clone(next[len(b.Rules):]), modes: modeNames(modes)}
	e.life.Enforced(enforced(modes), now)
	e.logModeChanges(statuses, before)
	if e.callees != nil {
		e.calleeSource, e.inPlace = &render.Bundle{Callees: b.Callees, Unseen: b.Unseen}, nil
	}
	calleesErr := e.syncCallees(ctx)
	if !changed {
		e.publishOutcome(ctx, "unchanged")
		return calleesErr
	}
	e.publishOutcome(ctx, "published")
	e.recordChanges(ctx, summary)
	fields := []zap.Field{
		zap.String("revision", b.Revision),
		zap.Int("rules", len(b.Rules)),
		zap.Int("entries", entries),
		zap.Int("expired", len(expired)),
		zap.Int("denied_by_operator", len(b.Denied)),
		zap.Any("rules_added", summary.Added),
		zap.Any("rules_removed", summary.Removed),
	}
	e.logger.Info("Published policy bundle", fields...)
	return calleesErr
}

// syncCallees makes the callees' objects mirror the full bundle in place
// (a bundle the shrink guard holds back holds theirs back too), at every
// flush: what a failure left behind is written at the next one, whatever
// that flush publishes.
func (e *authzExporter) syncCallees(ctx context.Context) error {
	if e.callees == nil {
		return nil
	}
	if e.calleeSource == nil {
		if e.inPlace == nil {
			return nil
		}
		b, err := render.Split(e.inPlace, e.signing)
		if err != nil {
			e.logger.Error("The callees' bundles cannot be made from the bundle in place; they follow the next publication", zap.Error(err))
			e.inPlace = nil
			return err
		}
		e.calleeSource, e.inPlace = b, nil
	}
	return e.publishCallees(ctx, e.calleeSource)
}

// publishCallees writes the callees' objects of b that changed.
func (e *authzExporter) publishCallees(ctx context.Context, b *render.Bundle) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Output.Timeout)
	defer cancel()
	res, err := e.callees.Publish(ctx, b)
	count := func(outcome string, n int) {
		if n > 0 {
			e.telemetry.AuthzPolicyCalleeBundles.Add(ctx, int64(n), metric.WithAttributes(attribute.String("outcome", outcome)))
		}
	}
	count("published", res.Written)
	count("unchanged", res.Unchanged)
	count("refused", len(res.Refused))
	for _, id := range res.Refused {
		if !e.refused[id] {
			e.refused[id] = true
			e.logger.Warn("A callee's own bundle is not published: its SPIFFE ID has a segment named "+publish.BundleName+" (reserved for the bundles themselves) or is too long to store; its sidecar must poll the full bundle (the discovery bundle points it at the unseen bundle, which has no grants)",
				zap.String("callee", id))
		}
	}
	if err != nil {
		count("failed", 1)
		if !e.calleeOutage {
			e.calleeOutage = true
			e.logger.Error("Publishing the callees' own bundles failed; every flush retries those not written. Further failures are not logged until it recovers", zap.Error(err))
		}
		return fmt.Errorf("publish callees' bundles: %w", err)
	}
	if e.calleeOutage {
		e.calleeOutage = false
		e.logger.Info("Publishing the callees' own bundles recovered")
	}
	if res.Written > 0 {
		e.logger.Info("Published callees' own bundles", zap.Int("written", res.Written), zap.Int("unchanged", res.Unchanged))
	}
	return nil
}

// evidenced keeps the records with enough evidence to become rules.
func (e *authzExporter) evidenced(recs []aggregate.Record) []aggregate.Record {
	if e.cfg.MinObservations <= 1 && e.cfg.MinTimeBuckets <= 1 {
		return recs
	}
	kept := recs[:0]
	for _, r := range recs {
		if r.Count >= uint64(e.cfg.MinObservations) && bits.OnesCount64(r.Buckets) >= e.cfg.MinTimeBuckets {
			kept = append(kept, r)
		}
	}
	return kept
}

// loadPublished reads the bundle already in place: its rules are the
// shrink guard's reference after a restart, and the callees it enforces
// stay enforced whatever state was lost. A store that cannot be reached is
// an error, tried again at the next flush. A bundle that is there but
// cannot be read gives no reference, and then every callee known before
// the next publication is taken as enforced: audit mode must never be what
// an unreadable bundle falls back to.
func (e *authzExporter) loadPublished(ctx context.Context) error {
	raw, err := e.publisher.Fetch(ctx)
	if err != nil {
		return err
	}
	e.guardReady = true
	if raw == nil {
		return nil
	}
	p, err := render.Read(raw)
	if err != nil {
		e.logger.Error("The bundle in place cannot be read; the shrink guard has no reference and every callee known before the next publication is enforced", zap.Error(err))
		e.unreadable = true
		e.life.Enforced(e.life.Known(), e.now())
		return nil
	}
	if e.server != nil {
		// Served until the first publication, so that a sidecar starting
		// with the collector is never handed nothing.
		e.server.Set(publish.BundleName, p.Revision, raw)
	}
	e.guard.setPublished(p.Rules)
	e.life.Enforced(enforced(p.Modes), e.now())
	if e.callees != nil && e.calleeSource == nil {
		e.inPlace = raw
	}
	e.published = publication{revision: p.Revision, learned: p.Rules, modes: modeNames(p.Modes)}
	return nil
}

// publish retries with jittered exponential backoff until it succeeds or
// output.timeout is spent. Ingestion never waits for it.
func (e *authzExporter) publish(ctx context.Context, b *render.Bundle) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Output.Timeout)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		changed, err := e.publisher.Publish(ctx, b)
		var review *publish.ReviewError
		if err == nil || errors.As(err, &review) {
			return changed, err
		}
		wait := delay/2 + rand.N(delay/2)
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(wait):
		}
		delay = min(2*delay, 8*time.Second)
	}
}

func (e *authzExporter) publishOutcome(ctx context.Context, outcome string) {
	e.telemetry.AuthzPolicyPublishes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
}

// reloadOverrides reads the overrides file again when it changed; a bad new
// version keeps the rules in use and is logged once.
func (e *authzExporter) reloadOverrides(ctx context.Context) {
	if e.rules == nil {
		return
	}
	changed, err := e.rules.Reload()
	switch {
	case err != nil:
		e.telemetry.AuthzPolicyOverridesReloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "failed")))
		e.logger.Error("The overrides file cannot be used; the rules read before stay in force", zap.Error(err))
	case changed:
		e.telemetry.AuthzPolicyOverridesReloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "loaded")))
		set := e.rules.Rules()
		e.logger.Info("Read the changed overrides file", zap.String("file", e.cfg.OverridesFile), zap.Int("allow", len(set.Allow)), zap.Int("deny", len(set.Deny)))
	}
}

// removedBySpec tells, for a rule the next bundle removes, whether a new
// version of its callee's spec removed it: rendered from the same records
// with the specs the bundle in place was rendered with, it stays. Rules
// the records no longer hold are no spec's doing. Only when a spec
// changed is anything rendered again, and at most once.
func (e *authzExporter) removedBySpec(ctx context.Context, records []aggregate.Record, opts render.Options) func(render.Rule) bool {
	if !e.extract.specs.changed() {
		return func(render.Rule) bool { return false }
	}
	var kept map[string]bool
	return func(r render.Rule) bool {
		if kept == nil {
			kept = map[string]bool{}
			opts.Specs, opts.Cache, opts.PerCallee, opts.Signing = e.extract.specs.publishedSpec, nil, false, nil
			if old, err := render.Render(ctx, records, opts); err == nil {
				for _, o := range old.Rules {
					kept[o.Key()] = true
				}
			}
		}
		return kept[r.Key()]
	}
}

// reloadSpecs reads the routes::openapi specs again when they changed; a
// bad new version keeps the spec in use and is logged once.
func (e *authzExporter) reloadSpecs(ctx context.Context) {
	for _, s := range e.extract.specs.entries {
		changed, err := s.reload()
		switch {
		case err != nil:
			e.telemetry.AuthzPolicyOpenapiReloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "failed")))
			e.logger.Error("The changed API spec cannot be used; the spec read before stays in force", zap.String("callee", s.callee.String()), zap.Error(err))
		case changed:
			e.telemetry.AuthzPolicyOpenapiReloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "loaded")))
			spec := s.spec()
			e.logger.Info("Read the changed API spec", zap.String("file", s.file.Path()), zap.String("callee", s.callee.String()),
				zap.Int("operations", len(spec.Operations)), zap.Int("refused", len(spec.Refused)))
		}
	}
}

// logSkips logs one line per flush with the spans skipped since the last,
// by reason: enough to notice a misconfiguration without a line per span.
func (e *authzExporter) logSkips() {
	var fields []zap.Field
	for r := learned + 1; r < numReasons; r++ {
		if n := e.skipped[r].Swap(0); n > 0 {
			fields = append(fields, zap.Int64(r.String(), n))
		}
	}
	if len(fields) > 0 {
		e.logger.Info("Spans skipped since the last flush", fields...)
	}
}
