// Package keyed is the keyed-state primitive that every keyed stateful step
// is built on (op's Stateful family and joins, window's operators): which
// worker owns a key, the per-worker table of key states with its change
// tracking, snapshot rows and resume parsing, a timer heap, and the key
// order of end-of-input flushes. Fixes to any of these land here once.
//
// # Key groups
//
// A key's hash (keys.Ops.Hash, XXH64, frozen) picks its key group:
// KeyGroup(hash, groups) is hash mod groups. Key groups are the unit that
// moves between owners: in one process there is one key group per worker,
// so a key's owner is its key group (Owner); in a consumer-group run
// (DESIGN section 4) they are the partitions of the internal topics. Both
// the exchange that routes items and the resume that routes recovered rows
// go through Owner, so they always agree.
package keyed

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/internal/plan"
)

// KeyGroup is the key group of a key hash among groups key groups.
// Recovery data and internal topic partitions depend on it: it must never
// change.
func KeyGroup(hash uint64, groups int) int { return int(hash % uint64(groups)) }

// Owner is the worker that owns a key hash in a run of workers workers:
// in one process every worker is one key group.
func Owner(hash uint64, workers int) int { return KeyGroup(hash, workers) }

// Router returns the exchange route of a keyed input whose items are read
// with key: the owner of each item's key among workers. key takes the
// item by value: a pointer to the route's argument would make every item
// escape to the heap.
func Router[K keys.Key, T any](ops keys.Ops[K], workers int, key func(T) K) func(T) int {
	hash := ops.Hash
	return func(t T) int { return Owner(hash(key(t)), workers) }
}

// RouteText routes a recovered key, in its text form, to its owner; it is
// a plan.State's Route.
func RouteText[K keys.Key](ops keys.Ops[K]) func(key string, workers int) (int, error) {
	return func(key string, workers int) (int, error) {
		k, err := ops.Parse(key)
		if err != nil {
			return 0, err
		}
		return Owner(ops.Hash(k), workers), nil
	}
}

// Entry is one key's state in a Table, with its bookkeeping. Callers keep
// pointers to entries: an entry stays where it is until it is deleted.
type Entry[K keys.Key, S any] struct {
	Key   K
	State S

	at   int64        // wake time in the heap, Unix ns (valid when hidx >= 0)
	hidx int          // index in the timer heap, -1 when not scheduled
	mark engine.Epoch // epoch in which the key was last recorded changed
}

// Wake is the time the entry is scheduled at, and whether it is.
func (e *Entry[K, S]) Wake() (int64, bool) { return e.at, e.hidx >= 0 }

// Table is the state of one keyed step on one worker: a map from key to
// entry, the keys changed in the open epoch (when snapshots are on), and a
// min-heap of entries by wake time. It is not safe for concurrent use.
type Table[K keys.Key, S any] struct {
	Ops keys.Ops[K]

	m         map[K]*Entry[K, S]
	timers    []*Entry[K, S]
	snapshots bool
	changed   []K
	rewrite   engine.Epoch // > 0: Resume records every key changed in this epoch
	// repeats says changed may list a key twice: the once-per-epoch mark
	// of an entry does not cover a key without one, or a key deleted and
	// added again (a new entry).
	repeats bool
}

// RewriteOnResume makes the next Resume record every recovered key as
// changed in epoch e (the execution's first), whether or not it keeps an
// entry, so that the epoch's snapshot writes all of them again: a state
// migration converted them, and no row of the old type may stay behind.
// It does nothing without snapshots.
func (t *Table[K, S]) RewriteOnResume(e engine.Epoch) {
	if t.snapshots {
		t.rewrite = e
	}
}

// NewTable makes an empty table. With snapshots, changes are tracked for
// Rows.
func NewTable[K keys.Key, S any](ops keys.Ops[K], snapshots bool) *Table[K, S] {
	return &Table[K, S]{Ops: ops, m: map[K]*Entry[K, S]{}, snapshots: snapshots}
}

// Len is the number of keys with state.
func (t *Table[K, S]) Len() int { return len(t.m) }

// Get returns k's entry, or nil.
func (t *Table[K, S]) Get(k K) *Entry[K, S] { return t.m[k] }

// Add makes an entry for k (which must have none) and returns it.
func (t *Table[K, S]) Add(k K) *Entry[K, S] {
	e := &Entry[K, S]{Key: k, hidx: -1}
	t.m[k] = e
	return e
}

// Delete removes e from the table and from the timer heap.
func (t *Table[K, S]) Delete(e *Entry[K, S]) {
	if t.m[e.Key] == e {
		delete(t.m, e.Key)
	}
	t.Unschedule(e)
	t.repeats = t.snapshots
}

