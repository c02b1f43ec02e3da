// Package aggregate keeps the rolling set of observed accesses: who called
// whom, with which method, on which route, and when.
package aggregate

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Key identifies one learned access. Route is the canonical route form.
type Key struct {
	Destination string
	Source      string
	Method      string
	Route       string
}

// Stats is the evidence for a key. Count is informational: spans re-sent by
// Pixie raise it but never change which keys exist.
type Stats struct {
	Count     uint64
	FirstSeen time.Time
	LastSeen  time.Time
	// Buckets has bit i set when the key was seen in a time bucket whose
	// number is i modulo 64: distinct buckets are evidence that re-sent
	// spans cannot fake.
	Buckets uint64
	// Values has one bit set per observed concrete path (by a fixed hash),
	// so that the distinct values behind a wildcard can be estimated
	// without keeping them: they may be user IDs.
	Values uint64
	// Origin says what gave the route its shape (route.Origin); the
	// strongest seen is kept.
	Origin uint8
}

// Merge adds the evidence of o: counts add up (a record counts at least
// once), bits join, the earliest first and latest last sighting and the
// strongest origin stay.
func (s *Stats) Merge(o Stats) {
	s.Count += max(o.Count, 1)
	s.Buckets |= o.Buckets
	s.Values |= o.Values
	s.Origin = max(s.Origin, o.Origin)
	if o.LastSeen.After(s.LastSeen) {
		s.LastSeen = o.LastSeen
	}
	if o.FirstSeen.Before(s.FirstSeen) {
		s.FirstSeen = o.FirstSeen
	}
}

// Record is a key with its evidence.
type Record struct {
	Key
	Stats
}

// Aggregate is safe for concurrent use.
type Aggregate struct {
	limits Limits

	mu      sync.Mutex
	entries map[Key]*Stats
	// perCaller and perSource count the keys of each (callee, caller)
	// pair and of each caller, so that one caller's flood of distinct
	// paths cannot crowd out everyone else.
	perCaller map[pair]int
	perSource map[string]int
}

// pair is one caller of one callee.
type pair struct{ destination, source string }

// Limits cap the aggregate; 0 means no cap, except for Entries.
type Limits struct {
	// Entries caps all keys.
	Entries int
	// PerCaller caps the keys of one caller for one callee.
	PerCaller int
	// PerSource caps the keys of one caller across all its callees.
	PerSource int
}

// New returns an empty aggregate within limits.
func New(limits Limits) *Aggregate {
	return &Aggregate{limits: limits, entries: map[Key]*Stats{}, perCaller: map[pair]int{}, perSource: map[string]int{}}
}

// Dropped counts the new keys an Observe refused, by cap.
type Dropped struct {
	// Full: the aggregate held Limits.Entries keys.
	Full int
	// CallerFull: the caller held its share, for that callee or in all.
	CallerFull int
}

// Total is every refused key.
func (d Dropped) Total() int { return d.Full + d.CallerFull }

// Observe records accesses. A new key is refused when the aggregate, or its
// caller's share (for that callee or in all), is full; keys already held are
// always refreshed.
func (a *Aggregate) Observe(obs []Record) (dropped Dropped) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range obs {
		o := &obs[i]
		if s, ok := a.entries[o.Key]; ok {
			s.Merge(o.Stats)
			continue
		}
		p := pair{o.Destination, o.Source}
		if l := a.limits; l.PerCaller > 0 && a.perCaller[p] >= l.PerCaller || l.PerSource > 0 && a.perSource[o.Source] >= l.PerSource {
			dropped.CallerFull++
			continue
		}
		if len(a.entries) >= a.limits.Entries {
			dropped.Full++
			continue
		}
		// Clone so a map key never pins the span batch it came from.
		k := Key{
			Destination: strings.Clone(o.Destination),
			Source:      strings.Clone(o.Source),
			Method:      strings.Clone(o.Method),
			Route:       strings.Clone(o.Route),
		}
		st := o.Stats
		st.Count = max(st.Count, 1)
		a.entries[k] = &st
		a.perCaller[pair{k.Destination, k.Source}]++
		a.perSource[k.Source]++
	}
	return dropped
}

// forget deletes k; the lock is held.
func (a *Aggregate) forget(k Key) {
	delete(a.entries, k)
	decrement(a.perCaller, pair{k.Destination, k.Source})
	decrement(a.perSource, k.Source)
}

func decrement[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// Expire forgets keys last seen before cutoff and returns them.
func (a *Aggregate) Expire(cutoff time.Time) []Key {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gone []Key
	for k, s := range a.entries {
		if s.LastSeen.Before(cutoff) {
			a.forget(k)
			gone = append(gone, k)
		}
	}
	return gone
}

// Retain keeps the keys for which keep is true and returns how many it
// dropped.
func (a *Aggregate) Retain(keep func(Key) bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k := range a.entries {
		if !keep(k) {
			a.forget(k)
			n++
		}
	}
	return n
}

// Len returns the number of keys.
func (a *Aggregate) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// Snapshot returns every record, sorted by key.
func (a *Aggregate) Snapshot() []Record {
	a.mu.Lock()
	out := make([]Record, 0, len(a.entries))
	for k, s := range a.entries {
		out = append(out, Record{Key: k, Stats: *s})
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Record) int { return CompareKeys(x.Key, y.Key) })
	return out
}

// CompareKeys orders keys by destination, source, method and route.
func CompareKeys(x, y Key) int {
	return cmp.Or(
		strings.Compare(x.Destination, y.Destination),
		strings.Compare(x.Source, y.Source),
		strings.Compare(x.Method, y.Method),
		strings.Compare(x.Route, y.Route),
	)
}
