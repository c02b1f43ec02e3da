// Package shard is how replicas that share one output share what they
// learned: each writes its aggregate and its callees' state as a shard
// below the output at every flush, reads the others' and renders from the
// merge, so that every replica reading the same shards renders the same
// bundle, byte for byte.
//
// A shard is a versioned envelope around a checksummed payload. Decode
// accepts only what Encode writes (the canonical bytes of a valid shard of
// the replica the object is named after) and says why it refuses anything
// else, so that a corrupt, foreign or oversized shard is skipped and counted,
// never merged.
package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
)

// Shard is one replica's share of the learning.
type Shard struct {
	// Replica is the writer's id, which names the shard's object.
	Replica string
	// Written is when the replica wrote it: a replica whose shard is not
	// written again within a timeout is taken for gone (see Publisher).
	Written time.Time
	// Records are the replica's aggregate, as Snapshot gives it.
	Records []aggregate.Record
	// Callees is the replica's lifecycle.MarshalState; empty for none.
	Callees []byte
}

// Format and Version name the encoding; a shard of another version is an
// ErrVersion, so that a replica running an older release skips the shards
// of a newer one instead of misreading them.
const (
	Format  = "authz-policy-shard"
	Version = 1
)

// Why Decode refuses a shard; errors.Is tells them apart.
var (
	ErrTooLarge = errors.New("shard is too large")
	ErrVersion  = errors.New("shard version is not supported")
	ErrChecksum = errors.New("shard checksum does not match")
	ErrForeign  = errors.New("shard is not the replica's it is named after")
	ErrCorrupt  = errors.New("shard is corrupt")
)

// Reason is a short name of the error Decode returned, for a counter's
// attribute: too_large, version, checksum, foreign, corrupt; "" for nil.
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{{ErrTooLarge, "too_large"}, {ErrVersion, "version"}, {ErrChecksum, "checksum"}, {ErrForeign, "foreign"}, {ErrCorrupt, "corrupt"}} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	if err != nil {
		return "corrupt"
	}
	return ""
}

// Prefix is the folder of the shards below the output.
const Prefix = "shards/"

const suffix = ".json"

// Key returns the name of replica's shard below the output.
func Key(replica string) (string, error) {
	if err := ValidReplica(replica); err != nil {
		return "", err
	}
	return Prefix + replica + suffix, nil
}

// ReplicaOf returns the replica whose shard key names: the inverse of Key,
// for a listing of Prefix.
func ReplicaOf(key string) (string, error) {
	r, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return "", fmt.Errorf("%q is not below %s", key, Prefix)
	}
	r, ok = strings.CutSuffix(r, suffix)
	if !ok {
		return "", fmt.Errorf("%q is not a %s object", key, suffix)
	}
	if err := ValidReplica(r); err != nil {
		return "", err
	}
	return r, nil
}

// maxReplica is the longest DNS subdomain, and so the longest Kubernetes
// pod name.
const maxReplica = 253

// ValidReplica accepts what a Kubernetes pod name or a host name may be
// (an RFC 1123 subdomain): dot-separated labels of lower-case letters,
// digits and '-' that begin and end with a letter or digit, 253 bytes at
// most. Nothing else is accepted, so that no id names an object outside
// the shards' folder or two ids one object.
func ValidReplica(id string) error {
	if id == "" {
		return errors.New("replica id is empty")
	}
	if len(id) > maxReplica {
		return fmt.Errorf("replica id is %d bytes long; at most %d are allowed", len(id), maxReplica)
	}
	for label := range strings.SplitSeq(id, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("replica id %q: each dot-separated part must begin and end with a lower-case letter or a digit", id)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("replica id %q: only lower-case letters, digits, '-' and '.' are allowed (as in a pod or host name)", id)
			}
		}
	}
	return nil
}

// The envelope is, in this order and without spaces,
//
//	{"format":"authz-policy-shard","version":1,"replica":"r","written":"<RFC 3339>",
//	 "sha256":"<hex>","payload":<payload>}
//
// and the payload {"aggregate":<aggregate.EncodeState>,"callees":<state or null>}.
// The sum is SHA-256 of the envelope's bytes before ,"sha256" followed by
// the payload's bytes: of everything but itself, so that a changed byte
// anywhere, the replica and the time included, is caught.
type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Replica string          `json:"replica"`
	Written string          `json:"written"`
	SHA256  string          `json:"sha256"`
	Payload json.RawMessage `json:"payload"`
}

type payload struct {
	Aggregate json.RawMessage `json:"aggregate"`
	Callees   json.RawMessage `json:"callees"`
}

// head is the envelope before its sum, and sumHead what lies between the
// sum and the payload.
func head(replica string, written time.Time) []byte {
	q, _ := json.Marshal(replica) // a string always marshals
	return fmt.Appendf(nil, `{"format":%q,"version":%d,"replica":%s,"written":%q`,
		Format, Version, q, written.UTC().Format(time.RFC3339Nano))
}

const sumHead, sumTail = `,"sha256":"`, `","payload":`

