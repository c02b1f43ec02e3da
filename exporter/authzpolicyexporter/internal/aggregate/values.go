package aggregate

import (
	"math"
	"math/bits"
)

// ValueBit is the bit of Stats.Values for one concrete path. The hash is
// fixed (FNV-1a), so that saved states and other collectors agree on it.
func ValueBit(path string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(path); i++ {
		h ^= uint64(path[i])
		h *= 1099511628211
	}
	return 1 << (h % 64)
}

// DistinctValues estimates how many distinct paths set the bits of v
// (linear counting over 64 bits): exact while they are few, about right up
// to a hundred, and saturating at 266 when every bit is set.
func DistinctValues(v uint64) int {
	zero := 64 - bits.OnesCount64(v)
	if zero == 64 {
		return 0
	}
	if zero == 0 {
		zero = 1 // saturated: the largest estimate a 64-bit sketch gives
	}
	return int(math.Round(64 * math.Log(64/float64(zero))))
}
