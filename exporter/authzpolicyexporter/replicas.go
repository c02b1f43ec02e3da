package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate/shard"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
)

// maxShardBytes bounds a shard read from the output (100k entries take
// about 30 MB), maxShards how many there may be and maxMergeBytes all of
// them together: what others write to the output is bounded. Beyond a
// bound the merge is held back, never made of some of the shards.
const (
	maxShardBytes = shard.DefaultMaxBytes
	maxShards     = 256
	maxMergeBytes = 1 << 30
)

// replicas is this collector's part in a group sharing one output
// (output::replica_id). At every flush each replica writes its aggregate
// and callees as its shard, reads the others', and renders the merge; the
// lowest replica id whose shard is fresh publishes it, the others follow
// the bundle in place. Every replica that reads the same shards renders
// the same bytes, so two that both publish for a moment (a takeover) write
// the same bundle.
type replicas struct {
	id, key string
	timeout time.Duration
	// resumed is set once this replica's own shard was read at start (or
	// found absent): until then it writes no shard, which would replace
	// the one it has not read yet.
	resumed bool
	// output is where the shards are, the output without the bundle
	// server: a shard is this replica's state, no publication to serve.
	output publish.Publisher
	// mirror hands the callees' objects of the bundle in place to this
	// replica's bundle server while another publishes, as that one
	// writes them; nil without serve or per_callee.
	mirror *publish.CalleePublisher
	// mirrored is the revision whose callees' objects mirror last handed
	// to the bundle server, "" once this replica published itself: the
	// bundle in place is split again only when it changed.
	mirrored string
	// skipped are the shards skipped at the last reading, by key, with
	// their reason: a skip is logged when it starts, not at every flush.
	skipped map[string]string
	// read are the shards as last read, by key, with the digest of their
	// bytes: an unchanged object is not decoded again, and a replica's
	// shard that turns unreadable is merged as it was last read, so that
	// a damaged object never makes the policy smaller.
	read map[string]readShard
}

type readShard struct {
	sum   [sha256.Size]byte
	size  int
	shard shard.Shard
}

func newReplicas(cfg *Config) (*replicas, error) {
	if cfg.Output.ReplicaID == "" {
		return nil, nil
	}
	key, err := shard.Key(cfg.Output.ReplicaID)
	if err != nil {
		return nil, err
	}
	return &replicas{id: cfg.Output.ReplicaID, key: key, timeout: cfg.replicaTimeout(), skipped: map[string]string{}, read: map[string]readShard{}}, nil
}

// merged is what the shards hold together.
type merged struct {
	records   []aggregate.Record
	life      *lifecycle.Lifecycle
	publisher string
	replicas  []string // whose shards were merged
	held      bool     // some shard held records, expired or not
}

// syncShards writes this replica's shard, reads the others' and merges
// them. An error (the output cannot be listed or written) leaves nothing
// to publish: a merge without some shards would be a smaller policy.
func (e *authzExporter) syncShards(ctx context.Context, snapshot []aggregate.Record, now time.Time) (merged, error) {
	r := e.replicas
	callees, err := e.life.MarshalState()
	if err != nil {
		return merged{}, err
	}
	own := shard.Shard{Replica: r.id, Written: now, Records: snapshot, Callees: callees}
	data := shard.Encode(own)
	sum := sha256.Sum256(data)
	if _, err := r.output.PublishObject(ctx, r.key, hex.EncodeToString(sum[:16]), data); err != nil {
		return merged{}, fmt.Errorf("writing this replica's shard: %w", err)
	}
	e.shardOutcome(ctx, "written", 1)
	keys, err := r.output.ListObjects(ctx, shard.Prefix)
	if err != nil {
		return merged{}, fmt.Errorf("listing the shards: %w", err)
	}
	if len(keys) > maxShards {
		return merged{}, fmt.Errorf("%d objects below %s, more than the %d read", len(keys), shard.Prefix, maxShards)
	}
	shards := []shard.Shard{own}
	skipped := map[string]string{}
	read := map[string]readShard{}
	total := len(data)
	for _, key := range keys {
		if key == r.key {
			continue
		}
		rs, err := e.readShard(ctx, key)
		var refused *refusedShard
		if errors.As(err, &refused) {
			skipped[key] = shard.Reason(refused.err)
			if r.skipped[key] != skipped[key] {
				e.logger.Warn("A shard of the output is skipped; the merge keeps it as it was last read, if ever",
					zap.String("key", key), zap.Error(refused.err))
			}
			e.shardOutcome(ctx, "skipped_"+skipped[key], 1)
			last, ok := r.read[key]
			if !ok {
				continue
			}
			rs = last
		} else if err != nil {
			// Not the shard's fault: without it the merge would be smaller.
			return merged{}, fmt.Errorf("reading %s: %w", key, err)
		}
		if total += rs.size; total > maxMergeBytes {
			return merged{}, fmt.Errorf("the shards hold more than %d bytes", maxMergeBytes)
		}
		read[key] = rs
		shards = append(shards, rs.shard)
	}
	r.read = read
	r.skipped = skipped
	e.shardOutcome(ctx, "read", int64(len(shards)-1))

	cutoff := now.Add(-e.cfg.Window)
	records, states := shard.Merge(shards)
	kept := records[:0]
	for _, rec := range records {
		if !rec.LastSeen.Before(cutoff) {
			kept = append(kept, rec)
		}
	}
	life := lifecycle.New(e.lifecycleConfig())
	for _, st := range states {
		if _, err := life.RestoreState(st); err != nil {
			e.logger.Warn("A shard's callees cannot be read; its callees keep what the others say", zap.Error(err))
		}
	}
	metas := make([]shard.Meta, len(shards))
	for i, s := range shards {
		metas[i] = shard.Meta{Replica: s.Replica, Written: s.Written}
	}
	m := merged{records: kept, life: life, publisher: shard.Publisher(metas, r.id, now, r.timeout), held: len(records) > 0}
	for _, s := range shards {
		m.replicas = append(m.replicas, s.Replica)
	}
	if m.publisher == r.id {
		e.deleteGoneShards(ctx, shards[1:], now, cutoff)
	}
	return m, nil
}

