package window

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/internal/plan"
)

// logic is the per-window logic every operator is built from.
type logic[V, S, W any] struct {
	init  func() S // nil: the zero S
	value func(e *Emitter[W], s S, v V) S
	merge func(e *Emitter[W], into, from S) S // nil: sessions are refused
	close func(e *Emitter[W], s S)            // nil: nothing to emit
}

// inlet connects one upstream stream to the window node: it turns each
// upstream item into a key and a value.
type inlet[K runnel.Key, V, S, W any] struct {
	up      plan.Input
	connect func(b *engine.Builder, g *engine.Gate, i int, n *node[K, V, S, W])
}

// kvInlet reads a keyed stream.
func kvInlet[K runnel.Key, V, S, W any](up runnel.Stream[runnel.KV[K, V]]) inlet[K, V, S, W] {
	return mapInlet[K, V, S, W](up, func(kv *runnel.KV[K, V]) (K, V) { return kv.Key, kv.Value })
}

// mapInlet reads any stream, keying and converting each item with split.
func mapInlet[K runnel.Key, V, S, W, T any](up runnel.Stream[T], split func(*T) (K, V)) inlet[K, V, S, W] {
	return inlet[K, V, S, W]{up: up, connect: func(b *engine.Builder, g *engine.Gate, i int, n *node[K, V, S, W]) {
		workers := uint64(b.Worker().Workers)
		hash := n.ops.Hash
		engine.Connect(b, g, i, func(t T) int {
			k, _ := split(&t)
			return int(hash(k) % workers)
		}, func(batch []T) {
			n.begin()
			for j := range batch {
				k, v := split(&batch[j])
				n.item(k, v)
			}
			n.flush()
		})
	}}
}