// Changed records that key k (whose entry is e, or nil if it has none now)
// changed in epoch, so that the epoch's snapshot writes it. It does
// nothing without snapshots; a key is listed once per epoch when its entry
// stays.
func (t *Table[K, S]) Changed(k K, e *Entry[K, S], epoch engine.Epoch) {
	if !t.snapshots {
		return
	}
	if e == nil || e.mark != epoch {
		t.changed = append(t.changed, k)
		if e != nil {
			e.mark = epoch
		} else {
			t.repeats = true
		}
	}
}

// Rows returns the recovery rows of the keys changed since the last call,
// and forgets them: encode gives the value of a key that has an entry;
// keys without one become deletions. encodeGone, if not nil, may still
// give a value for a key without an entry (ok false: a deletion). An
// encoding error is returned with the key's text.
func (t *Table[K, S]) Rows(step string, encode func(e *Entry[K, S]) ([]byte, error),
	encodeGone func(k K) (b []byte, ok bool, err error)) (rows []engine.Row, key string, err error) {
	if len(t.changed) == 0 {
		return nil, "", nil
	}
	rows, key, err = engine.ChangedRows(step, t.changed, t.repeats, t.Ops.Format, func(k K) ([]byte, bool, error) {
		e, ok := t.m[k]
		if !ok {
			if encodeGone != nil {
				return encodeGone(k)
			}
			return nil, false, nil
		}
		b, err := encode(e)
		return b, true, err
	})
	clear(t.changed)
	t.changed = t.changed[:0]
	t.repeats = false
	return rows, key, err
}

// Resume loads recovered rows, given in blocks. decode fills a new entry from a row's value
// (and may schedule it); keep false leaves the key out of the table, and
// Resume may then hand the same entry to decode again for the next row, so
// decode must not keep a pointer to an entry it does not keep. A key that
// does not parse, or a value that does not decode, is an error naming the
// key and stateType.
//
// Entries are allocated resumeChunk at a time rather than one by one: a
// state of a million keys is then a few thousand objects for the garbage
// collector instead of a million. A chunk stays allocated while any of its
// entries is referenced, so a key deleted later frees its entry's memory
// only when the other keys of its chunk are gone too (or never, if one of
// them lives on); keys added later get entries of their own.
func (t *Table[K, S]) Resume(blocks [][]engine.StateRow, stateType string, decode func(e *Entry[K, S], raw []byte) (keep bool, err error)) error {
	left := 0 // rows not loaded yet
	for _, b := range blocks {
		left += len(b)
	}
	if left == 0 {
		return nil
	}
	if len(t.m) == 0 {
		t.m = make(map[K]*Entry[K, S], left)
	}
	var chunk []Entry[K, S]
	per := resumeChunk[K, S]()
	for _, rows := range blocks {
		for _, row := range rows {
			k, err := t.Ops.Parse(row.Key)
			if err != nil {
				return engine.StaleState(fmt.Errorf("key %q: recovered key does not parse: %w", row.Key, err))
			}
			if len(chunk) == 0 {
				chunk = make([]Entry[K, S], min(per, left))
			}
			left--
			e := &chunk[0]
			*e = Entry[K, S]{Key: k, hidx: -1}
			keep, err := decode(e, row.Value)
			if err != nil {
				t.Unschedule(e)
				return engine.StaleState(fmt.Errorf("key %q: recovered state does not decode into %s: %w", row.Key, stateType, err))
			}
			if keep {
				t.m[k] = e
				chunk = chunk[1:]
			} else {
				t.Unschedule(e)
				*e = Entry[K, S]{} // reused by the next row; drop what decode left in it
			}
			if t.rewrite > 0 {
				t.changed = append(t.changed, k)
				if keep {
					e.mark = t.rewrite
				} else {
					t.repeats = true // a new entry for k would be listed again
				}
			}
		}
	}
	t.rewrite = 0
	return nil
}

// resumeChunk is how many entries Resume allocates at once: about 16 KiB
// of them, at most 256 and at least 1, so that a chunk that outlives most
// of its keys holds little memory.
func resumeChunk[K keys.Key, S any]() int {
	size := int(reflect.TypeFor[Entry[K, S]]().Size())
	return max(1, min(256, 16<<10/max(size, 1)))
}

// Sorted returns every entry in key order: end-of-input flushes go through
// it so that what they emit does not depend on map order.
func (t *Table[K, S]) Sorted() []*Entry[K, S] {
	es := make([]*Entry[K, S], 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *Entry[K, S]) int { return cmp.Compare(a.Key, b.Key) })
	return es
}

