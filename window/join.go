package window

import (
	"fmt"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/op"
)

// Either is an item of one side of a JoinWindow: Left when IsRight is
// false, Right otherwise. The join's clock and Late stream see items as
// Eithers.
type Either[A, B any] struct {
	Left    A    `cbor:"left"`
	Right   B    `cbor:"right"`
	IsRight bool `cbor:"is_right"`
}

// String prints the side's value.
func (e Either[A, B]) String() string {
	if e.IsRight {
		return plan.Repr(e.Right)
	}
	return plan.Repr(e.Left)
}

// Joined is one row of JoinWindow: a value of each side, and whether there
// was one (a side without a value has its Has flag false; only the final
// and running emit modes emit such rows).
type Joined[A, B any] struct {
	Left     A    `cbor:"left"`
	Right    B    `cbor:"right"`
	HasLeft  bool `cbor:"has_left"`
	HasRight bool `cbor:"has_right"`
}

// String prints the pair as a Python tuple, with None for a missing side.
func (j Joined[A, B]) String() string {
	l, r := "None", "None"
	if j.HasLeft {
		l = plan.Repr(j.Left)
	}
	if j.HasRight {
		r = plan.Repr(j.Right)
	}
	return fmt.Sprintf("(%s, %s)", l, r)
}

// Sided is an item of one side of a JoinWindowN: the index of its side
// and its value. JoinWindowN's Late stream carries Sideds.
type Sided[V any] struct {
	Side  int `cbor:"side"`
	Value V   `cbor:"value"`
}

// String prints the value.
func (s Sided[V]) String() string { return plan.Repr(s.Value) }

// JoinModes sets the insert and emit modes of JoinWindow and JoinWindowN,
// with the meanings they have for op.Join, per window:
//
//   - op.JoinInsertLast keeps the last value of each side in the window,
//     op.JoinInsertFirst the first, op.JoinInsertProduct all of them (an
//     emit is then one row per combination, the first side varying
//     slowest);
//   - op.JoinEmitComplete emits as soon as every side has a value in the
//     window, then forgets them (later values in the same window start a
//     new row); op.JoinEmitFinal emits when the window closes, with the
//     missing sides absent; op.JoinEmitRunning emits after every value,
//     missing sides absent, and keeps the values until the window closes.
//
// Without this option a window join keeps the last value of each side and
// emits when the window closes (insert last, emit final), as Bytewax's
// join_window does by default. Note that the zero op.JoinOpts is insert
// last, emit complete, as for op.Join. The option is a build error on
// other window operators, as are modes that are not the op constants.
func JoinModes(modes op.JoinOpts) Option {
	return optionFunc(func(o *options) { o.join = &modes })
}

func joinModes(opts []Option) op.JoinOpts {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.join == nil {
		return op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal}
	}
	return *o.join
}

func checkJoinModes(m op.JoinOpts) string {
	if m.Insert > op.JoinInsertProduct {
		return fmt.Sprintf("unknown join insert mode %d; use the op.JoinInsert constants", uint8(m.Insert))
	}
	if m.Emit > op.JoinEmitRunning {
		return fmt.Sprintf("unknown join emit mode %d; use the op.JoinEmit constants", uint8(m.Emit))
	}
	return ""
}

// insert applies an insert mode to one side's values in a window.
func insert[V any](vals []V, v V, mode op.JoinInsert) []V {
	switch mode {
	case op.JoinInsertFirst:
		if len(vals) == 0 {
			vals = append(vals, v)
		}
		return vals
	case op.JoinInsertProduct:
		return append(vals, v)
	default:
		return append(vals[:0], v)
	}
}

// mergeSide merges one side's values of a later session (from) into those
// of the session it merges into.
func mergeSide[V any](into, from []V, mode op.JoinInsert) []V {
	switch {
	case len(from) == 0:
		return into
	case mode == op.JoinInsertFirst && len(into) > 0:
		return into
	case mode == op.JoinInsertLast:
		return append(into[:0], from[len(from)-1])
	}
	return append(into, from...)
}

// joinLogic is the window logic of the joins: insert adds a value to a
// window's state, merge merges sessions, complete says whether every side
// has a value, rows emits a state's rows, and empty says whether it holds
// nothing.
func joinLogic[V, S, W any](modes op.JoinOpts, insert func(S, V) S, merge func(into, from S) S,
	complete func(S) bool, rows func(*Emitter[W], S), empty func(S) bool) logic[V, S, W] {
	var zero S
	return logic[V, S, W]{
		value: func(e *Emitter[W], s S, v V) S {
			s = insert(s, v)
			switch modes.Emit {
			case op.JoinEmitComplete:
				if complete(s) {
					rows(e, s)
					return zero
				}
			case op.JoinEmitRunning:
				rows(e, s)
			}
			return s
		},
		merge: func(e *Emitter[W], into, from S) S {
			s := merge(into, from)
			if modes.Emit == op.JoinEmitComplete && complete(s) {
				rows(e, s)
				return zero
			}
			return s
		},
		close: func(e *Emitter[W], s S) {
			if modes.Emit == op.JoinEmitFinal && !empty(s) {
				rows(e, s)
			}
		},
	}
}

// join2State is a two-way window join's state for one window: the kept
// values of each side.
type join2State[A, B any] struct {
	Left  []A `cbor:"left"`
	Right []B `cbor:"right"`
}

