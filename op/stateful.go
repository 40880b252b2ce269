package op

import (
	"container/heap"
	"fmt"
	"reflect"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/internal/plan"
)

// Context is what a stateful operator's callbacks use to emit items and
// ask for wake-ups. It is valid only during the callback it is passed to.
type Context[K runnel.Key, W any] struct {
	key    K
	out    []runnel.KV[K, W]
	now    time.Time
	clock  engine.Clock
	wake   time.Time
	rewake bool
	epoch  engine.Epoch
	worker int
}

// Key is the key whose state the callback is handling.
func (c *Context[K, W]) Key() K { return c.key }

// Emit sends w downstream, keyed by the current key.
func (c *Context[K, W]) Emit(w W) {
	c.out = append(c.out, runnel.KV[K, W]{Key: c.key, Value: w})
}

// NotifyAt asks for the OnNotify callback of this key at t (by the worker's
// clock). A later call replaces an earlier one; the zero time cancels it.
// The request is dropped if the callback discards the key's state.
func (c *Context[K, W]) NotifyAt(t time.Time) {
	c.wake = t
	c.rewake = true
}

// Now is the worker's clock time for this batch.
func (c *Context[K, W]) Now() time.Time {
	if c.now.IsZero() {
		c.now = c.clock.Now()
	}
	return c.now
}

// Epoch is the epoch the items emitted now belong to.
func (c *Context[K, W]) Epoch() uint64 { return c.epoch }

// Worker is the index of the worker running the callback.
func (c *Context[K, W]) Worker() int { return c.worker }

// Hook adds an optional callback to Stateful: OnNotify or OnEOF.
type Hook[K runnel.Key, S, W any] struct {
	notify func(c *Context[K, W], state S) (S, bool)
	eof    func(c *Context[K, W], state S) (S, bool)
}

// OnNotify is called for a key at the time its callback last asked for
// with Context.NotifyAt. It returns the new state and whether to keep it.
func OnNotify[K runnel.Key, S, W any](fn func(c *Context[K, W], state S) (S, bool)) Hook[K, S, W] {
	return Hook[K, S, W]{notify: fn}
}

// OnEOF is called for every key that holds state when the input ends, to
// flush what it holds. It returns the new state and whether to keep it.
//
// It is not called on a graceful stop (SIGINT, SIGTERM, runnel.WithStop):
// the input did not end, and the next run resumes the state as it was at
// the stop's barrier.
//
// The state a later run resumes from is the one snapshotted at the last
// barrier before the end, so a continuation (more input in a later run)
// resumes as if the end had not happened.
func OnEOF[K runnel.Key, S, W any](fn func(c *Context[K, W], state S) (S, bool)) Hook[K, S, W] {
	return Hook[K, S, W]{eof: fn}
}

// Stateful is the general keyed stateful operator on which the others are
// built: onItem runs for each item with that key's state (ok says whether
// there was any) and returns the new state and whether to keep it;
// returning false discards the key's state. Items are emitted with
// Context.Emit. Hooks add per-key wake-ups (OnNotify) and end-of-input
// handling (OnEOF).
//
// It is commonly used for: sessionization, custom aggregations, timeouts,
// anything that needs per-key memory and timers.
//
// Each key's state lives on the one worker that owns the key. With
// recovery on, the keys changed in an epoch are snapshotted at its end (the
// state type S must be encodable: exported fields, no funcs or channels;
// this is checked before the run starts).
func Stateful[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	onItem func(c *Context[K, W], state S, ok bool, value V) (S, bool), hooks ...Hook[K, S, W]) runnel.Stream[runnel.KV[K, W]] {
	var logic statefulLogic[K, V, S, W]
	logic.item = onItem
	for _, h := range hooks {
		if h.notify != nil {
			logic.notify = h.notify
		}
		if h.eof != nil {
			logic.eof = h.eof
		}
	}
	return addStateful(scopeOf(up), stepID, "stateful", up, logic)
}

