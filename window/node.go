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
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
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
	return inlet[K, V, S, W]{up: pubapi.Stream(up), connect: func(b *engine.Builder, g *engine.Gate, i int, n *node[K, V, S, W]) {
		keyed.Connect(b, g, i, n.table.Ops, func(t T) K {
			k, _ := split(&t)
			return k
		}, func(batch []T) {
			n.begin()
			if n.table.Timers() > 0 && n.table.Due(n.nowNs()) {
				// Wake-ups already due run before the batch, in time
				// order: a busy worker must not run an item that became
				// ready after them first.
				n.wakeDue()
			}
			for j := range batch {
				k, v := split(&batch[j])
				n.item(k, v)
			}
			n.flush()
		})
	}}
}

// orderedByDefault reports whether an operator of kind applies items in
// timestamp order unless told otherwise (Unordered): those whose result
// can depend on the order of items, as Bytewax's window, collect_window,
// fold_window and join_window (ordered=True); count, reduce, max and min
// windows are unordered, as in Bytewax.
func orderedByDefault(kind string) bool {
	switch kind {
	case "window", "fold_window", "collect_window":
		return true
	}
	return isJoin(kind)
}

// build adds the window step: one node, one output per stream of Out.
func build[K runnel.Key, V, S, W any](stepID, kind string, clockFn Clock[V], wdr Windower, lg logic[V, S, W], opts []Option, inlets ...inlet[K, V, S, W]) Out[K, V, W] {
	var out Out[K, V, W]
	if len(inlets) == 0 {
		return out
	}
	clock := clockFn.setup()
	flow := inlets[0].up.(interface{ Flow() *plan.Dataflow }).Flow()
	if flow == nil {
		for _, in := range inlets[1:] {
			if f := in.up.(interface{ Flow() *plan.Dataflow }).Flow(); f != nil {
				flow = f
				break
			}
		}
		if flow == nil {
			return out
		}
	}
	o := options{ordered: orderedByDefault(kind)}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	broken := func(msg string) Out[K, V, W] {
		plan.Fail(flow, stepID, msg)
		return Out[K, V, W]{
			Down: pubapi.Broken[runnel.KV[K, Result[W]]](flow),
			Late: pubapi.Broken[runnel.KV[K, Late[V]]](flow),
			Meta: pubapi.Broken[runnel.KV[K, Meta]](flow),
		}
	}
	switch {
	case clockFn == nil:
		return broken("the clock is nil; pass window.SystemClock or window.EventClock(...)")
	case clock.kind == noClock:
		return broken("the clock set nothing; pass window.SystemClock or window.EventClock(...)")
	case clock.kind == eventClock && clock.ts == nil:
		return broken("the event clock's timestamp function is nil")
	case wdr.check() != "":
		return broken(wdr.check())
	case o.join != nil && !isJoin(kind):
		return broken("JoinModes applies to JoinWindow and JoinWindowN only")
	case o.join != nil && checkJoinModes(*o.join) != "":
		return broken(checkJoinModes(*o.join))
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
	typeText := func(stateText string) string {
		return fmt.Sprintf("key %s, window state %s, %s", reflect.TypeFor[K](), stateText, wdr)
	}
	st.State = keyed.StepState(ops, typeText(stateT.String()), stateT)
	if o.migrate != nil {
		m, err := describeMigration[V, S](o.migrate, typeText)
		if err != nil {
			return broken(err.Error())
		}
		st.State.Migration = m
	}
	var built *node[K, V, S, W] // the node being built, on any worker
	st.Build = func(b *engine.Builder) error {
		n := &node[K, V, S, W]{
			w: b.Worker(), step: b.StepID(), clock: b.Clock(),
			wdr: wdr, lg: lg, ts: clock.ts, event: clock.kind == eventClock,
			wait: int64(clock.wait), lateness: o.lateness, ordered: o.ordered && clock.kind == eventClock,
			table:    keyed.NewTable[K, keyState[V, S]](ops, b.Snapshots()),
			freed:    map[K]clockMark{},
			tumbling: wdr.kind == fixedWindower && wdr.length == wdr.offset,
		}
		if n.lg.init == nil {
			n.lg.init = func() (s S) { return s }
		}
		n.em.out = n.emit
		b.ReportKey(func() string { return ops.Format(n.cur) })
		n.down = engine.NewOutlet[runnel.KV[K, Result[W]]](b, 0)
		n.late = engine.NewOutlet[runnel.KV[K, Late[V]]](b, 1)
		n.meta = engine.NewOutlet[runnel.KV[K, Meta]](b, 2)
		n.gate = b.NewGate(n)
		b.ReportKeys(func() int { return n.table.Len() })
		if b.RewriteResumed() {
			n.table.RewriteOnResume(b.StartEpoch())
		}
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
			Down: pubapi.Broken[runnel.KV[K, Result[W]]](flow),
			Late: pubapi.Broken[runnel.KV[K, Late[V]]](flow),
			Meta: pubapi.Broken[runnel.KV[K, Meta]](flow),
		}
	}
	out = Out[K, V, W]{
		Down: pubapi.Out[runnel.KV[K, Result[W]]](flow, 0),
		Late: pubapi.Out[runnel.KV[K, Late[V]]](flow, 1),
		Meta: pubapi.Out[runnel.KV[K, Meta]](flow, 2),
	}
	metaPort = pubapi.Stream(out.Meta).Port()
	return out
}