// JoinWindow joins two keyed streams per window. By default, when a
// window closes it emits, per key, the last value seen in it on each side
// (a side with no value has its Has flag false), as Bytewax's join_window
// does; JoinModes selects the other insert and emit modes (first, last or
// every value per side; emit when complete, when the window closes, or
// after every value). The clock reads Either items, so an event clock can
// take the time from either side:
//
//	clock := window.EventClock(func(e window.Either[Click, View]) time.Time {
//		if e.IsRight {
//			return e.Right.At
//		}
//		return e.Left.At
//	}, time.Second)
//
// It is commonly used for: matching events of two streams that happen
// close in time (a click and its page view, a request and its response).
//
// Both sides are exchanged by key to the key's owner and barriers are
// aligned across them, so a snapshot holds exactly the values of the
// epochs it closes. Across workers the interleaving of the sides is not
// defined: with the complete and running modes the rows can depend on it.
func JoinWindow[K runnel.Key, A, B any](stepID string, left runnel.Stream[runnel.KV[K, A]], right runnel.Stream[runnel.KV[K, B]],
	clock Clock[Either[A, B]], windower Windower, opts ...Option) Out[K, Either[A, B], Joined[A, B]] {
	type E = Either[A, B]
	type J = Joined[A, B]
	type S = join2State[A, B]
	modes := joinModes(opts)
	lg := joinLogic(modes,
		func(s S, v E) S {
			if v.IsRight {
				s.Right = insert(s.Right, v.Right, modes.Insert)
			} else {
				s.Left = insert(s.Left, v.Left, modes.Insert)
			}
			return s
		},
		func(into, from S) S {
			into.Left = mergeSide(into.Left, from.Left, modes.Insert)
			into.Right = mergeSide(into.Right, from.Right, modes.Insert)
			return into
		},
		func(s S) bool { return len(s.Left) > 0 && len(s.Right) > 0 },
		func(e *Emitter[J], s S) {
			for i := range max(1, len(s.Left)) {
				for j := range max(1, len(s.Right)) {
					var row J
					if i < len(s.Left) {
						row.Left, row.HasLeft = s.Left[i], true
					}
					if j < len(s.Right) {
						row.Right, row.HasRight = s.Right[j], true
					}
					e.Emit(row)
				}
			}
		},
		func(s S) bool { return len(s.Left) == 0 && len(s.Right) == 0 })
	return build(stepID, "join_window "+modes.Insert.String()+"/"+modes.Emit.String(), clock, windower, lg, opts,
		mapInlet[K, E, S, J](left, func(kv *runnel.KV[K, A]) (K, E) { return kv.Key, E{Left: kv.Value} }),
		mapInlet[K, E, S, J](right, func(kv *runnel.KV[K, B]) (K, E) { return kv.Key, E{Right: kv.Value, IsRight: true} }))
}

// JoinWindowN joins any number of keyed streams of the same type per
// window; see JoinWindow for the modes (JoinModes) and guarantees. Each row
// is a slice with one op.Option per side, in the order of sides; it prints
// as a Python list, ['a', None]. The clock reads the values; the Late
// stream carries them with their side (Sided).
//
// It is commonly used for: gathering what several sources said about a
// key within a window (readings of one sensor from several gateways).
func JoinWindowN[K runnel.Key, V any](stepID string, sides []runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, opts ...Option) Out[K, Sided[V], []op.Option[V]] {
	type row = []op.Option[V]
	type SV = Sided[V]
	if len(sides) == 0 {
		return Out[K, SV, row]{}
	}
	n := len(sides)
	modes := joinModes(opts)
	lg := joinLogic(modes,
		func(s [][]V, v SV) [][]V {
			if len(s) != n {
				s = make([][]V, n)
			}
			s[v.Side] = insert(s[v.Side], v.Value, modes.Insert)
			return s
		},
		func(into, from [][]V) [][]V {
			if len(into) != n {
				into = make([][]V, n)
			}
			for i := range from {
				into[i] = mergeSide(into[i], from[i], modes.Insert)
			}
			return into
		},
		func(s [][]V) bool {
			for _, vals := range s {
				if len(vals) == 0 {
					return false
				}
			}
			return len(s) == n
		},
		func(e *Emitter[row], s [][]V) {
			rows := 1
			for _, vals := range s {
				rows *= max(1, len(vals))
			}
			cells := make([]op.Option[V], rows*n) // one allocation for every row
			idx := make([]int, n)
			for r := range rows {
				out := cells[r*n : (r+1)*n : (r+1)*n]
				for i, vals := range s {
					if idx[i] < len(vals) {
						out[i] = op.Some(vals[idx[i]])
					}
				}
				e.Emit(out)
				for i := n - 1; i >= 0; i-- { // odometer: the last side varies fastest
					idx[i]++
					if idx[i] < len(s[i]) {
						break
					}
					idx[i] = 0
				}
			}
		},
		func(s [][]V) bool {
			for _, vals := range s {
				if len(vals) > 0 {
					return false
				}
			}
			return true
		})
	var sc Clock[SV]
	if clock != nil {
		cs := clock.setup()
		sc = func(s *ClockSetup[SV]) {
			s.kind, s.wait = cs.kind, cs.wait
			if ts := cs.ts; ts != nil {
				s.ts = func(s SV) time.Time { return ts(s.Value) }
			}
		}
	}
	inlets := make([]inlet[K, SV, [][]V, row], n)
	for i, up := range sides {
		inlets[i] = mapInlet[K, SV, [][]V, row](up, func(kv *runnel.KV[K, V]) (K, SV) { return kv.Key, SV{Side: i, Value: kv.Value} })
	}
	return build(stepID, "join_window_n "+modes.Insert.String()+"/"+modes.Emit.String(), sc, windower, lg, opts, inlets...)
}

// isJoin says whether a window step kind is a join's.
func isJoin(kind string) bool { return strings.HasPrefix(kind, "join_window") }
