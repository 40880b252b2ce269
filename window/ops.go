package window

import (
	"cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Window is the general window operator: logic runs per window of each
// key. Each window's state starts as the zero S; OnValue adds an item,
// OnMerge merges two sessions, OnClose emits the window's results. Items
// emitted through the Emitter go to Down with the window's id.
//
// It is commonly used for: window logic the other operators do not cover,
// such as emitting early results before a window closes, or emitting
// several items per window.
//
// The window state of each key (State) must be encodable; with recovery on,
// it is snapshotted at the end of every epoch that changed it.
func Window[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, lg Logic[V, S, W], opts ...Option) Out[K, V, W] {
	return build(stepID, "window", clock, windower, logic[V, S, W]{
		value: lg.OnValue, merge: lg.OnMerge, close: lg.OnClose,
	}, opts, kvInlet[K, V, S, W](up))
}

// FoldWindow folds the items of each window into an accumulator and emits
// it when the window closes. builder makes a window's empty accumulator,
// folder adds an item to it, and merger combines two sessions'
// accumulators when they merge (it may be nil for tumbling and sliding
// windows, which never merge).
//
// It is commonly used for: sums, averages, histograms, any per-window
// aggregate.
func FoldWindow[K runnel.Key, V, S any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower,
	builder func() S, folder func(acc S, value V) S, merger func(a, b S) S, opts ...Option) Out[K, V, S] {
	return build(stepID, "fold_window", clock, windower, foldLogic(builder, folder, merger), opts, kvInlet[K, V, S, S](up))
}

func foldLogic[V, S any](builder func() S, folder func(S, V) S, merger func(S, S) S) logic[V, S, S] {
	lg := logic[V, S, S]{
		init:  builder,
		value: func(_ *Emitter[S], s S, v V) S { return folder(s, v) },
		close: func(e *Emitter[S], s S) { e.Emit(s) },
	}
	if merger != nil {
		lg.merge = func(_ *Emitter[S], a, b S) S { return merger(a, b) }
	}
	return lg
}

// CollectWindow gathers the items of each window into a slice, emitted
// when the window closes. Items are in time order (Ordered, the default,
// as in Bytewax), or in arrival order with the Unordered option.
//
// It is commonly used for: batching a window's items for a bulk write,
// inspecting windows in tests.
func CollectWindow[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, opts ...Option) Out[K, V, []V] {
	return build(stepID, "collect_window", clock, windower, foldLogic(nil,
		func(s []V, v V) []V { return append(s, v) },
		func(a, b []V) []V { return append(a, b...) }), opts, kvInlet[K, V, []V, []V](up))
}

// reduced is ReduceWindow's per-window state.
type reduced[V any] struct {
	Value V    `cbor:"value"`
	OK    bool `cbor:"ok"`
}

// ReduceWindow combines the items of each window with reducer, the first
// item being the initial value, and emits the result when the window
// closes. reducer also combines sessions that merge.
//
// It is commonly used for: keeping the latest, largest or combined item of
// each window.
func ReduceWindow[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, reducer func(a, b V) V, opts ...Option) Out[K, V, V] {
	return build(stepID, "reduce_window", clock, windower, reduceLogic(reducer), opts, kvInlet[K, V, reduced[V], V](up))
}

func reduceLogic[V any](reducer func(a, b V) V) logic[V, reduced[V], V] {
	if reducer == nil {
		return logic[V, reduced[V], V]{}
	}
	return logic[V, reduced[V], V]{
		value: func(_ *Emitter[V], s reduced[V], v V) reduced[V] {
			if s.OK {
				return reduced[V]{reducer(s.Value, v), true}
			}
			return reduced[V]{v, true}
		},
		merge: func(_ *Emitter[V], a, b reduced[V]) reduced[V] {
			switch {
			case !b.OK:
				return a
			case !a.OK:
				return b
			}
			return reduced[V]{reducer(a.Value, b.Value), true}
		},
		close: func(e *Emitter[V], s reduced[V]) {
			if s.OK {
				e.Emit(s.Value)
			}
		},
	}
}

// CountWindow counts the items of each window per key, where key gives
// each item's key; it emits the count when the window closes. Keying is
// part of the step (there is no separate KeyOn step), as in Bytewax's
// count_window.
//
// It is commonly used for: event counts per user, per page or per sensor,
// per minute.
func CountWindow[K runnel.Key, X any](stepID string, up runnel.Stream[X], clock Clock[X], windower Windower, key func(X) K, opts ...Option) Out[K, X, int] {
	if key == nil {
		if f := pubapi.Scope(up).Flow; f != nil {
			plan.Fail(f, stepID, "the key function is nil")
			return Out[K, X, int]{Down: pubapi.Broken[runnel.KV[K, Result[int]]](f),
				Late: pubapi.Broken[runnel.KV[K, Late[X]]](f), Meta: pubapi.Broken[runnel.KV[K, Meta]](f)}
		}
		return Out[K, X, int]{}
	}
	lg := logic[X, int, int]{
		value: func(_ *Emitter[int], s int, _ X) int { return s + 1 },
		merge: func(_ *Emitter[int], a, b int) int { return a + b },
		close: func(e *Emitter[int], s int) { e.Emit(s) },
	}
	return build(stepID, "count_window", clock, windower, lg, opts,
		mapInlet[K, X, int, int](up, func(x *X) (K, X) { return key(*x), *x }))
}

// MaxWindow emits the largest item of each window when it closes.
func MaxWindow[K runnel.Key, V cmp.Ordered](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, opts ...Option) Out[K, V, V] {
	return MaxWindowFunc(stepID, up, clock, windower, cmp.Compare[V], opts...)
}

// MaxWindowFunc emits the largest item of each window by cmp (the first
// of equal items).
func MaxWindowFunc[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, cmp func(a, b V) int, opts ...Option) Out[K, V, V] {
	var red func(a, b V) V
	if cmp != nil {
		red = func(a, b V) V {
			if cmp(b, a) > 0 {
				return b
			}
			return a
		}
	}
	return build(stepID, "max_window", clock, windower, reduceLogic(red), opts, kvInlet[K, V, reduced[V], V](up))
}

// MinWindow emits the smallest item of each window when it closes.
func MinWindow[K runnel.Key, V cmp.Ordered](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, opts ...Option) Out[K, V, V] {
	return MinWindowFunc(stepID, up, clock, windower, cmp.Compare[V], opts...)
}

// MinWindowFunc emits the smallest item of each window by cmp (the first
// of equal items).
func MinWindowFunc[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], clock Clock[V], windower Windower, cmp func(a, b V) int, opts ...Option) Out[K, V, V] {
	var red func(a, b V) V
	if cmp != nil {
		red = func(a, b V) V {
			if cmp(b, a) < 0 {
				return b
			}
			return a
		}
	}
	return build(stepID, "min_window", clock, windower, reduceLogic(red), opts, kvInlet[K, V, reduced[V], V](up))
}