// testHookBuilt, set by tests only, sees every node built.
var testHookBuilt func(n any)

// keyState is one key's window state on the worker.
type keyState[V, S any] struct {
	st State[V, S]
	// one holds the first open window, so that a key with one window (the
	// common case) keeps it in the same allocation, and cache lines, as
	// the rest of its state.
	one [1]OpenWindow[S]
}

// clockMark is a freed key's event clock: its watermark at system time
// seenAt.
type clockMark struct{ watermark, seenAt int64 }

// entry is a key's entry in the node's table.
type entry[K runnel.Key, V, S any] = keyed.Entry[K, keyState[V, S]]

// node is the window step on one worker.
type node[K runnel.Key, V, S, W any] struct {
	w        *engine.Worker
	step     string
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

	gate  *engine.Gate
	table *keyed.Table[K, keyState[V, S]]
	// freed keeps the event clock of keys whose state was freed, so that
	// a late item for such a key is still recognised as late instead of
	// opening a window that already closed.
	freed map[K]clockMark

	now     int64
	haveNow bool
	epoch   engine.Epoch
	cur     K // the key being handled
	em      Emitter[W]

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
	ks := n.table.Get(k)
	if ks == nil {
		ks = n.table.Add(k)
		ks.State.st.Watermark = noWatermark
		ks.State.st.Windows = ks.State.one[:0]
		if len(n.freed) > 0 {
			if m, ok := n.freed[k]; ok {
				ks.State.st.Watermark, ks.State.st.SeenAt = m.watermark, m.seenAt
				delete(n.freed, k)
			}
		}
	}
	n.cur = k
	now := n.nowNs()
	st := &ks.State.st
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
func (n *node[K, V, S, W]) assign(ks *entry[K, V, S], ts int64, v V, wm int64) {
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
func (n *node[K, V, S, W]) addFixed(ks *entry[K, V, S], id, open int64, v V) {
	ws := ks.State.st.Windows
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
		ks.State.st.Windows = ws
		i++
	}
	w := &ws[i-1]
	n.setEm(w)
	w.State = n.lg.value(&n.em, w.State, v)
}

func (n *node[K, V, S, W]) assignSession(ks *entry[K, V, S], ts int64, v V) {
	gap := n.wdr.gap
	ws := ks.State.st.Windows
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
	ks.State.st.Windows = slices.Insert(ws, i, OpenWindow[S]{ID: ts, Open: ts, Close: ts, State: n.lg.init()})
	w := &ks.State.st.Windows[i]
	n.setEm(w)
	w.State = n.lg.value(&n.em, w.State, v)
}

// mergeSessions merges sessions that have come within the gap of each
// other into the one that opened first.
func (n *node[K, V, S, W]) mergeSessions(ks *entry[K, V, S]) {
	ws := ks.State.st.Windows
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
	ks.State.st.Windows = ws
}

// release runs the queued items the watermark has passed, oldest first.
func (n *node[K, V, S, W]) release(ks *entry[K, V, S], wm int64) bool {
	q := ks.State.st.Queue
	i := 0
	for ; i < len(q) && q[i].Time < wm; i++ {
		n.assign(ks, q[i].Time, q[i].Value, q[i].Watermark)
	}
	if i == 0 {
		return false
	}
	m := copy(q, q[i:])
	clear(q[m:])
	ks.State.st.Queue = q[:m]
	if m == 0 {
		ks.State.st.Queue = nil
	}
	return true
}

// closeDue closes the windows the watermark wm has passed (all of them at
// the end of input), in order.
func (n *node[K, V, S, W]) closeDue(ks *entry[K, V, S], wm int64, all bool) bool {
	ws := ks.State.st.Windows
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
		ks.State.st.Windows = ws[:0]
		return true
	}
	m := copy(ws, ws[i:])
	clear(ws[m:])
	ks.State.st.Windows = ws[:m]
	return true
}