// Reset forgets every entry and timer (at the end of input).
func (t *Table[K, S]) Reset() {
	clear(t.m)
	clear(t.timers)
	t.timers = t.timers[:0]
}

// Schedule makes sure e wakes no later than at (Unix ns). An entry already
// scheduled earlier is left in place: a key that pushes its wake-up back on
// every item (a session gap) costs nothing, and its caller finds nothing
// due when the earlier wake-up comes and schedules again.
func (t *Table[K, S]) Schedule(e *Entry[K, S], at int64) {
	switch {
	case e.hidx < 0:
		e.at = at
		e.hidx = len(t.timers)
		t.timers = append(t.timers, e)
		t.up(e.hidx)
	case at < e.at:
		e.at = at
		t.up(e.hidx)
	}
}

// Unschedule takes e out of the timer heap, if it is there.
func (t *Table[K, S]) Unschedule(e *Entry[K, S]) {
	i := e.hidx
	if i < 0 {
		return
	}
	last := len(t.timers) - 1
	if i != last {
		t.swap(i, last)
	}
	t.timers[last] = nil
	t.timers = t.timers[:last]
	e.hidx = -1
	if i != last {
		t.down(i)
		t.up(i)
	}
}

// Next is the earliest wake time, if any entry is scheduled.
func (t *Table[K, S]) Next() (int64, bool) {
	if len(t.timers) == 0 {
		return 0, false
	}
	return t.timers[0].at, true
}

// Due reports whether an entry is scheduled at or before now.
func (t *Table[K, S]) Due(now int64) bool { return len(t.timers) > 0 && t.timers[0].at <= now }

// PopDue takes the earliest entry scheduled at or before now out of the
// heap and returns it, or nil. Entries come out in wake-time order.
func (t *Table[K, S]) PopDue(now int64) *Entry[K, S] {
	if len(t.timers) == 0 || t.timers[0].at > now {
		return nil
	}
	e := t.timers[0]
	t.Unschedule(e)
	return e
}

// Timers is the number of scheduled entries.
func (t *Table[K, S]) Timers() int { return len(t.timers) }

func (t *Table[K, S]) swap(i, j int) {
	h := t.timers
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}

func (t *Table[K, S]) up(i int) {
	h := t.timers
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *Table[K, S]) down(i int) {
	h := t.timers
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			c = r
		}
		if h[i].at <= h[c].at {
			return
		}
		t.swap(i, c)
		i = c
	}
}

// Nanos is t in Unix nanoseconds, clamped to the int64 range, for the
// timer heap.
func Nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// StepState describes the recoverable state of a keyed step: typ is
// recorded in recovery data, stateT is checked for encodability before the
// run, and recovered keys are routed to their owners.
func StepState[K keys.Key](ops keys.Ops[K], typ string, stateT reflect.Type) *plan.State {
	return &plan.State{
		Type:  typ,
		Check: func() error { return codec.CheckType(stateT) },
		Shape: func() string { return codec.Shape(stateT) },
		Route: RouteText(ops),
		Keyed: true,
	}
}

// Connect attaches input i of a keyed step to gate g: items are read with
// key and exchanged to the worker that owns their key.
func Connect[K keys.Key, T any](b *engine.Builder, g *engine.Gate, i int, ops keys.Ops[K], key func(T) K, handle func([]T)) {
	if b.Worker().Remote() == nil {
		engine.Connect(b, g, i, Router(ops, b.Worker().Workers, key), handle)
		return
	}
	// Group mode: items cross processes through the step's repartition
	// topic, encoded like state.
	if err := codec.CheckType(reflect.TypeFor[T]()); err != nil {
		b.Worker().Fail(b.StepID(), "", fmt.Errorf("input %d: items of type %s cannot cross processes in group mode: %w", i, reflect.TypeFor[T](), err))
	}
	hash := ops.Hash
	engine.ConnectKeyed(b, g, i, func(t T) uint64 { return hash(key(t)) }, handle,
		func(t T) ([]byte, error) { return codec.Marshal(t) },
		func(raw []byte) (T, error) {
			var t T
			err := codec.Unmarshal(raw, &t)
			return t, err
		})
}

// Snapshot records the rows of the keys changed in epoch e (see Rows) on
// worker w; a state that does not encode fails the step, naming the key.
func (t *Table[K, S]) Snapshot(w *engine.Worker, step string, e engine.Epoch, encode func(e *Entry[K, S]) ([]byte, error),
	encodeGone func(k K) ([]byte, bool, error)) {
	rows, key, err := t.Rows(step, encode, encodeGone)
	if err != nil {
		w.Fail(step, key, fmt.Errorf("snapshot: state does not encode: %w", err))
	}
	if len(rows) > 0 {
		w.Record(e, rows...)
	}
}
