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
}

// Record is a key with its evidence.
type Record struct {
	Key
	Stats
}

// Aggregate is safe for concurrent use.
type Aggregate struct {
	maxEntries   int
	maxPerCaller int

	mu      sync.Mutex
	entries map[Key]*Stats
	// perCaller counts the keys of each (callee, caller) pair, so that one
	// caller's flood of distinct paths cannot crowd out everyone else.
	perCaller map[pair]int
}

// pair is one caller of one callee.
type pair struct{ destination, source string }

// New returns an empty aggregate that holds at most maxEntries keys, and at
// most maxPerCaller keys for any one caller of one callee (0: no such cap).
func New(maxEntries, maxPerCaller int) *Aggregate {
	return &Aggregate{maxEntries: maxEntries, maxPerCaller: maxPerCaller, entries: map[Key]*Stats{}, perCaller: map[pair]int{}}
}

// Dropped counts the new keys an Observe refused, by cap.
type Dropped struct {
	// Full: the aggregate held maxEntries keys.
	Full int
	// CallerFull: the caller held maxPerCaller keys for that callee.
	CallerFull int
}

// Total is every refused key.
func (d Dropped) Total() int { return d.Full + d.CallerFull }

// Observe records accesses. A new key is refused when the aggregate, or its
// caller's share for that callee, is full; keys already held are always
// refreshed.
func (a *Aggregate) Observe(obs []Record) (dropped Dropped) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range obs {
		o := &obs[i]
		if s, ok := a.entries[o.Key]; ok {
			s.Count += max(o.Count, 1)
			s.Buckets |= o.Buckets
			if o.LastSeen.After(s.LastSeen) {
				s.LastSeen = o.LastSeen
			}
			if o.FirstSeen.Before(s.FirstSeen) {
				s.FirstSeen = o.FirstSeen
			}
			continue
		}
		p := pair{o.Destination, o.Source}
		if a.maxPerCaller > 0 && a.perCaller[p] >= a.maxPerCaller {
			dropped.CallerFull++
			continue
		}
		if len(a.entries) >= a.maxEntries {
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
	}
	return dropped
}

// forget deletes k; the lock is held.
func (a *Aggregate) forget(k Key) {
	delete(a.entries, k)
	p := pair{k.Destination, k.Source}
	if a.perCaller[p] <= 1 {
		delete(a.perCaller, p)
	} else {
		a.perCaller[p]--
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
