package recovery

import (
	"context"
	"fmt"
	"math"
	"sort"
)

// Entry is the stored state of one key of one step, as [Store.StateAt]
// returns it: Value is the encoded state (for an input or output step, the
// position of the partition named by Key), Epoch the epoch after which it was
// written, that is when the key last changed.
type Entry struct {
	Step  string
	Key   string
	Epoch uint64
	Value []byte
}

// Committed returns the range of epochs whose committed state the store
// still holds whole: [Store.StateAt] of any epoch in [oldest, newest] gives
// the state every key had after that epoch. newest is the last committed
// epoch (the resume epoch minus one); oldest is newest unless the backup
// interval (-b) kept older rows, bounded by what garbage collection deleted.
// ok is false when no epoch was committed yet. A directory whose partitions
// disagree (see [Store.Check]) is an error.
func (s *Store) Committed() (oldest, newest uint64, ok bool, err error) {
	v, err := s.Check()
	if err != nil {
		return 0, 0, false, err
	}
	if err := v.Err(); err != nil {
		return 0, 0, false, err
	}
	if v.Resume.Fresh || v.Resume.Epoch <= 1 {
		return 0, 0, false, nil
	}
	newest = v.Resume.Epoch - 1
	oldest = 1
	for _, p := range v.Partitions {
		if p.GCEpoch > 1 {
			oldest = max(oldest, p.GCEpoch-1)
		}
	}
	return min(oldest, newest), newest, true, nil
}

// StateAt returns the state every key had after epoch asOf, sorted by step
// and key: for each (step, key), its newest row at or before asOf, keys whose
// newest such row is a deletion left out. step, when not "", selects one step
// id; keys, when given, select those keys. asOf should be in the range
// [Store.Committed] returns: later rows are not committed, and before it
// garbage collection may have removed rows that the state needs.
func (s *Store) StateAt(asOf uint64, step string, keys ...string) ([]Entry, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if asOf >= math.MaxInt64 {
		asOf = math.MaxInt64 - 1
	}
	var want map[string]bool
	if len(keys) > 0 {
		want = make(map[string]bool, len(keys))
		for _, k := range keys {
			want[k] = true
		}
	}
	parts := make([][]Entry, len(s.parts))
	err := s.each(func(p *partition) error {
		var out []Entry
		var deleted []bool
		err := scanPart(context.Background(), p.db, p.format, int64(asOf)+1, step, nil, func(r *logRow) error {
			if want != nil && !want[r.key] {
				return nil
			}
			e := Entry{Step: r.step, Key: r.key, Epoch: uint64(r.epoch), Value: r.value}
			if n := len(out); n > 0 && out[n-1].Step == e.Step && out[n-1].Key == e.Key {
				out[n-1], deleted[n-1] = e, r.deleted
				return nil
			}
			out = append(out, e)
			deleted = append(deleted, r.deleted)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read state after epoch %d: %w", asOf, err)
		}
		kept := out[:0]
		for i, e := range out {
			if !deleted[i] {
				kept = append(kept, e)
			}
		}
		parts[p.index] = kept
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recovery: %s: %w", s.dir, err)
	}
	var all []Entry
	for _, p := range parts {
		all = append(all, p...)
	}
	less := func(i, j int) bool {
		if all[i].Step != all[j].Step {
			return all[i].Step < all[j].Step
		}
		return all[i].Key < all[j].Key
	}
	// Each partition's entries are sorted already: one partition needs no
	// sort, and checking is cheap next to sorting a large state.
	if !sort.SliceIsSorted(all, less) {
		sort.Slice(all, less)
	}
	return all, nil
}
