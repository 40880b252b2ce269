package op

import (
	"fmt"
	"reflect"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Option is a value that may be missing: a join side that has not been
// seen for a key. It prints as the value's repr, or None.
type Option[V any] struct {
	Value V
	OK    bool
}

// Some is an Option holding v.
func Some[V any](v V) Option[V] { return Option[V]{Value: v, OK: true} }

// Get returns the value and whether it is present.
func (o Option[V]) Get() (V, bool) { return o.Value, o.OK }

// String renders the value as Python's repr would, or None when missing.
func (o Option[V]) String() string {
	if !o.OK {
		return "None"
	}
	return plan.Repr(o.Value)
}

// Joined2 is one row of a two-way Join: the value of each side, missing
// (OK false) where the side has no value for the key. Only the final and
// running emit modes emit rows with missing sides. It prints as a Python
// 2-tuple, ('a', None).
type Joined2[A, B any] struct {
	A Option[A]
	B Option[B]
}

// String prints the row as a Python tuple, None for a missing side.
func (j Joined2[A, B]) String() string { return "(" + j.A.String() + ", " + j.B.String() + ")" }

// Joined3 is one row of a three-way Join3; see Joined2.
type Joined3[A, B, C any] struct {
	A Option[A]
	B Option[B]
	C Option[C]
}

// String prints the row as a Python tuple, None for a missing side.
func (j Joined3[A, B, C]) String() string {
	return "(" + j.A.String() + ", " + j.B.String() + ", " + j.C.String() + ")"
}

// JoinInsert says what a join keeps of the several values a side may
// receive for one key. The zero value is JoinInsertLast, as in Bytewax.
type JoinInsert uint8

// The insert modes.
const (
	// JoinInsertLast keeps the latest value of each side.
	JoinInsertLast JoinInsert = iota
	// JoinInsertFirst keeps the first value of each side and ignores later
	// ones (until the state is discarded).
	JoinInsertFirst
	// JoinInsertProduct keeps every value of each side; an emit produces
	// one row per combination (the cartesian product, like a SQL cross
	// join on the key), the first side varying slowest.
	JoinInsertProduct
)

// String names the mode as Bytewax does ("first", "last", "product").
func (m JoinInsert) String() string {
	switch m {
	case JoinInsertLast:
		return "last"
	case JoinInsertFirst:
		return "first"
	case JoinInsertProduct:
		return "product"
	}
	return fmt.Sprintf("JoinInsert(%d)", uint8(m))
}

// JoinEmit says when a join emits rows. The zero value is
// JoinEmitComplete, as in Bytewax.
type JoinEmit uint8

// The emit modes.
const (
	// JoinEmitComplete emits once every side has a value for the key, then
	// discards the key's state: the next value starts a new join.
	JoinEmitComplete JoinEmit = iota
	// JoinEmitFinal emits at the end of input, with missing sides absent,
	// then discards the state. Only for finite input.
	JoinEmitFinal
	// JoinEmitRunning emits after every value, on any side, with missing
	// sides absent, and keeps the state forever (mind the key space).
	JoinEmitRunning
)

// String names the mode as Bytewax does ("complete", "final", "running").
func (m JoinEmit) String() string {
	switch m {
	case JoinEmitComplete:
		return "complete"
	case JoinEmitFinal:
		return "final"
	case JoinEmitRunning:
		return "running"
	}
	return fmt.Sprintf("JoinEmit(%d)", uint8(m))
}

// JoinOpts are a join's modes. The zero value is Bytewax's default: insert
// last, emit complete. A value that is not one of the constants (made by a
// conversion) is a build error.
type JoinOpts struct {
	Insert JoinInsert
	Emit   JoinEmit
}

func (o JoinOpts) check() string {
	if o.Insert > JoinInsertProduct {
		return fmt.Sprintf("unknown join insert mode %d; use the JoinInsert constants", uint8(o.Insert))
	}
	if o.Emit > JoinEmitRunning {
		return fmt.Sprintf("unknown join emit mode %d; use the JoinEmit constants", uint8(o.Emit))
	}
	return ""
}

// insertValue applies an insert mode to one side's values.
func insertValue[V any](vals []V, v V, mode JoinInsert) []V {
	switch mode {
	case JoinInsertFirst:
		if len(vals) == 0 {
			vals = append(vals, v)
		}
		return vals
	case JoinInsertProduct:
		return append(vals, v)
	default:
		return append(vals[:0], v)
	}
}

// opt returns vals[i] as an Option; i beyond vals is a missing side.
func opt[V any](vals []V, i int) Option[V] {
	if i < len(vals) {
		return Some(vals[i])
	}
	return Option[V]{}
}

// Join joins two keyed streams on their keys. For each key it keeps the
// values seen on each side (per opts.Insert) and emits rows (per opts.Emit):
//
//   - JoinEmitComplete: once both sides have a value, then the state is
//     discarded;
//   - JoinEmitFinal: at the end of input, then the state is discarded;
//   - JoinEmitRunning: after every value, keeping the state.
//
// With JoinInsertProduct an emit produces one row per combination of the
// kept values (several items downstream); otherwise one row.
//
// It is commonly used for: matching records from two sources by id
// (orders and payments, users and events); with JoinEmitRunning, keeping a
// live view of the latest value of each side.
//
// Join is one keyed stateful step with two inputs: both sides are
// exchanged by key to the key's owner, and barriers are aligned across both
// inputs, so a snapshot holds exactly the values of the epochs it closes.
// The interleaving of the two sides is that of their arrival, which across
// workers is not defined: with JoinEmitRunning or JoinEmitComplete the rows
// emitted can depend on it. The state (every side's kept values) is
// snapshotted per epoch; A and B must be encodable (see Stateful).
//
// A non-keyed stream cannot be joined: the sides must be streams of
// runnel.KV with the same key type, or the program does not compile.
func Join[K runnel.Key, A, B any](stepID string, left runnel.Stream[runnel.KV[K, A]], right runnel.Stream[runnel.KV[K, B]], opts JoinOpts) runnel.Stream[runnel.KV[K, Joined2[A, B]]] {
	type in = join2In[A, B]
	type out = Joined2[A, B]
	emitAll := func(c *Context[K, out], s join2State[A, B]) {
		for i := range max(1, len(s.A)) {
			for j := range max(1, len(s.B)) {
				c.Emit(out{A: opt(s.A, i), B: opt(s.B, j)})
			}
		}
	}
	logic := joinLogic(opts, emitAll,
		func(s join2State[A, B]) bool { return len(s.A) > 0 && len(s.B) > 0 },
		func(s join2State[A, B], _ bool, v in) join2State[A, B] {
			if v.side == 0 {
				s.A = insertValue(s.A, v.a, opts.Insert)
			} else {
				s.B = insertValue(s.B, v.b, opts.Insert)
			}
			return s
		})
	sides := []sideConnect[K, in, join2State[A, B], out]{
		sideOf[K, A, in, join2State[A, B], out](func(a A) in { return in{side: 0, a: a} }),
		sideOf[K, B, in, join2State[A, B], out](func(b B) in { return in{side: 1, b: b} }),
	}
	return addJoin(scopeOf(left), stepID, "join", opts, logic, sides, pubapi.Stream(left), pubapi.Stream(right))
}

type join2In[A, B any] struct {
	side uint8
	a    A
	b    B
}

// join2State is a two-way join's state for one key: the kept values of
// each side.
type join2State[A, B any] struct {
	A []A `cbor:"a"`
	B []B `cbor:"b"`
}

// Join3 joins three keyed streams on their keys; see Join for the modes
// and the guarantees.
func Join3[K runnel.Key, A, B, C any](stepID string, a runnel.Stream[runnel.KV[K, A]], b runnel.Stream[runnel.KV[K, B]], c runnel.Stream[runnel.KV[K, C]], opts JoinOpts) runnel.Stream[runnel.KV[K, Joined3[A, B, C]]] {
	type in = join3In[A, B, C]
	type out = Joined3[A, B, C]
	emitAll := func(ctx *Context[K, out], s join3State[A, B, C]) {
		for i := range max(1, len(s.A)) {
			for j := range max(1, len(s.B)) {
				for k := range max(1, len(s.C)) {
					ctx.Emit(out{A: opt(s.A, i), B: opt(s.B, j), C: opt(s.C, k)})
				}
			}
		}
	}
	logic := joinLogic(opts, emitAll,
		func(s join3State[A, B, C]) bool { return len(s.A) > 0 && len(s.B) > 0 && len(s.C) > 0 },
		func(s join3State[A, B, C], _ bool, v in) join3State[A, B, C] {
			switch v.side {
			case 0:
				s.A = insertValue(s.A, v.a, opts.Insert)
			case 1:
				s.B = insertValue(s.B, v.b, opts.Insert)
			default:
				s.C = insertValue(s.C, v.c, opts.Insert)
			}
			return s
		})
	sides := []sideConnect[K, in, join3State[A, B, C], out]{
		sideOf[K, A, in, join3State[A, B, C], out](func(x A) in { return in{side: 0, a: x} }),
		sideOf[K, B, in, join3State[A, B, C], out](func(x B) in { return in{side: 1, b: x} }),
		sideOf[K, C, in, join3State[A, B, C], out](func(x C) in { return in{side: 2, c: x} }),
	}
	return addJoin(scopeOf(a), stepID, "join3", opts, logic, sides, pubapi.Stream(a), pubapi.Stream(b), pubapi.Stream(c))
}

type join3In[A, B, C any] struct {
	side uint8
	a    A
	b    B
	c    C
}

type join3State[A, B, C any] struct {
	A []A `cbor:"a"`
	B []B `cbor:"b"`
	C []C `cbor:"c"`
}

// JoinN joins any number of keyed streams of the same type on their keys;
// see Join for the modes and the guarantees. Each row is a slice with one
// Option per side, in the order of sides. It prints as a Python list,
// ['a', None].
func JoinN[K runnel.Key, V any](stepID string, sides []runnel.Stream[runnel.KV[K, V]], opts JoinOpts) runnel.Stream[runnel.KV[K, []Option[V]]] {
	type out = []Option[V]
	if len(sides) == 0 {
		return runnel.Stream[runnel.KV[K, out]]{}
	}
	n := len(sides)
	emitAll := func(c *Context[K, out], s [][]V) {
		rows := 1
		for _, vals := range s {
			rows *= max(1, len(vals))
		}
		cells := make([]Option[V], rows*n) // one allocation for every row
		idx := make([]int, n)
		for r := range rows {
			row := cells[r*n : (r+1)*n : (r+1)*n]
			for i, vals := range s {
				row[i] = opt(vals, idx[i])
			}
			c.Emit(row)
			for i := n - 1; i >= 0; i-- { // odometer: the last side varies fastest
				idx[i]++
				if idx[i] < len(s[i]) {
					break
				}
				idx[i] = 0
			}
		}
	}
	logic := joinLogic(opts, emitAll,
		func(s [][]V) bool {
			for _, vals := range s {
				if len(vals) == 0 {
					return false
				}
			}
			return true
		},
		func(s [][]V, ok bool, v sideVal[V]) [][]V {
			if !ok || len(s) != n {
				s = make([][]V, n)
			}
			s[v.side] = insertValue(s[v.side], v.v, opts.Insert)
			return s
		})
	conns := make([]sideConnect[K, sideVal[V], [][]V, out], n)
	inputs := make([]plan.Input, n)
	for i, up := range sides {
		conns[i] = sideOf[K, V, sideVal[V], [][]V, out](func(v V) sideVal[V] { return sideVal[V]{side: i, v: v} })
		inputs[i] = pubapi.Stream(up)
	}
	return addJoin(scopeOf(sides[0]), stepID, "join_n", opts, logic, conns, inputs...)
}

type sideVal[V any] struct {
	side int
	v    V
}

// joinLogic is the keyed logic shared by the joins: insert updates the
// state with one side's value, complete says whether every side has one,
// emitAll emits the rows of a state.
func joinLogic[K runnel.Key, V, S, W any](opts JoinOpts, emitAll func(*Context[K, W], S), complete func(S) bool, insert func(S, bool, V) S) statefulLogic[K, V, S, W] {
	var logic statefulLogic[K, V, S, W]
	logic.item = func(c *Context[K, W], s S, ok bool, v V) (S, bool) {
		s = insert(s, ok, v)
		switch opts.Emit {
		case JoinEmitComplete:
			if complete(s) {
				emitAll(c, s)
				var zero S
				return zero, false
			}
		case JoinEmitRunning:
			emitAll(c, s)
		}
		return s, true
	}
	if opts.Emit == JoinEmitFinal {
		logic.eof = func(c *Context[K, W], s S) (S, bool) {
			emitAll(c, s)
			var zero S
			return zero, false
		}
	}
	return logic
}

func addJoin[K runnel.Key, V, S, W any](sc plan.Scope, stepID, kind string, opts JoinOpts, logic statefulLogic[K, V, S, W], sides []sideConnect[K, V, S, W], inputs ...plan.Input) runnel.Stream[runnel.KV[K, W]] {
	if sc.Flow != nil {
		if msg := opts.check(); msg != "" {
			return brokenWith[runnel.KV[K, W]](sc.Flow, stepID, msg)
		}
	}
	return addStatefulSides(sc, stepID, kind+" "+opts.Insert.String()+"/"+opts.Emit.String(), logic, sides, inputs...)
}

// sideConnect wires input i of a multi-input keyed stateful step to its
// node: items are exchanged by key and converted to the node's value type.
type sideConnect[K runnel.Key, V, S, W any] func(b *engine.Builder, i int, n *statefulNode[K, V, S, W])

// sideOf makes the sideConnect of an input of keyed items of type X,
// converted to the node's values by conv. The conversion goes through one
// reused buffer per input: no allocation per item.
func sideOf[K runnel.Key, X, V, S, W any](conv func(X) V) sideConnect[K, V, S, W] {
	return func(b *engine.Builder, i int, n *statefulNode[K, V, S, W]) {
		var buf []runnel.KV[K, V]
		keyed.Connect(b, n.gate, i, n.table.Ops, func(kv runnel.KV[K, X]) K { return kv.Key },
			func(batch []runnel.KV[K, X]) {
				for _, kv := range batch {
					buf = append(buf, runnel.KV[K, V]{Key: kv.Key, Value: conv(kv.Value)})
				}
				n.handle(buf)
				clear(buf)
				buf = buf[:0]
			})
	}
}

// addStatefulSides is addStateful for a keyed step with several inputs on
// one gate, so that barriers are aligned across all of them before the
// step snapshots.
func addStatefulSides[K runnel.Key, V, S, W any](sc plan.Scope, id, kind string, logic statefulLogic[K, V, S, W], sides []sideConnect[K, V, S, W], inputs ...plan.Input) runnel.Stream[runnel.KV[K, W]] {
	ops := keys.For[K]()
	st := &plan.Step{Kind: kind, Outs: 1}
	st.State = keyed.StepState(ops, stateTypeText(reflect.TypeFor[K](), reflect.TypeFor[S]()), reflect.TypeFor[S]())
	if logic.migrate != nil && sc.Flow != nil {
		m, err := logic.migrate.describe(reflect.TypeFor[K]())
		if err != nil {
			return brokenWith[runnel.KV[K, W]](sc.Flow, id, err.Error())
		}
		st.State.Migration = m
	}
	st.Build = func(b *engine.Builder) error {
		w := b.Worker()
		n := &statefulNode[K, V, S, W]{
			w: w, step: b.StepID(), logic: logic,
			table: keyed.NewTable[K, entry[S]](ops, b.Snapshots()),
		}
		n.ctx.clock = b.Clock()
		n.ctx.worker = w.Index
		b.ReportKey(func() string { return ops.Format(n.ctx.key) })
		n.out = engine.NewOutlet[runnel.KV[K, W]](b, 0)
		n.gate = b.NewGate(n)
		b.ReportKeys(func() int { return n.table.Len() })
		if b.RewriteResumed() {
			n.table.RewriteOnResume(b.StartEpoch())
		}
		if err := n.resume(b.ResumeRows()); err != nil {
			return err
		}
		for i, connect := range sides {
			connect(b, i, n)
		}
		if logic.notify != nil {
			b.AddWaker(n)
		}
		return nil
	}
	return add[runnel.KV[K, W]](sc, id, st, inputs...)
}