// checksum is the sum of an envelope of head and payload.
func checksum(head, payload []byte) []byte {
	h := sha256.New()
	h.Write(head)
	h.Write(payload)
	return h.Sum(nil)
}

// payloadBytes is the payload of an aggregate state and a callee state
// ("null" for none).
func payloadBytes(state, callees []byte) []byte {
	const a, c = `{"aggregate":`, `,"callees":`
	b := make([]byte, 0, len(a)+len(state)+len(c)+len(callees)+1)
	b = append(append(append(append(append(b, a...), state...), c...), callees...), '}')
	return b
}

// Encode returns the shard's bytes; the same shard gives the same bytes.
//
// Records are normally a Snapshot: sorted by key, each key once. Others are
// made so first, as Decode requires: records with an empty key field are
// left out, invalid UTF-8 in a key becomes U+FFFD (as JSON would read it
// back), and the records are merged (aggregate.Merge). Callees must be
// lifecycle.MarshalState output or empty; other bytes make a shard that
// Decode refuses.
func Encode(s Shard) []byte {
	recs := s.Records
	if !canonical(recs) {
		recs = normalize(recs)
	}
	callees := s.Callees
	if len(callees) == 0 {
		callees = []byte("null")
	}
	p := payloadBytes(aggregate.EncodeState(recs), callees)
	h := head(s.Replica, s.Written)
	out := make([]byte, 0, len(h)+len(sumHead)+2*sha256.Size+len(sumTail)+len(p)+1)
	out = append(append(out, h...), sumHead...)
	out = hex.AppendEncode(out, checksum(h, p))
	return append(append(append(out, sumTail...), p...), '}')
}

// canonical tells whether recs are as Decode accepts them: strictly sorted
// (so each key once), every key field non-empty and valid UTF-8.
func canonical(recs []aggregate.Record) bool {
	return invalidRecord(recs) < 0
}

// invalidRecord returns the index of the first record that makes recs
// other than canonical, or -1.
func invalidRecord(recs []aggregate.Record) int {
	for i := range recs {
		k := &recs[i].Key
		for _, f := range [...]string{k.Destination, k.Source, k.Method, k.Route} {
			if f == "" || !utf8.ValidString(f) {
				return i
			}
		}
		if i > 0 && aggregate.CompareKeys(recs[i-1].Key, *k) >= 0 {
			return i
		}
	}
	return -1
}

func normalize(recs []aggregate.Record) []aggregate.Record {
	out := make([]aggregate.Record, 0, len(recs))
	for _, r := range recs {
		k := &r.Key
		if k.Destination == "" || k.Source == "" || k.Method == "" || k.Route == "" {
			continue
		}
		for _, f := range []*string{&k.Destination, &k.Source, &k.Method, &k.Route} {
			*f = strings.ToValidUTF8(*f, string(utf8.RuneError))
		}
		out = append(out, r)
	}
	return aggregate.Merge(out)
}

