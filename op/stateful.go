package op

import (
	"bytes"
	"reflect"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
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
//
// A notification runs as soon as it is due, and never after a later item
// of its key: when the key's next item comes at or after t (a t already
// passed, or items back to back), OnNotify runs first, as in Bytewax. Due
// notifications of all keys also run, in time order, before the worker
// handles its next batch.
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

// Epoch is the epoch the items emitted now belong to: the interval of
// input (counted from 1 across runs that share recovery data) whose items
// are being handled, and runnel.EOFEpoch (the largest uint64) inside OnEOF.
func (c *Context[K, W]) Epoch() uint64 { return c.epoch }

// Worker is the index of the worker running the callback.
func (c *Context[K, W]) Worker() int { return c.worker }

// Fail stops the run with err instead of a panic: Run returns a
// *runnel.StepError naming the step, the worker and the current key, with
// err as its cause. Fail does not return; the items of the failing batch
// are not emitted and nothing of the open epoch is committed, so a resumed
// run (with -r) reads them again.
func (c *Context[K, W]) Fail(err error) { fail(err) }

// Hook adds an option to Stateful: an optional callback (OnNotify, OnEOF)
// or a state migration (MigrateState).
type Hook[K runnel.Key, S, W any] interface{ hook(S) }

// callbacks is the Hook of OnNotify and OnEOF.
type callbacks[K runnel.Key, S, W any] struct {
	notify func(c *Context[K, W], state S) (S, bool)
	eof    func(c *Context[K, W], state S) (S, bool)
}

func (callbacks[K, S, W]) hook(S) {}

// OnNotify is called for a key at the time its callback last asked for
// with Context.NotifyAt. It returns the new state and whether to keep it.
func OnNotify[K runnel.Key, S, W any](fn func(c *Context[K, W], state S) (S, bool)) Hook[K, S, W] {
	return callbacks[K, S, W]{notify: fn}
}

// OnEOF is called for every key that holds state when the input ends, to
// flush what it holds. It returns the new state and whether to keep it.
// Keys are visited in key order (strings byte-wise, integers by value) on
// each worker, so with one worker what the hooks emit at the end is sorted
// by key and the same from run to run; with several workers each worker's
// share is sorted and the shares interleave.
//
// It is not called on a graceful stop (SIGINT, SIGTERM, runnel.WithStop):
// the input did not end, and the next run resumes the state as it was at
// the stop's barrier.
//
// Notifications (OnNotify) already due when the input ends run first.
//
// The state a later run resumes from is the one snapshotted at the last
// barrier before the end, so a continuation (more input in a later run)
// resumes as if the end had not happened: the state OnEOF returns, or its
// discarding the state, is not what the next run sees. (Bytewax snapshots
// after on_eof; see docs/operators.md, "Differences from Bytewax".)
func OnEOF[K runnel.Key, S, W any](fn func(c *Context[K, W], state S) (S, bool)) Hook[K, S, W] {
	return callbacks[K, S, W]{eof: fn}
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
// this is checked before the run starts). When S changes, MigrateState
// converts what an earlier version stored.
//
// The state is the callbacks' own between calls: nothing copies it. An
// item emitted with a slice, map or pointer that the state also holds
// changes when a later call changes the state in place (slices.Delete
// zeroes the tail, append may write into the same array) before a
// downstream step or sink has read it; items that cross to another group
// member are encoded copies, so the bug would show in one mode only. Emit
// a copy (slices.Clone, maps.Clone) or a value built for the output, as
// Bytewax programs do when they return state.summarize().
func Stateful[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	onItem func(c *Context[K, W], state S, ok bool, value V) (S, bool), hooks ...Hook[K, S, W]) runnel.Stream[runnel.KV[K, W]] {
	var logic statefulLogic[K, V, S, W]
	logic.item = onItem
	logic.applyHooks(hooks)
	return addStateful(scopeOf(up), stepID, "stateful", up, logic)
}

// StatefulBatch is Stateful with the values of a key handed over
// together, like Bytewax's stateful_batch: for each batch the step
// receives, onBatch runs once per key of the batch, in the order the keys
// first appear in it, with that key's values in arrival order, the key's
// state (ok says whether there was any) and a Context to emit with. It
// returns the new state and whether to keep it. Hooks are those of
// Stateful (OnNotify, OnEOF, MigrateState).
//
// It is commonly used for: per-key logic that is cheaper once per batch
// than once per item (one lookup, one write, one model call for all of a
// key's values), and ports of Bytewax programs written with
// stateful_batch.
//
// How items are cut into batches depends on the sources, the exchange
// between workers and the load, so what onBatch emits should not depend
// on where batches begin and end if the output must be the same from run
// to run; per-value results (a running total emitted for every value)
// are. values is valid only during the call: onBatch must copy what it
// keeps. A notification of the key that is due runs before the key's
// values, as for Stateful. Recovery, emitting and the state's ownership
// are as for Stateful.
func StatefulBatch[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	onBatch func(c *Context[K, W], state S, ok bool, values []V) (S, bool), hooks ...Hook[K, S, W]) runnel.Stream[runnel.KV[K, W]] {
	var logic statefulLogic[K, V, S, W]
	logic.batch = onBatch
	logic.applyHooks(hooks)
	if onBatch == nil {
		return brokenWith[runnel.KV[K, W]](pubapi.Scope(up).Flow, stepID, "the batch function is nil")
	}
	return addStateful(scopeOf(up), stepID, "stateful_batch", up, logic)
}

// StatefulMap keeps a state per key and maps each item with it. mapper
// receives the key's state (ok is false when the key has none yet; state is
// then the zero value) and the item, and returns the new state, whether to
// keep it (false discards the key's state), and the item to emit.
//
// It is commonly used for: running totals, deduplication, per-key
// counters, anything that needs memory of earlier items of the same key.
//
// The item emitted must not share a slice, map or pointer with the state
// that a later call changes in place (emit a copy; see Stateful).
//
// opts may hold a MigrateState, converting state stored with an older S.
func StatefulMap[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	mapper func(state S, ok bool, value V) (S, bool, W), opts ...StateOption[S]) runnel.Stream[runnel.KV[K, W]] {
	logic := statefulLogic[K, V, S, W]{item: func(c *Context[K, W], s S, ok bool, v V) (S, bool) {
		s, keep, w := mapper(s, ok, v)
		c.Emit(w)
		return s, keep
	}, migrate: migrationOf(opts)}
	return addStateful(scopeOf(up), stepID, "stateful_map", up, logic)
}

type statefulLogic[K runnel.Key, V, S, W any] struct {
	item    func(c *Context[K, W], state S, ok bool, value V) (S, bool)
	batch   func(c *Context[K, W], state S, ok bool, values []V) (S, bool) // StatefulBatch, instead of item
	notify  func(c *Context[K, W], state S) (S, bool)
	eof     func(c *Context[K, W], state S) (S, bool)
	migrate *stateMigration // MigrateState, or nil
}

// applyHooks sets the callbacks and migration that hooks carry; a later
// hook of the same kind wins.
func (logic *statefulLogic[K, V, S, W]) applyHooks(hooks []Hook[K, S, W]) {
	for _, h := range hooks {
		switch h := h.(type) {
		case callbacks[K, S, W]:
			if h.notify != nil {
				logic.notify = h.notify
			}
			if h.eof != nil {
				logic.eof = h.eof
			}
		case StateMigration[S]:
			if h.m != nil {
				logic.migrate = h.m
			}
		}
	}
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
		keyed.Connect(b, n.gate, i, n.table.Ops, func(kv runnel.KV[K, V]) K { return kv.Key }, n.handle)
	}
	return addStatefulSides(sc, id, kind, logic, []sideConnect[K, V, S, W]{connect}, pubapi.Stream(up))
}

// entry is one key's state and its requested wake-up.
type entry[S any] struct {
	state S
	wake  time.Time // when OnNotify is due (zero: never)
}

type statefulNode[K runnel.Key, V, S, W any] struct {
	w     *engine.Worker
	step  string
	logic statefulLogic[K, V, S, W]
	table *keyed.Table[K, entry[S]]
	gate  *engine.Gate
	out   *engine.Outlet[runnel.KV[K, W]]
	ctx   Context[K, W]

	// StatefulBatch's grouping of a batch by key, reused across batches.
	groupOf   map[K]int
	groupKeys []K
	groups    [][]V
}

func (n *statefulNode[K, V, S, W]) handle(batch []runnel.KV[K, V]) {
	c := &n.ctx
	c.now = time.Time{}
	c.epoch = n.gate.Epoch()
	if n.logic.notify != nil && n.table.Timers() > 0 {
		// Wake-ups already due run before the batch, in time order: a
		// busy worker must not run an item that became ready after them
		// first.
		n.wakeDue(c.Now())
	}
	if n.logic.batch != nil {
		n.handleGroups(batch)
		return
	}
	for i := range batch {
		kv := &batch[i]
		e := n.table.Get(kv.Key)
		if e != nil && n.logic.notify != nil && !e.State.wake.IsZero() && !e.State.wake.After(c.Now()) {
			// The key's notification came due during the batch (an
			// earlier item asked for now): it runs before the key's next
			// item, so items back to back cannot starve it.
			n.notify(e)
			e = n.table.Get(kv.Key)
		}
		var s S
		if e != nil {
			s = e.State.state
		}
		c.key = kv.Key
		c.rewake = false
		s, keep := n.logic.item(c, s, e != nil, kv.Value)
		n.apply(kv.Key, e, s, keep)
	}
	n.flush()
}

// handleGroups runs StatefulBatch's callback once per key of batch, keys
// in the order they first appear, each with its values in arrival order.
func (n *statefulNode[K, V, S, W]) handleGroups(batch []runnel.KV[K, V]) {
	c := &n.ctx
	if n.groupOf == nil {
		n.groupOf = map[K]int{}
	}
	for i := range batch {
		g, ok := n.groupOf[batch[i].Key]
		if !ok {
			g = len(n.groupKeys)
			n.groupOf[batch[i].Key] = g
			n.groupKeys = append(n.groupKeys, batch[i].Key)
			if g == len(n.groups) {
				n.groups = append(n.groups, nil)
			}
			n.groups[g] = n.groups[g][:0]
		}
		n.groups[g] = append(n.groups[g], batch[i].Value)
	}
	for g, key := range n.groupKeys {
		e := n.table.Get(key)
		if e != nil && n.logic.notify != nil && !e.State.wake.IsZero() && !e.State.wake.After(c.Now()) {
			n.notify(e) // due before the key's values, as in handle
			e = n.table.Get(key)
		}
		var s S
		if e != nil {
			s = e.State.state
		}
		c.key = key
		c.rewake = false
		s, keep := n.logic.batch(c, s, e != nil, n.groups[g])
		n.apply(key, e, s, keep)
		clear(n.groups[g]) // drop references the values hold
	}
	clear(n.groupOf)
	clear(n.groupKeys)
	n.groupKeys = n.groupKeys[:0]
	n.flush()
}

// apply stores what a callback returned for key (e is its entry, if any).
func (n *statefulNode[K, V, S, W]) apply(key K, e *keyed.Entry[K, entry[S]], s S, keep bool) {
	c := &n.ctx
	if keep {
		if e == nil {
			e = n.table.Add(key)
		}
		e.State.state = s
		if c.rewake {
			e.State.wake = c.wake
			if !c.wake.IsZero() {
				n.table.Schedule(e, keyed.Nanos(c.wake))
			}
		}
	} else if e != nil {
		n.table.Delete(e)
		e = nil
	}
	n.table.Changed(key, e, c.epoch)
}

func (n *statefulNode[K, V, S, W]) flush() {
	n.out.Push(n.ctx.out)
	clear(n.ctx.out)
	n.ctx.out = n.ctx.out[:0]
}

func (n *statefulNode[K, V, S, W]) OnBarrier(e engine.Epoch) {
	n.table.Snapshot(n.w, n.step, e, func(ent *keyed.Entry[K, entry[S]]) ([]byte, error) {
		return encodeRecord(ent.State.state, ent.State.wake)
	}, nil)
	n.out.Barrier(e)
}

// OnEOF runs the OnEOF hook for every key, in key order, after the
// notifications already due (as Bytewax runs due notifications before
// on_eof): the end of input can come in the same round as the item that
// asked for a wake-up at once.
func (n *statefulNode[K, V, S, W]) OnEOF() {
	c := &n.ctx
	if n.logic.notify != nil && n.table.Timers() > 0 {
		c.now = time.Time{}
		c.epoch = n.gate.Epoch()
		n.wakeDue(c.Now())
		n.flush()
	}
	if n.logic.eof != nil {
		c.now = time.Time{}
		c.epoch = n.gate.Epoch()
		for _, e := range n.table.Sorted() {
			c.key = e.Key
			c.rewake = false
			s, keep := n.logic.eof(c, e.State.state)
			n.apply(e.Key, e, s, keep)
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
	if n.gate.Aligned() == engine.EOF {
		return time.Time{}, false
	}
	at, ok := n.table.Next()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

func (n *statefulNode[K, V, S, W]) Wake(now time.Time) {
	c := &n.ctx
	c.now = now
	c.epoch = n.gate.Epoch()
	n.wakeDue(now)
	n.flush()
}

// wakeDue runs the notifications due at now, in time order.
func (n *statefulNode[K, V, S, W]) wakeDue(now time.Time) {
	ns := keyed.Nanos(now)
	for {
		e := n.table.PopDue(ns)
		if e == nil {
			return
		}
		switch wake := e.State.wake; {
		case wake.IsZero(): // cancelled, or run before an item
		case wake.After(now):
			n.table.Schedule(e, keyed.Nanos(wake)) // pushed back since
		default:
			n.notify(e)
		}
	}
}

// notify runs e's OnNotify callback now.
func (n *statefulNode[K, V, S, W]) notify(e *keyed.Entry[K, entry[S]]) {
	c := &n.ctx
	e.State.wake = time.Time{}
	n.table.Unschedule(e)
	c.key = e.Key
	c.rewake = false
	s, keep := n.logic.notify(c, e.State.state)
	n.apply(e.Key, e, s, keep)
}

func (n *statefulNode[K, V, S, W]) resume(rows [][]engine.StateRow) error {
	return n.table.Resume(rows, reflect.TypeFor[S]().String(), func(e *keyed.Entry[K, entry[S]], raw []byte) (bool, error) {
		// Most records are {"state": S} with no wake-up (encodeRecord's
		// header, then S): decode S alone, without the wrapper's
		// reflection. Anything else, and any error, takes the full
		// decoding below, whose result and error stay the reference.
		if st, ok := bytes.CutPrefix(raw, recordHeader); ok && codec.Decode(st, &e.State.state) == nil {
			return true, nil
		}
		var rec stateRecord[S]
		if err := codec.Unmarshal(raw, &rec); err != nil {
			return false, err
		}
		e.State.state = rec.State
		if rec.NotifyAt != nil && !rec.NotifyAt.IsZero() {
			e.State.wake = *rec.NotifyAt
			n.table.Schedule(e, keyed.Nanos(e.State.wake))
		}
		return true, nil
	})
}