// build adds the window step: one node, one output per stream of Out.
func build[K runnel.Key, V, S, W any](stepID, kind string, clock Clock[V], wdr Windower, lg logic[V, S, W], opts []Option, inlets ...inlet[K, V, S, W]) Out[K, V, W] {
	var out Out[K, V, W]
	if len(inlets) == 0 {
		return out
	}
	flow := inlets[0].up.(interface{ Flow() *runnel.Dataflow }).Flow()
	if flow == nil {
		for _, in := range inlets[1:] {
			if f := in.up.(interface{ Flow() *runnel.Dataflow }).Flow(); f != nil {
				flow = f
				break
			}
		}
		if flow == nil {
			return out
		}
	}
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	broken := func(msg string) Out[K, V, W] {
		plan.Fail(flow, stepID, msg)
		return Out[K, V, W]{
			Down: plan.Broken[runnel.KV[K, Result[W]]](flow),
			Late: plan.Broken[runnel.KV[K, Late[V]]](flow),
			Meta: plan.Broken[runnel.KV[K, Meta]](flow),
		}
	}
	switch {
	case clock.kind == noClock:
		return broken("the clock is the zero Clock; make one with window.SystemClock or window.EventClock")
	case clock.kind == eventClock && clock.ts == nil:
		return broken("the event clock's timestamp function is nil")
	case wdr.check() != "":
		return broken(wdr.check())
	case o.lateness < 0:
		return broken(fmt.Sprintf("allowed lateness %v must not be negative", time.Duration(o.lateness)))
	case wdr.kind == sessionWindower && lg.merge == nil:
		return broken("session windows merge, so the logic needs OnMerge")
	case lg.value == nil:
		return broken("the logic's OnValue is nil")
	}

	ops := keys.For[K]()
	stateT := reflect.TypeFor[State[V, S]]()
	st := &plan.Step{Kind: kind, Outs: 3}
	st.State = &plan.State{
		Type:  fmt.Sprintf("key %s, window state %s, %s", reflect.TypeFor[K](), stateT, wdr),
		Check: func() error { return codec.CheckType(stateT) },
		Route: func(key string, workers int) (int, error) {
			k, err := ops.Parse(key)
			if err != nil {
				return 0, err
			}
			return int(ops.Hash(k) % uint64(workers)), nil
		},
	}
	var built *node[K, V, S, W] // the node being built, on any worker
	st.Build = func(b *engine.Builder) error {
		n := &node[K, V, S, W]{
			w: b.Worker(), step: b.StepID(), ops: ops, clock: b.Clock(),
			wdr: wdr, lg: lg, ts: clock.ts, event: clock.kind == eventClock,
			wait: int64(clock.wait), lateness: o.lateness, ordered: o.ordered && clock.kind == eventClock,
			state: map[K]*keyState[K, V, S]{}, snapshots: b.Snapshots(),
			tumbling: wdr.kind == fixedWindower && wdr.length == wdr.offset,
		}
		if n.lg.init == nil {
			n.lg.init = func() (s S) { return s }
		}
		n.em.out = n.emit
		n.down = engine.NewOutlet[runnel.KV[K, Result[W]]](b, 0)
		n.late = engine.NewOutlet[runnel.KV[K, Late[V]]](b, 1)
		n.meta = engine.NewOutlet[runnel.KV[K, Meta]](b, 2)
		n.gate = b.NewGate(n)
		if err := n.resume(b.ResumeRows()); err != nil {
			return err
		}
		for i, in := range inlets {
			in.connect(b, n.gate, i, n)
		}
		b.AddWaker(n)
		built = n
		if testHookBuilt != nil {
			testHookBuilt(n)
		}
		return nil
	}
	ups := make([]plan.Input, len(inlets))
	for i, in := range inlets {
		ups[i] = in.up
	}
	// Metadata is only built when a step reads the Meta stream: the ports
	// are known once the step is added, and the flow is complete when it
	// runs.
	var metaPort engine.Port
	readsMeta := func() bool {
		for _, s := range flow.Steps() {
			if slices.Contains(s.Inputs, metaPort) {
				return true
			}
		}
		return false
	}
	build := st.Build
	st.Build = func(b *engine.Builder) error {
		if err := build(b); err != nil {
			return err
		}
		if !readsMeta() {
			built.noMeta = true
		}
		return nil
	}
	if !plan.Add(plan.FlowScope(flow), stepID, st, ups...) {
		return Out[K, V, W]{
			Down: plan.Broken[runnel.KV[K, Result[W]]](flow),
			Late: plan.Broken[runnel.KV[K, Late[V]]](flow),
			Meta: plan.Broken[runnel.KV[K, Meta]](flow),
		}
	}
	out = Out[K, V, W]{
		Down: plan.Out[runnel.KV[K, Result[W]]](flow, 0),
		Late: plan.Out[runnel.KV[K, Late[V]]](flow, 1),
		Meta: plan.Out[runnel.KV[K, Meta]](flow, 2),
	}
	metaPort = out.Meta.Port()
	return out
}

// testHookBuilt, set by tests only, sees every node built.
var testHookBuilt func(n any)

// keyState is one key's state and its bookkeeping on the worker.
type keyState[K runnel.Key, V, S any] struct {
	st   State[V, S]
	key  K
	hidx int   // index in the timer heap, -1 when not scheduled
	wake int64 // scheduled wake-up, Unix ns (valid when hidx >= 0)
	mark engine.Epoch
	// one holds the first open window, so that a key with one window (the
	// common case) keeps it in the same allocation, and cache lines, as
	// the rest of its state.
	one [1]OpenWindow[S]
}

// node is the window step on one worker.
type node[K runnel.Key, V, S, W any] struct {
	w        *engine.Worker
	step     string
	ops      keys.Ops[K]
	clock    engine.Clock
	wdr      Windower
	lg       logic[V, S, W]
	ts       func(V) time.Time
	event    bool
	wait     int64
	lateness int64
	ordered  bool
	tumbling bool
	noMeta   bool // no step reads the Meta stream

	gate   *engine.Gate
	state  map[K]*keyState[K, V, S]
	timers []*keyState[K, V, S] // min-heap by wake

	now     int64
	haveNow bool
	epoch   engine.Epoch
	cur     K // the key being handled
	em      Emitter[W]

	snapshots bool
	changed   []K

	down    *engine.Outlet[runnel.KV[K, Result[W]]]
	late    *engine.Outlet[runnel.KV[K, Late[V]]]
	meta    *engine.Outlet[runnel.KV[K, Meta]]
	downBuf []runnel.KV[K, Result[W]]
	lateBuf []runnel.KV[K, Late[V]]
	metaBuf []runnel.KV[K, Meta]
}