// Decode reads the shard stored under replicaFromKey's key (see ReplicaOf).
// It refuses, with an error that errors.Is tells apart:
//   - ErrTooLarge: more than maxBytes, before anything is parsed (0 or less
//     is DefaultMaxBytes);
//   - ErrVersion: another envelope version, or a newer aggregate or callee
//     state inside;
//   - ErrChecksum: bytes (of the payload, the replica, the time) other than
//     those summed;
//   - ErrForeign: a shard of another replica than the key names (a copy
//     under another name), or a key that names no replica;
//   - ErrCorrupt: anything else that is not what Encode writes: not JSON,
//     cut, not the canonical bytes, a record with an empty key field,
//     records out of order or twice, an unreadable callee state.
//
// A shard Decode accepts encodes again to the very same bytes.
func Decode(data []byte, replicaFromKey string, maxBytes int) (Shard, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(data) > maxBytes {
		return Shard{}, fmt.Errorf("%w: %d bytes, at most %d are read", ErrTooLarge, len(data), maxBytes)
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return Shard{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if env.Format != Format {
		return Shard{}, fmt.Errorf("%w: format %q is not %q", ErrCorrupt, env.Format, Format)
	}
	if env.Version != Version {
		return Shard{}, fmt.Errorf("%w: version %d (want %d)", ErrVersion, env.Version, Version)
	}
	written, err := time.Parse(time.RFC3339Nano, env.Written)
	if err != nil {
		return Shard{}, fmt.Errorf("%w: written: %w", ErrCorrupt, err)
	}
	written = written.UTC()
	sum, err := hex.DecodeString(env.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return Shard{}, fmt.Errorf("%w: %q is not a SHA-256 sum", ErrCorrupt, env.SHA256)
	}
	// Only Encode's bytes: the same fields in another layout are refused,
	// so that what is accepted encodes again to itself.
	h := head(env.Replica, written)
	pre := slices.Concat(h, []byte(sumHead), []byte(hex.EncodeToString(sum)), []byte(sumTail))
	rest, ok := bytes.CutPrefix(data, pre)
	if !ok || len(rest) != len(env.Payload)+1 || !bytes.Equal(rest[:len(env.Payload)], env.Payload) || rest[len(env.Payload)] != '}' {
		return Shard{}, fmt.Errorf("%w: the envelope is not in its canonical form", ErrCorrupt)
	}
	if !bytes.Equal(checksum(h, env.Payload), sum) {
		return Shard{}, ErrChecksum
	}
	if err := ValidReplica(replicaFromKey); err != nil {
		return Shard{}, fmt.Errorf("%w: %w", ErrForeign, err)
	}
	if env.Replica != replicaFromKey {
		return Shard{}, fmt.Errorf("%w: replica %q's shard under replica %q's name", ErrForeign, env.Replica, replicaFromKey)
	}
	var p payload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return Shard{}, fmt.Errorf("%w: payload: %w", ErrCorrupt, err)
	}
	if !bytes.Equal(env.Payload, payloadBytes(p.Aggregate, p.Callees)) {
		return Shard{}, fmt.Errorf("%w: the payload is not in its canonical form", ErrCorrupt)
	}
	recs, err := decodeRecords(p.Aggregate)
	if err != nil {
		return Shard{}, err
	}
	callees, err := decodeCallees(p.Callees)
	if err != nil {
		return Shard{}, err
	}
	return Shard{Replica: env.Replica, Written: written, Records: recs, Callees: callees}, nil
}

// DefaultMaxBytes bounds a shard when Decode is given no bound: ample for a
// replica at the aggregate's default caps.
const DefaultMaxBytes = 256 << 20

func decodeRecords(state []byte) ([]aggregate.Record, error) {
	recs, err := aggregate.DecodeState(state)
	if errors.Is(err, aggregate.ErrStateVersion) {
		return nil, fmt.Errorf("%w: %w", ErrVersion, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if i := invalidRecord(recs); i >= 0 {
		return nil, fmt.Errorf("%w: record %d has an empty key field or is out of order", ErrCorrupt, i)
	}
	if !bytes.Equal(aggregate.EncodeState(recs), state) {
		return nil, fmt.Errorf("%w: the aggregate is not in its canonical form", ErrCorrupt)
	}
	return recs, nil
}

// decodeCallees checks that state is a callee state that restores, as
// MarshalState wrote it.
func decodeCallees(state []byte) ([]byte, error) {
	if string(state) == "null" {
		return nil, nil
	}
	l := lifecycle.New(lifecycle.Config{Limit: math.MaxInt})
	_, err := l.RestoreState(state)
	if errors.Is(err, lifecycle.ErrStateVersion) {
		return nil, fmt.Errorf("%w: %w", ErrVersion, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	again, err := l.MarshalState()
	if err != nil || !bytes.Equal(again, state) {
		return nil, fmt.Errorf("%w: the callee state is not in its canonical form", ErrCorrupt)
	}
	return state, nil
}

// Meta is what Publisher needs of a shard.
type Meta struct {
	Replica string
	Written time.Time
}

// Publisher returns the replica that publishes the merge: the lowest id
// (in byte order) among self, always counted, and the replicas whose shards
// were written within timeout of now. When the publisher stops, its shard
// goes stale after timeout and the next lowest takes over; every replica
// that lists the same shards at about the same time agrees on it.
//
// A shard written after now (its writer's clock ahead of ours) counts as
// fresh, but only up to timeout ahead: a shard dated further in the future
// would otherwise keep a replica that died the publisher until our clock
// caught up, and no one would publish meanwhile. Such a writer publishes
// alongside the one the others choose; both render the same bytes from the
// same shards.
func Publisher(shards []Meta, self string, now time.Time, timeout time.Duration) string {
	lowest := self
	for _, m := range shards {
		if age := now.Sub(m.Written); m.Replica < lowest && age <= timeout && age >= -timeout {
			lowest = m.Replica
		}
	}
	return lowest
}

// Merge returns the records of shards merged (aggregate.Merge) and their
// callee states in replica order, for restoring into a fresh lifecycle one
// after the other. Neither depends on the order of shards. A replica's
// shard given twice counts once: of its copies the latest written is kept
// (on a tie, the one with the lower bytes).
func Merge(shards []Shard) (records []aggregate.Record, callees [][]byte) {
	sorted := slices.Clone(shards)
	slices.SortFunc(sorted, func(a, b Shard) int {
		if c := strings.Compare(a.Replica, b.Replica); c != 0 {
			return c
		}
		if c := b.Written.Compare(a.Written); c != 0 {
			return c
		}
		return bytes.Compare(Encode(a), Encode(b))
	})
	sorted = slices.CompactFunc(sorted, func(a, b Shard) bool { return a.Replica == b.Replica })
	parts := make([][]aggregate.Record, len(sorted))
	for i, s := range sorted {
		parts[i] = s.Records
		if len(s.Callees) > 0 {
			callees = append(callees, s.Callees)
		}
	}
	return aggregate.Merge(parts...), callees
}