// StatefulMap keeps a state per key and maps each item with it. mapper
// receives the key's state (ok is false when the key has none yet; state is
// then the zero value) and the item, and returns the new state, whether to
// keep it (false discards the key's state), and the item to emit.
//
// It is commonly used for: running totals, deduplication, per-key
// counters, anything that needs memory of earlier items of the same key.
func StatefulMap[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	mapper func(state S, ok bool, value V) (S, bool, W)) runnel.Stream[runnel.KV[K, W]] {
	logic := statefulLogic[K, V, S, W]{item: func(c *Context[K, W], s S, ok bool, v V) (S, bool) {
		s, keep, w := mapper(s, ok, v)
		c.Emit(w)
		return s, keep
	}}
	return addStateful(scopeOf(up), stepID, "stateful_map", up, logic)
}

type statefulLogic[K runnel.Key, V, S, W any] struct {
	item   func(c *Context[K, W], state S, ok bool, value V) (S, bool)
	notify func(c *Context[K, W], state S) (S, bool)
	eof    func(c *Context[K, W], state S) (S, bool)
	// combine, when set, merges the values of a batch per key before the
	// exchange (ReduceFinal's pre-aggregation).
}

// encodeRecord encodes stateRecord{state, wake} without reflecting over the
// wrapper: the CBOR map header and the "state" key are written by hand
// around the state's own encoding. It gives the same bytes as
// codec.Marshal(stateRecord) (tested), which stays the decoder.
func encodeRecord[S any](state S, wake time.Time) ([]byte, error) {
	if !wake.IsZero() {
		return codec.Marshal(stateRecord[S]{State: state, NotifyAt: &wake})
	}
	b, err := codec.Marshal(state)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(recordHeader)+len(b))
	return append(append(out, recordHeader...), b...), nil
}

// recordHeader is a one-entry CBOR map (0xa1) with the text key "state".
var recordHeader = []byte{0xa1, 0x65, 's', 't', 'a', 't', 'e'}

// stateRecord is how a key's state is stored in recovery data.
type stateRecord[S any] struct {
	State    S          `cbor:"state"`
	NotifyAt *time.Time `cbor:"notify_at,omitempty"`
}

func addStateful[K runnel.Key, V, S, W any](sc plan.Scope, id, kind string, up runnel.Stream[runnel.KV[K, V]], logic statefulLogic[K, V, S, W]) runnel.Stream[runnel.KV[K, W]] {
	connect := func(b *engine.Builder, i int, n *statefulNode[K, V, S, W]) {
		workers := uint64(b.Worker().Workers)
		engine.Connect(b, n.gate, i, func(kv runnel.KV[K, V]) int { return int(n.ops.Hash(kv.Key) % workers) }, n.handle)
	}
	return addStatefulSides(sc, id, kind, logic, []sideConnect[K, V, S, W]{connect}, up)
}

type entry[S any] struct {
	state  S
	wake   time.Time    // when OnNotify is due (zero: never)
	queued time.Time    // the key's entry in the timer heap (zero: none)
	mark   engine.Epoch // epoch in which it was last marked changed
}

type statefulNode[K runnel.Key, V, S, W any] struct {
	w         *engine.Worker
	step      string
	logic     statefulLogic[K, V, S, W]
	ops       keys.Ops[K]
	state     map[K]*entry[S]
	gate      *engine.Gate
	out       *engine.Outlet[runnel.KV[K, W]]
	ctx       Context[K, W]
	snapshots bool
	changed   []K // keys changed in the open epoch (with snapshots)
	timers    wakeHeap[K]
}

func (n *statefulNode[K, V, S, W]) handle(batch []runnel.KV[K, V]) {
	c := &n.ctx
	c.now = time.Time{}
	c.epoch = n.gate.Epoch()
	for i := range batch {
		kv := &batch[i]
		e := n.state[kv.Key]
		var s S
		if e != nil {
			s = e.state
		}
		c.key = kv.Key
		c.rewake = false
		s, keep := n.logic.item(c, s, e != nil, kv.Value)
		n.apply(kv.Key, e, s, keep)
	}
	n.flush()
}

// apply stores what a callback returned for key (e is its entry, if any).
func (n *statefulNode[K, V, S, W]) apply(key K, e *entry[S], s S, keep bool) {
	c := &n.ctx
	if keep {
		if e == nil {
			e = &entry[S]{}
			n.state[key] = e
		}
		e.state = s
		if c.rewake {
			n.schedule(key, e, c.wake)
		}
	} else if e != nil {
		delete(n.state, key)
	}
	if n.snapshots {
		if e == nil || e.mark != c.epoch {
			n.changed = append(n.changed, key)
			if e != nil {
				e.mark = c.epoch
			}
		}
	}
}