func (n *node[K, V, S, W]) begin() {
	n.haveNow = false
	n.epoch = n.gate.Epoch()
}

func (n *node[K, V, S, W]) nowNs() int64 {
	if !n.haveNow {
		n.now = n.clock.Now().UnixNano()
		n.haveNow = true
	}
	return n.now
}

// item handles one upstream item.
func (n *node[K, V, S, W]) item(k K, v V) {
	ks := n.state[k]
	if ks == nil {
		ks = &keyState[K, V, S]{key: k, hidx: -1}
		ks.st.Watermark = noWatermark
		ks.st.Windows = ks.one[:0]
		n.state[k] = ks
	}
	n.cur = k
	now := n.nowNs()
	st := &ks.st
	var ts, wm int64
	if n.event {
		ts = n.ts(v).UnixNano()
		wm = watermarkAt(st.Watermark, st.SeenAt, now)
		if c := satSub(ts, n.wait); c > wm {
			st.Watermark, st.SeenAt, wm = c, now, c
		}
	} else {
		ts, wm = now, now
	}
	if len(st.Queue) > 0 {
		n.release(ks, wm)
	}
	// Windows the watermark has passed close before the item is added:
	// the item is not late for the windows it joins, so those stay open,
	// and closing first keeps the window list short.
	if len(st.Windows) > 0 {
		n.closeDue(ks, wm, false)
	}
	if n.tumbling && !n.ordered {
		// The common case, without the loops of sliding windows.
		rel := ts - n.wdr.align
		id := floorDiv(rel, n.wdr.length)
		open := n.wdr.align + id*n.wdr.length
		if satAdd(satAdd(open, n.wdr.length), n.lateness) <= wm {
			n.emitLate(id, v, ts, wm)
		} else {
			n.addFixed(ks, id, open, v)
		}
	} else if n.ordered && ts >= wm {
		if n.lateCheck(ts, v, wm) {
			q := st.Queue
			i, _ := slices.BinarySearchFunc(q, ts+1, func(p Pending[V], t int64) int {
				if p.Time < t {
					return -1
				}
				return 1
			})
			st.Queue = slices.Insert(q, i, Pending[V]{Time: ts, Watermark: wm, Value: v})
		}
	} else if n.lateCheck(ts, v, wm) {
		n.assign(ks, ts, v, wm)
	}
	n.settle(ks, now, true)
}

// lateCheck emits a Late item for each window ts misses at watermark wm,
// and reports whether it belongs to any window that is still open.
func (n *node[K, V, S, W]) lateCheck(ts int64, v V, wm int64) bool {
	if n.wdr.kind == sessionWindower {
		if ts < satSub(wm, n.lateness) {
			n.emitLate(-1, v, ts, wm)
			return false
		}
		return true
	}
	first, last := n.wdr.fixedRange(ts)
	if satAdd(satAdd(n.wdr.fixedOpen(last), n.wdr.length), n.lateness) <= wm {
		// Every window closes no later than the last one.
		for id := first; id <= last; id++ {
			n.emitLate(id, v, ts, wm)
		}
		return false
	}
	for id := first; id < last; id++ {
		if satAdd(satAdd(n.wdr.fixedOpen(id), n.wdr.length), n.lateness) <= wm {
			n.emitLate(id, v, ts, wm)
		}
	}
	return true
}

// assign adds an item that was not late at watermark wm to its windows.
func (n *node[K, V, S, W]) assign(ks *keyState[K, V, S], ts int64, v V, wm int64) {
	if n.wdr.kind == sessionWindower {
		n.assignSession(ks, ts, v)
		return
	}
	first, last := n.wdr.fixedRange(ts)
	for id := first; id <= last; id++ {
		open := n.wdr.fixedOpen(id)
		closeAt := open + n.wdr.length
		if satAdd(closeAt, n.lateness) <= wm {
			continue // late for this one; reported when it came
		}
		n.addFixed(ks, id, open, v)
	}
}