// settle frees a key with nothing open, or schedules its next wake-up,
// and records it as changed for the epoch's snapshot.
func (n *node[K, V, S, W]) settle(ks *entry[K, V, S], now int64, changed bool) {
	if changed {
		n.table.Changed(ks.Key, ks, n.epoch)
	}
	if len(ks.State.st.Windows) == 0 && len(ks.State.st.Queue) == 0 {
		if n.event && ks.State.st.Watermark != noWatermark {
			n.freed[ks.Key] = clockMark{ks.State.st.Watermark, ks.State.st.SeenAt}
		}
		n.table.Delete(ks)
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

func (n *node[K, V, S, W]) schedule(ks *entry[K, V, S], now int64) {
	t, ok := n.target(&ks.State.st)
	if !ok || t == math.MaxInt64 {
		n.table.Unschedule(ks)
		return
	}
	wake := t
	if n.event {
		wake = satAdd(ks.State.st.SeenAt, satSub(t, ks.State.st.Watermark))
	}
	n.table.Schedule(ks, max(wake, now+1))
}

// NextWake and Wake close windows on the worker's clock.
func (n *node[K, V, S, W]) NextWake() (time.Time, bool) {
	if n.gate.Aligned() == engine.EOF {
		return time.Time{}, false
	}
	at, ok := n.table.Next()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

func (n *node[K, V, S, W]) Wake(now time.Time) {
	n.begin()
	n.now, n.haveNow = now.UnixNano(), true
	n.wakeDue()
	n.flush()
}

// wakeDue closes the windows and releases the queued items whose wake-ups
// are due at n.now, in time order.
func (n *node[K, V, S, W]) wakeDue() {
	for {
		ks := n.table.PopDue(n.now)
		if ks == nil {
			return
		}
		n.cur = ks.Key
		wm := n.now
		if n.event {
			wm = watermarkAt(ks.State.st.Watermark, ks.State.st.SeenAt, n.now)
		}
		changed := n.release(ks, wm)
		changed = n.closeDue(ks, wm, false) || changed
		n.settle(ks, n.now, changed)
	}
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
	n.table.Snapshot(n.w, n.step, e, func(ks *entry[K, V, S]) ([]byte, error) {
		return codec.Marshal(&ks.State.st)
	}, func(k K) ([]byte, bool, error) {
		m, ok := n.freed[k]
		if !ok {
			return nil, false, nil
		}
		// A freed key is stored as its clock with no windows.
		b, err := codec.Marshal(&State[V, S]{Watermark: m.watermark, SeenAt: m.seenAt})
		return b, true, err
	})
	n.down.Barrier(e)
	n.late.Barrier(e)
	n.meta.Barrier(e)
}

// OnEOF closes every window. What it changes is never snapshotted: a later
// run resumes from the last barrier, with the windows still open.
func (n *node[K, V, S, W]) OnEOF() {
	n.begin()
	for _, ks := range n.table.Sorted() {
		n.cur = ks.Key
		n.release(ks, math.MaxInt64)
		n.closeDue(ks, math.MaxInt64, true)
		if len(n.downBuf)+len(n.metaBuf) >= engine.BatchSize {
			n.flush()
		}
	}
	n.flush()
	n.table.Reset()
	clear(n.freed)
	n.down.EOF()
	n.late.EOF()
	n.meta.EOF()
}

func (n *node[K, V, S, W]) resume(rows [][]engine.StateRow) error {
	if len(rows) == 0 {
		return nil
	}
	now := n.clock.Now().UnixNano()
	return n.table.Resume(rows, reflect.TypeFor[State[V, S]]().String(), func(ks *entry[K, V, S], raw []byte) (bool, error) {
		if err := codec.Unmarshal(raw, &ks.State.st); err != nil {
			return false, err
		}
		st := &ks.State.st
		if len(st.Windows) == 0 && len(st.Queue) == 0 {
			if n.event && st.Watermark != noWatermark {
				n.freed[ks.Key] = clockMark{st.Watermark, st.SeenAt}
			}
			return false, nil
		}
		n.schedule(ks, now)
		return true, nil
	})
}