// refusedShard is a shard that was read but refused: foreign, damaged,
// of another version or too large. Any other error is the store's.
type refusedShard struct{ err error }

func (e *refusedShard) Error() string { return e.err.Error() }
func (e *refusedShard) Unwrap() error { return e.err }

// readShard reads and checks the shard at key; one whose bytes are those
// read last is not decoded again.
func (e *authzExporter) readShard(ctx context.Context, key string) (readShard, error) {
	replica, err := shard.ReplicaOf(key)
	if err != nil {
		return readShard{}, &refusedShard{fmt.Errorf("%w: %w", shard.ErrForeign, err)}
	}
	data, err := e.replicas.output.ReadObject(ctx, key, maxShardBytes)
	switch {
	case errors.Is(err, publish.ErrTooLarge):
		return readShard{}, &refusedShard{fmt.Errorf("%w: %w", shard.ErrTooLarge, err)}
	case err != nil:
		return readShard{}, err
	case data == nil:
		return readShard{}, &refusedShard{fmt.Errorf("%w: deleted while read", shard.ErrCorrupt)}
	}
	rs := readShard{sum: sha256.Sum256(data), size: len(data)}
	if last := e.replicas.read[key]; last.sum == rs.sum {
		return last, nil
	}
	if rs.shard, err = shard.Decode(data, replica, maxShardBytes); err != nil {
		return readShard{}, &refusedShard{err}
	}
	return rs, nil
}

// deleteGoneShards removes the shards of replicas gone for longer than
// the timeout whose access has all expired: until then their access stays,
// as if they were still there.
func (e *authzExporter) deleteGoneShards(ctx context.Context, others []shard.Shard, now, cutoff time.Time) {
	for _, s := range others {
		if now.Sub(s.Written) <= e.replicas.timeout {
			continue
		}
		live := false
		for _, rec := range s.Records {
			if !rec.LastSeen.Before(cutoff) {
				live = true
				break
			}
		}
		if live {
			continue
		}
		// Its callees' learning starts and enforcement outlive it, in this
		// replica's own state.
		if len(s.Callees) > 0 {
			if _, err := e.life.RestoreState(s.Callees); err != nil {
				continue
			}
		}
		key, _ := shard.Key(s.Replica)
		if err := e.replicas.output.DeleteObject(ctx, key); err != nil {
			e.logger.Warn("Deleting the shard of a replica gone and expired failed; the next flush tries again", zap.String("replica", s.Replica), zap.Error(err))
			continue
		}
		e.shardOutcome(ctx, "deleted", 1)
		e.logger.Info("Deleted the shard of a replica gone, whose access has all expired", zap.String("replica", s.Replica))
	}
}

// resumeShard restores this replica's aggregate and callees from its own
// shard, for a replica started again without its volume.
func (e *authzExporter) resumeShard(ctx context.Context) error {
	r := e.replicas
	data, err := r.output.ReadObject(ctx, r.key, maxShardBytes)
	if err != nil && !errors.Is(err, publish.ErrTooLarge) {
		r.resumed = false
		return err // tried again at the next flush
	}
	r.resumed = true
	if data == nil {
		return nil
	}
	s, err := shard.Decode(data, r.id, maxShardBytes)
	if err != nil {
		e.logger.Error("This replica's own shard cannot be read; it starts empty (the others' shards and the shrink guard keep the policy)", zap.Error(err))
		return nil
	}
	e.agg.Restore(s.Records)
	n := len(s.Records)
	if len(s.Callees) > 0 {
		if _, err := e.life.RestoreState(s.Callees); err != nil {
			return err
		}
	}
	if n > 0 {
		e.learnedAny.Store(true)
	}
	e.logger.Info("Resumed from this replica's shard", zap.Int("entries", n), zap.Time("written", s.Written))
	return nil
}

// follow keeps a replica that does not publish in step with the bundle in
// place: its shrink guard's reference and the callees it enforces (for
// when it takes over), and what its bundle server hands out.
func (e *authzExporter) follow(ctx context.Context) error {
	// What this replica published when it was the publisher is not what
	// is in place now: the callees' objects follow the bundle in place.
	e.calleeSource, e.inPlace = nil, nil
	if err := e.loadPublished(ctx); err != nil {
		return err
	}
	e.lastRevision = e.published.revision
	if e.replicas.mirror == nil || e.inPlace == nil || e.replicas.mirrored == e.published.revision {
		return nil
	}
	b, err := render.Split(e.inPlace, e.signing)
	if err != nil {
		return err
	}
	if _, err = e.replicas.mirror.Publish(ctx, b); err == nil {
		e.replicas.mirrored = e.published.revision
	}
	return err
}

func (e *authzExporter) shardOutcome(ctx context.Context, outcome string, n int64) {
	if n > 0 {
		e.telemetry.AuthzPolicyShards.Add(ctx, n, metric.WithAttributes(attribute.String("outcome", outcome)))
	}
}