// schedule sets a key's wake-up. The heap holds at most one live entry per
// key, at or before its wake time, so a key that pushes its timeout back on
// every item (a session gap) does not grow the heap by an entry per item.
func (n *statefulNode[K, V, S, W]) schedule(key K, e *entry[S], at time.Time) {
	e.wake = at
	if !at.IsZero() && (e.queued.IsZero() || at.Before(e.queued)) {
		e.queued = at
		heap.Push(&n.timers, wakeAt[K]{at, key})
	}
}

func (n *statefulNode[K, V, S, W]) flush() {
	n.out.Push(n.ctx.out)
	clear(n.ctx.out)
	n.ctx.out = n.ctx.out[:0]
}

func (n *statefulNode[K, V, S, W]) OnBarrier(e engine.Epoch) {
	if n.snapshots && len(n.changed) > 0 {
		rows, key, err := engine.ChangedRows(n.step, n.changed, n.ops.Format, func(k K) ([]byte, bool, error) {
			ent, ok := n.state[k]
			if !ok {
				return nil, false, nil
			}
			b, err := encodeRecord(ent.state, ent.wake)
			return b, true, err
		})
		if err != nil {
			n.w.Fail(n.step, key, fmt.Errorf("snapshot: state does not encode: %w", err))
		}
		clear(n.changed)
		n.changed = n.changed[:0]
		n.w.Record(e, rows...)
	}
	n.out.Barrier(e)
}

func (n *statefulNode[K, V, S, W]) OnEOF() {
	if n.logic.eof != nil {
		c := &n.ctx
		c.now = time.Time{}
		c.epoch = n.gate.Epoch()
		for k, e := range n.state {
			c.key = k
			c.rewake = false
			s, keep := n.logic.eof(c, e.state)
			n.apply(k, e, s, keep)
			if len(c.out) >= engine.BatchSize {
				n.flush()
			}
		}
		n.flush()
	}
	n.out.EOF()
}

// NextWake and Wake run OnNotify callbacks whose time has come.
func (n *statefulNode[K, V, S, W]) NextWake() (time.Time, bool) {
	if n.gate.Aligned() == engine.EOF || len(n.timers) == 0 {
		return time.Time{}, false
	}
	return n.timers[0].at, true
}

func (n *statefulNode[K, V, S, W]) Wake(now time.Time) {
	c := &n.ctx
	c.now = now
	c.epoch = n.gate.Epoch()
	for len(n.timers) > 0 && !n.timers[0].at.After(now) {
		t := heap.Pop(&n.timers).(wakeAt[K])
		e := n.state[t.key]
		if e == nil || !e.queued.Equal(t.at) {
			continue // discarded, or a stale entry of a key made anew
		}
		e.queued = time.Time{}
		if e.wake.IsZero() {
			continue // cancelled
		}
		if e.wake.After(now) {
			n.schedule(t.key, e, e.wake) // pushed back since
			continue
		}
		e.wake = time.Time{}
		c.key = t.key
		c.rewake = false
		s, keep := n.logic.notify(c, e.state)
		n.apply(t.key, e, s, keep)
	}
	n.flush()
}

func (n *statefulNode[K, V, S, W]) resume(rows []engine.StateRow) error {
	if len(rows) > 0 {
		n.state = make(map[K]*entry[S], len(rows))
	}
	for _, row := range rows {
		text, raw := row.Key, row.Value
		k, err := n.ops.Parse(text)
		if err != nil {
			return fmt.Errorf("key %q: recovered key does not parse: %w", text, err)
		}
		var rec stateRecord[S]
		if err := codec.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("key %q: recovered state does not decode into %s: %w", text, reflect.TypeFor[S](), err)
		}
		e := &entry[S]{state: rec.State}
		if rec.NotifyAt != nil {
			n.schedule(k, e, *rec.NotifyAt)
		}
		n.state[k] = e
	}
	return nil
}

type wakeAt[K any] struct {
	at  time.Time
	key K
}

type wakeHeap[K any] []wakeAt[K]

func (h wakeHeap[K]) Len() int           { return len(h) }
func (h wakeHeap[K]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap[K]) Push(x any)        { *h = append(*h, x.(wakeAt[K])) }
func (h *wakeHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