// addFixed adds v to fixed window id, opening it if needed.
func (n *node[K, V, S, W]) addFixed(ks *keyState[K, V, S], id, open int64, v V) {
	ws := ks.st.Windows
	i := len(ws)
	for i > 0 && ws[i-1].ID > id {
		i--
	}
	if i == 0 || ws[i-1].ID != id {
		nw := OpenWindow[S]{ID: id, Open: open, Close: open + n.wdr.length, State: n.lg.init()}
		if i == len(ws) {
			ws = append(ws, nw)
		} else {
			ws = slices.Insert(ws, i, nw)
		}
		ks.st.Windows = ws
		i++
	}
	w := &ws[i-1]
	n.setEm(w)
	w.State = n.lg.value(&n.em, w.State, v)
}

func (n *node[K, V, S, W]) assignSession(ks *keyState[K, V, S], ts int64, v V) {
	gap := n.wdr.gap
	ws := ks.st.Windows
	i := 0
	for ; i < len(ws); i++ {
		w := &ws[i]
		if ts < satSub(w.Open, gap) {
			break // sessions are sorted: it opens a new one here
		}
		if ts <= satAdd(w.Close, gap) {
			w.Open = min(w.Open, ts)
			w.Close = max(w.Close, ts)
			n.setEm(w)
			w.State = n.lg.value(&n.em, w.State, v)
			n.mergeSessions(ks)
			return
		}
	}
	ks.st.Windows = slices.Insert(ws, i, OpenWindow[S]{ID: ts, Open: ts, Close: ts, State: n.lg.init()})
	w := &ks.st.Windows[i]
	n.setEm(w)
	w.State = n.lg.value(&n.em, w.State, v)
}

// mergeSessions merges sessions that have come within the gap of each
// other into the one that opened first.
func (n *node[K, V, S, W]) mergeSessions(ks *keyState[K, V, S]) {
	ws := ks.st.Windows
	for j := 0; j+1 < len(ws); {
		a, b := &ws[j], &ws[j+1]
		if satSub(b.Open, a.Close) > n.wdr.gap {
			j++
			continue
		}
		a.Close = max(a.Close, b.Close)
		a.Merged = append(append(a.Merged, b.ID), b.Merged...)
		n.setEm(a)
		a.State = n.lg.merge(&n.em, a.State, b.State)
		ws = slices.Delete(ws, j+1, j+2)
	}
	ks.st.Windows = ws
}

// release runs the queued items the watermark has passed, oldest first.
func (n *node[K, V, S, W]) release(ks *keyState[K, V, S], wm int64) bool {
	q := ks.st.Queue
	i := 0
	for ; i < len(q) && q[i].Time < wm; i++ {
		n.assign(ks, q[i].Time, q[i].Value, q[i].Watermark)
	}
	if i == 0 {
		return false
	}
	m := copy(q, q[i:])
	clear(q[m:])
	ks.st.Queue = q[:m]
	if m == 0 {
		ks.st.Queue = nil
	}
	return true
}

// closeDue closes the windows the watermark wm has passed (all of them at
// the end of input), in order.
func (n *node[K, V, S, W]) closeDue(ks *keyState[K, V, S], wm int64, all bool) bool {
	ws := ks.st.Windows
	i := 0
	for ; i < len(ws); i++ {
		w := &ws[i]
		if !all {
			if n.wdr.kind == sessionWindower {
				if satAdd(satAdd(w.Close, n.wdr.gap), n.lateness) >= wm {
					break
				}
			} else if satAdd(w.Close, n.lateness) > wm {
				break
			}
		}
		n.setEm(w)
		if n.lg.close != nil {
			n.lg.close(&n.em, w.State)
		}
		if !n.noMeta {
			n.metaBuf = append(n.metaBuf, runnel.KV[K, Meta]{Key: n.cur, Value: Meta{
				ID: w.ID, Open: toTime(w.Open), Close: toTime(w.Close), Merged: w.Merged}})
		}
	}
	if i == 0 {
		return false
	}
	if i == len(ws) {
		clear(ws)
		ks.st.Windows = ws[:0]
		return true
	}
	m := copy(ws, ws[i:])
	clear(ws[m:])
	ks.st.Windows = ws[:m]
	return true
}

