package recovery

import (
	"slices"
	"strings"
)

// Sorting an epoch's rows. Rows come in the order a step changed its keys,
// and the change log wants each step's batch in key order. A comparison
// sort of n strings costs about log2(n) string comparisons per row (some
// 250 ns per row for 10k keys); sortRows instead sorts an 8-byte prefix of
// each key taken after the prefix all keys share (so that "user-1234"
// sorts on "1234"), with an LSD radix sort, and compares whole keys only
// among rows whose prefixes are equal.

// sortKey is a row (i) with the 8 bytes of its key after the common
// prefix, big-endian, zero-padded.
type sortKey struct {
	p uint64
	i int32
}

// rowSorter holds sortRows' scratch, kept from one epoch to the next.
type rowSorter struct {
	keys, tmp []sortKey
	byStep    []int32
}

// sortRows orders idx, indices into rows, by step and key, and keeps only
// the last index of each (step, key): within one WriteEpoch the last row
// of a key wins. It sorts in place and returns idx shortened.
func (s *rowSorter) sortRows(rows []Row, idx []int32) []int32 {
	if len(idx) < 2 {
		return idx
	}
	ascending := true
	for k := 1; k < len(idx); k++ {
		a, b := &rows[idx[k-1]], &rows[idx[k]]
		if a.Step > b.Step || a.Step == b.Step && a.Key >= b.Key {
			ascending = false
			break
		}
	}
	if ascending {
		return idx // sorted already, so without repeats
	}
	step := rows[idx[0]].Step
	oneStep := true
	for _, i := range idx[1:] {
		if rows[i].Step != step {
			oneStep = false
			break
		}
	}
	if oneStep {
		s.sortKeys(rows, idx)
	} else {
		// Group by step (stably), then sort each group.
		var steps []string
		for _, i := range idx {
			if !slices.Contains(steps, rows[i].Step) {
				steps = append(steps, rows[i].Step)
				if len(steps) > 64 {
					break // many steps: sort them below
				}
			}
		}
		if len(steps) > 64 {
			steps = steps[:0]
			for _, i := range idx {
				steps = append(steps, rows[i].Step)
			}
		}
		slices.Sort(steps)
		steps = slices.Compact(steps)
		rank := func(i int32) int { r, _ := slices.BinarySearch(steps, rows[i].Step); return r }
		counts := make([]int32, len(steps)+1)
		for _, i := range idx {
			counts[rank(i)+1]++
		}
		for r := 1; r < len(counts); r++ {
			counts[r] += counts[r-1]
		}
		s.byStep = slices.Grow(s.byStep[:0], len(idx))[:len(idx)]
		next := slices.Clone(counts[:len(steps)])
		for _, i := range idx {
			r := rank(i)
			s.byStep[next[r]] = i
			next[r]++
		}
		copy(idx, s.byStep)
		for r := range steps {
			s.sortKeys(rows, idx[counts[r]:counts[r+1]])
		}
	}
	// Within one call the last row of a key wins: keep only it.
	keep := idx[:0]
	for k, i := range idx {
		if k+1 < len(idx) && rows[idx[k+1]].Step == rows[i].Step && rows[idx[k+1]].Key == rows[i].Key {
			continue
		}
		keep = append(keep, i)
	}
	return keep
}

// sortKeys sorts idx, rows of one step, by key, stably.
func (s *rowSorter) sortKeys(rows []Row, idx []int32) {
	if len(idx) < 2 {
		return
	}
	first := rows[idx[0]].Key
	common := len(first)
	for _, i := range idx[1:] {
		k := rows[i].Key
		common = min(common, len(k))
		for j := range common {
			if k[j] != first[j] {
				common = j
				break
			}
		}
	}
	keys := slices.Grow(s.keys[:0], len(idx))
	var counts [8][256]int32
	for _, i := range idx {
		k := rows[i].Key[common:]
		var p uint64
		if len(k) >= 8 {
			p = uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
				uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8 | uint64(k[7])
		} else {
			for j := range 8 {
				p <<= 8
				if j < len(k) {
					p |= uint64(k[j])
				}
			}
		}
		for d := range 8 {
			counts[d][byte(p>>(8*d))]++
		}
		keys = append(keys, sortKey{p: p, i: i})
	}
	tmp := slices.Grow(s.tmp[:0], len(keys))[:len(keys)]
	s.keys, s.tmp = keys, tmp // kept for the next call, whichever ends up where
	n := int32(len(keys))
	for d := range 8 { // least significant byte first; each pass is stable
		c := &counts[d]
		if c[byte(keys[0].p>>(8*d))] == n {
			continue // every key has the same byte here
		}
		var sum int32
		for b := range c {
			c[b], sum = sum, sum+c[b]
		}
		for _, e := range keys {
			b := byte(e.p >> (8 * d))
			tmp[c[b]] = e
			c[b]++
		}
		keys, tmp = tmp, keys
	}
	// Equal prefixes: compare the keys (and keep the call's order).
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && keys[hi].p == keys[lo].p {
			hi++
		}
		if hi-lo > 1 {
			slices.SortFunc(keys[lo:hi], func(a, b sortKey) int {
				if c := strings.Compare(rows[a.i].Key, rows[b.i].Key); c != 0 {
					return c
				}
				return int(a.i - b.i)
			})
		}
		lo = hi
	}
	for k, e := range keys {
		idx[k] = e.i
	}
}
