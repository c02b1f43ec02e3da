// Package aggregate keeps the rolling set of observed accesses: who called
// whom, with which method, on which route, and when.
package aggregate

import (
	"cmp"
	"math"
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
	entries map[Key]*entry
	// perCaller and perSource count the keys of each (callee, caller)
	// pair and of each caller, so that one caller's flood of distinct
	// paths cannot crowd out everyone else.
	perCaller map[pair]int
	perSource map[string]int
	// names holds each string of the keys once: an identity is in every
	// key of its callers or callees, a route template in many callers'.
	names names
}

// entry is a key's Stats as held: times in Unix nanoseconds, a third of
// a time.Time.
type entry struct {
	count, buckets, values uint64
	first, last            int64
	origin                 uint8
}

// zeroTime stands for the zero time.Time, which has no Unix nanoseconds;
// it is before every other, as the zero time is.
const zeroTime = math.MinInt64

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (e *entry) stats() Stats {
	return Stats{Count: e.count, FirstSeen: fromNanos(e.first), LastSeen: fromNanos(e.last), Buckets: e.buckets, Values: e.values, Origin: e.origin}
}

// newEntry holds o as a key's first evidence, which counts at least once.
func newEntry(o *Stats) entry {
	return entry{
		count: max(o.Count, 1), buckets: o.Buckets, values: o.Values, origin: o.Origin,
		first: nanos(o.FirstSeen), last: nanos(o.LastSeen),
	}
}

// merge is Stats.Merge.
func (e *entry) merge(o *Stats) {
	e.count += max(o.Count, 1)
	e.buckets |= o.Buckets
	e.values |= o.Values
	e.origin = max(e.origin, o.Origin)
	e.last = max(e.last, nanos(o.LastSeen))
	e.first = min(e.first, nanos(o.FirstSeen))
}

// names interns strings with a count of the keys using each, so that a
// string no key uses any more is let go.
type names map[string]*name

type name struct {
	s    string
	refs int
}

// intern returns the held copy of s, taking a reference.
func (ns names) intern(s string) string {
	n, ok := ns[s]
	if !ok {
		// Clone so a held string never pins the span batch it came from.
		n = &name{s: strings.Clone(s)}
		ns[n.s] = n
	}
	n.refs++
	return n.s
}

func (ns names) release(s string) {
	if n := ns[s]; n.refs <= 1 {
		delete(ns, s)
	} else {
		n.refs--
	}
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
	return &Aggregate{limits: limits, entries: map[Key]*entry{}, perCaller: map[pair]int{}, perSource: map[string]int{}, names: names{}}
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
		a.observe(&obs[i], &dropped)
	}
	return dropped
}

// observe records o; the lock is held.
func (a *Aggregate) observe(o *Record, dropped *Dropped) {
	if e, ok := a.entries[o.Key]; ok {
		e.merge(&o.Stats)
		return
	}
	p := pair{o.Destination, o.Source}
	if l := a.limits; l.PerCaller > 0 && a.perCaller[p] >= l.PerCaller || l.PerSource > 0 && a.perSource[o.Source] >= l.PerSource {
		dropped.CallerFull++
		return
	}
	if len(a.entries) >= a.limits.Entries {
		dropped.Full++
		return
	}
	k := Key{
		Destination: a.names.intern(o.Destination),
		Source:      a.names.intern(o.Source),
		Method:      a.names.intern(o.Method),
		Route:       a.names.intern(o.Route),
	}
	e := newEntry(&o.Stats)
	a.entries[k] = &e
	a.perCaller[pair{k.Destination, k.Source}]++
	a.perSource[k.Source]++
}

// forget deletes k; the lock is held.
func (a *Aggregate) forget(k Key) {
	delete(a.entries, k)
	decrement(a.perCaller, pair{k.Destination, k.Source})
	decrement(a.perSource, k.Source)
	a.names.release(k.Destination)
	a.names.release(k.Source)
	a.names.release(k.Method)
	a.names.release(k.Route)
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
	c := nanos(cutoff)
	for k, e := range a.entries {
		if e.last < c {
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
	for k, e := range a.entries {
		out = append(out, Record{Key: k, Stats: e.stats()})
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