// settle frees a key with nothing open, or schedules its next wake-up,
// and records it as changed for the epoch's snapshot.
func (n *node[K, V, S, W]) settle(ks *keyState[K, V, S], now int64, changed bool) {
	if changed && n.snapshots && ks.mark != n.epoch {
		ks.mark = n.epoch
		n.changed = append(n.changed, ks.key)
	}
	if len(ks.st.Windows) == 0 && len(ks.st.Queue) == 0 {
		if n.state[ks.key] == ks {
			delete(n.state, ks.key)
		}
		n.unschedule(ks)
		return
	}
	n.schedule(ks, now)
}

// target is the watermark at which the key next has work: a window to
// close or a queued item to release.
func (n *node[K, V, S, W]) target(st *State[V, S]) (int64, bool) {
	t, ok := int64(math.MaxInt64), false
	if len(st.Windows) > 0 {
		w := &st.Windows[0]
		if n.wdr.kind == sessionWindower {
			t = satAdd(satAdd(satAdd(w.Close, n.wdr.gap), n.lateness), 1)
		} else {
			t = satAdd(w.Close, n.lateness)
		}
		ok = true
	}
	if len(st.Queue) > 0 {
		t = min(t, satAdd(st.Queue[0].Time, 1))
		ok = true
	}
	return t, ok
}

func (n *node[K, V, S, W]) schedule(ks *keyState[K, V, S], now int64) {
	t, ok := n.target(&ks.st)
	if !ok || t == math.MaxInt64 {
		n.unschedule(ks)
		return
	}
	wake := t
	if n.event {
		wake = satAdd(ks.st.SeenAt, satSub(t, ks.st.Watermark))
	}
	wake = max(wake, now+1)
	switch {
	case ks.hidx < 0:
		ks.wake = wake
		ks.hidx = len(n.timers)
		n.timers = append(n.timers, ks)
		n.siftUp(ks.hidx)
	case wake < ks.wake:
		// A later wake-up is left in place: it finds nothing due and
		// reschedules, which is cheaper than moving it on every item.
		ks.wake = wake
		n.siftUp(ks.hidx)
	}
}

func (n *node[K, V, S, W]) unschedule(ks *keyState[K, V, S]) {
	i := ks.hidx
	if i < 0 {
		return
	}
	last := len(n.timers) - 1
	if i != last {
		n.swap(i, last)
	}
	n.timers[last] = nil
	n.timers = n.timers[:last]
	ks.hidx = -1
	if i != last {
		n.siftDown(i)
		n.siftUp(i)
	}
}

func (n *node[K, V, S, W]) swap(i, j int) {
	h := n.timers
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}

func (n *node[K, V, S, W]) siftUp(i int) {
	h := n.timers
	for i > 0 {
		p := (i - 1) / 2
		if h[p].wake <= h[i].wake {
			return
		}
		n.swap(i, p)
		i = p
	}
}

func (n *node[K, V, S, W]) siftDown(i int) {
	h := n.timers
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h[r].wake < h[l].wake {
			c = r
		}
		if h[i].wake <= h[c].wake {
			return
		}
		n.swap(i, c)
		i = c
	}
}

// NextWake and Wake close windows on the worker's clock.
func (n *node[K, V, S, W]) NextWake() (time.Time, bool) {
	if n.gate.Aligned() == engine.EOF || len(n.timers) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n.timers[0].wake), true
}

