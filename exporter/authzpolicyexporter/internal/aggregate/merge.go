package aggregate

import "slices"

// Merge returns the union of parts, sorted by CompareKeys, as one
// aggregate without caps that had observed every record of every part
// would hold it: the evidence of a key held by several parts is merged
// (counts added, each record counting at least once; buckets and values
// joined; the earliest first and the latest last sighting; the strongest
// origin). The result depends neither on the order of the parts nor on the
// order of the records within a part, and merging is commutative and
// associative.
//
// Merge adds counts, so it is not idempotent: a part merged with itself
// counts twice. Idempotence belongs to whoever chooses the parts, for
// instance one part per replica however often its shard is read.
//
// The parts are not changed; the result shares their key strings.
func Merge(parts ...[]Record) []Record {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	all := make([]Record, 0, n)
	for _, p := range parts {
		all = append(all, p...)
	}
	// Sorted, a key's records are adjacent; the order among them does not
	// matter since every field merges commutatively.
	slices.SortFunc(all, func(x, y Record) int { return CompareKeys(x.Key, y.Key) })
	out := all[:0]
	for i := 0; i < len(all); {
		e := newEntry(&all[i].Stats)
		j := i + 1
		for ; j < len(all) && all[j].Key == all[i].Key; j++ {
			e.merge(&all[j].Stats)
		}
		out = append(out, Record{Key: all[i].Key, Stats: e.stats()})
		i = j
	}
	return slices.Clip(out)
}
