package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/jsonstream"
)

// stateVersion changes when the encoding does; an unknown version is
// refused rather than misread.
const stateVersion = 1

// The encoding is {"version":1,"entries":[stateRecord...]}.
type stateRecord struct {
	Destination string `json:"d"`
	Source      string `json:"s"`
	Method      string `json:"m"`
	Route       string `json:"r"`
	Count       uint64 `json:"c"`
	FirstSeen   int64  `json:"f"` // Unix nanoseconds
	LastSeen    int64  `json:"l"`
	Buckets     uint64 `json:"b,omitempty"`
	Values      uint64 `json:"v,omitempty"`
	Origin      uint8  `json:"o,omitempty"`
}

// EncodeState encodes the records of a Snapshot, so that the aggregate can
// be restored after a restart. It writes one record at a time into a
// buffer sized for them all: a state is as large as the aggregate, so it
// is built once, from the snapshot a flush takes anyway.
func EncodeState(recs []Record) []byte {
	size := 64
	for i := range recs {
		k := &recs[i].Key
		size += len(k.Destination) + len(k.Source) + len(k.Method) + len(k.Route) + 160
	}
	var b bytes.Buffer
	b.Grow(size)
	fmt.Fprintf(&b, `{"version":%d,"entries":[`, stateVersion)
	enc := json.NewEncoder(&b)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			b.WriteByte(',')
		}
		err := enc.Encode(stateRecord{
			Destination: r.Destination, Source: r.Source, Method: r.Method, Route: r.Route,
			Count: r.Count, FirstSeen: nanos(r.FirstSeen), LastSeen: nanos(r.LastSeen), Buckets: r.Buckets,
			Values: r.Values, Origin: r.Origin,
		})
		if err != nil {
			// A stateRecord holds only strings and integers.
			panic("aggregate: " + err.Error())
		}
		b.Truncate(b.Len() - 1) // the newline Encode ends a value with
	}
	b.WriteString("]}")
	return b.Bytes()
}

// ErrStateVersion is the error of a state in an encoding this version
// cannot read: one written by a newer collector.
var ErrStateVersion = errors.New("aggregate state version is not supported")

// DecodeState returns the records of an encoded state in the order it
// holds them, which is sorted, each key once, when EncodeState wrote it
// from a Snapshot. A state of another version is an ErrStateVersion.
func DecodeState(data []byte) ([]Record, error) {
	var recs []Record
	if err := readState(data, func(r *Record) { recs = append(recs, *r) }); err != nil {
		return nil, err
	}
	return recs, nil
}

// RestoreState adds the records of an encoded state, as if observed again:
// restoring twice changes nothing that matters, and the cap still applies.
// It returns how many records the state held. The state is decoded a
// record at a time; a state that cannot be read restores nothing.
func (a *Aggregate) RestoreState(data []byte) (int, error) {
	restored := New(a.limits)
	var dropped Dropped
	n := 0
	err := readState(data, func(r *Record) {
		n++
		restored.observe(r, &dropped)
	})
	if err != nil {
		return 0, err
	}
	a.restore(restored)
	return n, nil
}

// Restore adds records already decoded (a shard's), as RestoreState adds
// those of an encoded state.
func (a *Aggregate) Restore(recs []Record) {
	restored := New(a.limits)
	var dropped Dropped
	for i := range recs {
		restored.observe(&recs[i], &dropped)
	}
	a.restore(restored)
}

// restore adds what restored observed.
func (a *Aggregate) restore(restored *Aggregate) {
	var dropped Dropped
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) == 0 {
		// The usual restore, at start: what was decoded is the aggregate.
		a.entries, a.perCaller, a.perSource, a.names = restored.entries, restored.perCaller, restored.perSource, restored.names
		return
	}
	for k, e := range restored.entries {
		a.observe(&Record{Key: k, Stats: e.stats()}, &dropped)
	}
}

// readState calls f with each record of data, and fails when data cannot
// be read or is of another version.
func readState(data []byte, f func(*Record)) error {
	version, err := decodeState(data, f)
	if err != nil {
		return fmt.Errorf("decoding aggregate state: %w", err)
	}
	if version != stateVersion {
		return fmt.Errorf("%w: version %d (want %d)", ErrStateVersion, version, stateVersion)
	}
	return nil
}

// decodeState calls f with each record of data, which restored (an
// aggregate no one else holds yet) or DecodeState collects, and returns the
// state's version. Like json.Unmarshal into a struct, it matches field
// names in any case and skips unknown ones.
func decodeState(data []byte, f func(*Record)) (version int, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	err = jsonstream.Fields(dec, func(field string) error {
		switch {
		case strings.EqualFold(field, "version"):
			return dec.Decode(&version)
		case strings.EqualFold(field, "entries"):
			return decodeEach(dec, func(r *stateRecord) {
				f(&Record{
					Key: Key{Destination: r.Destination, Source: r.Source, Method: r.Method, Route: r.Route},
					Stats: Stats{Count: r.Count, FirstSeen: fromNanos(r.FirstSeen), LastSeen: fromNanos(r.LastSeen),
						Buckets: r.Buckets, Values: r.Values, Origin: r.Origin},
				})
			})
		}
		return jsonstream.Skip(dec)
	})
	if err != nil {
		return 0, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, errors.New("data after the state")
	}
	return version, nil
}

// decodeEach decodes a JSON array (or null) of records, one at a time.
func decodeEach(dec *json.Decoder, f func(*stateRecord)) error {
	t, err := dec.Token()
	if err != nil || t == nil {
		return err
	}
	if t != json.Delim('[') {
		return fmt.Errorf("entries: want an array, got %v", t)
	}
	for dec.More() {
		var r stateRecord
		if err := dec.Decode(&r); err != nil {
			return err
		}
		f(&r)
	}
	return jsonstream.Expect(dec, json.Delim(']'))
}