func (n *node[K, V, S, W]) Wake(now time.Time) {
	n.begin()
	n.now, n.haveNow = now.UnixNano(), true
	for len(n.timers) > 0 && n.timers[0].wake <= n.now {
		ks := n.timers[0]
		n.unschedule(ks)
		n.cur = ks.key
		wm := n.now
		if n.event {
			wm = watermarkAt(ks.st.Watermark, ks.st.SeenAt, n.now)
		}
		changed := n.release(ks, wm)
		changed = n.closeDue(ks, wm, false) || changed
		n.settle(ks, n.now, changed)
	}
	n.flush()
}

func (n *node[K, V, S, W]) setEm(w *OpenWindow[S]) {
	n.em.id, n.em.open, n.em.close = w.ID, w.Open, w.Close
}

func (n *node[K, V, S, W]) emit(id int64, w W) {
	n.downBuf = append(n.downBuf, runnel.KV[K, Result[W]]{Key: n.cur, Value: Result[W]{ID: id, Value: w}})
}

func (n *node[K, V, S, W]) emitLate(id int64, v V, ts, wm int64) {
	n.lateBuf = append(n.lateBuf, runnel.KV[K, Late[V]]{Key: n.cur, Value: Late[V]{
		ID: id, Value: v, Time: toTime(ts), Watermark: toTime(wm)}})
}

func (n *node[K, V, S, W]) flush() {
	if len(n.downBuf) > 0 {
		n.down.Push(n.downBuf)
		clear(n.downBuf)
		n.downBuf = n.downBuf[:0]
	}
	if len(n.lateBuf) > 0 {
		n.late.Push(n.lateBuf)
		clear(n.lateBuf)
		n.lateBuf = n.lateBuf[:0]
	}
	if len(n.metaBuf) > 0 {
		n.meta.Push(n.metaBuf)
		clear(n.metaBuf)
		n.metaBuf = n.metaBuf[:0]
	}
}

func (n *node[K, V, S, W]) OnBarrier(e engine.Epoch) {
	if n.snapshots && len(n.changed) > 0 {
		rows, key, err := engine.ChangedRows(n.step, n.changed, n.ops.Format, func(k K) ([]byte, bool, error) {
			ks, ok := n.state[k]
			if !ok {
				return nil, false, nil
			}
			b, err := codec.Marshal(&ks.st)
			return b, true, err
		})
		if err != nil {
			n.w.Fail(n.step, key, fmt.Errorf("snapshot: window state does not encode: %w", err))
		}
		clear(n.changed)
		n.changed = n.changed[:0]
		n.w.Record(e, rows...)
	}
	n.down.Barrier(e)
	n.late.Barrier(e)
	n.meta.Barrier(e)
}

// OnEOF closes every window. What it changes is never snapshotted: a later
// run resumes from the last barrier, with the windows still open.
func (n *node[K, V, S, W]) OnEOF() {
	n.begin()
	for _, ks := range n.state {
		n.cur = ks.key
		n.release(ks, math.MaxInt64)
		n.closeDue(ks, math.MaxInt64, true)
		if len(n.downBuf)+len(n.metaBuf) >= engine.BatchSize {
			n.flush()
		}
	}
	n.flush()
	clear(n.state)
	clear(n.timers)
	n.timers = n.timers[:0]
	n.down.EOF()
	n.late.EOF()
	n.meta.EOF()
}

func (n *node[K, V, S, W]) resume(rows []engine.StateRow) error {
	if len(rows) == 0 {
		return nil
	}
	n.state = make(map[K]*keyState[K, V, S], len(rows))
	now := n.clock.Now().UnixNano()
	for _, row := range rows {
		text, raw := row.Key, row.Value
		k, err := n.ops.Parse(text)
		if err != nil {
			return fmt.Errorf("key %q: recovered key does not parse: %w", text, err)
		}
		ks := &keyState[K, V, S]{key: k, hidx: -1}
		if err := codec.Unmarshal(raw, &ks.st); err != nil {
			return fmt.Errorf("key %q: recovered state does not decode into %s: %w", text, reflect.TypeFor[State[V, S]](), err)
		}
		n.state[k] = ks
		n.schedule(ks, now)
	}
	return nil
}
