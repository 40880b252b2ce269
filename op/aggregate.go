package op

import (
	"cmp"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Collect gathers the values of each key into a slice and emits it when
// it holds maxSize values, when timeout has passed without a new value for
// the key (an inactivity timeout, as in Bytewax), or at the end of input,
// whichever comes first. The key's state is then discarded and the next
// value starts a new slice.
//
// It is commonly used for: batching writes to an external system per key,
// grouping events that arrive close together.
//
// Time is the worker's clock (runnel.WithClock in tests), read once per
// incoming batch: each value moves the slice's deadline to the clock reading
// of its batch plus timeout. A key that keeps receiving values within
// timeout therefore emits by size (or at the end) only. A timeout of zero or
// less disables it (emit by size and at the end of input only). maxSize
// below 1 is a build error.
//
// Values keep their arrival order within a slice. With recovery, the
// partial slices and their deadlines are snapshotted; a resumed run emits
// a slice whose deadline passed while the flow was down at once. V must
// be encodable (see Stateful). opts may hold a MigrateState to []V.
func Collect[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], timeout time.Duration, maxSize int, opts ...StateOption[[]V]) runnel.Stream[runnel.KV[K, []V]] {
	sc := scopeOf(up)
	if sc.Flow != nil && maxSize < 1 {
		return brokenWith[runnel.KV[K, []V]](sc.Flow, stepID, fmt.Sprintf("maxSize %d is below 1", maxSize))
	}
	emit := func(c *Context[K, []V], s []V) ([]V, bool) {
		c.Emit(s[:len(s):len(s)])
		return nil, false
	}
	logic := statefulLogic[K, V, []V, []V]{
		item: func(c *Context[K, []V], s []V, ok bool, v V) ([]V, bool) {
			s = append(s, v)
			if len(s) >= maxSize {
				return emit(c, s)
			}
			if timeout > 0 {
				c.NotifyAt(c.Now().Add(timeout))
			}
			return s, true
		},
		eof:     emit,
		migrate: migrationOf(opts),
	}
	if timeout > 0 {
		logic.notify = emit
	}
	return addStateful(sc, stepID, "collect", up, logic)
}

// FoldFinal folds the values of each key into an accumulator and emits the
// accumulator of every key at the end of input. builder makes a key's empty
// accumulator on its first value; folder combines it with each value, in
// arrival order.
//
// It is commonly used for: totals, histograms or summaries over a finite
// input (a file, a bounded backfill). On unbounded input it never emits:
// use a window operator (FoldWindow) instead.
//
// The state is discarded after the emit. Keys are emitted in key order
// on each worker (see Stateful's OnEOF). With recovery, accumulators are snapshotted per epoch;
// the snapshot a later run resumes from is the one at the last barrier
// before the end, so a continuation with more input keeps folding into the
// same accumulators. S must be encodable (see Stateful). opts may hold a
// MigrateState, converting accumulators stored with an older S.
func FoldFinal[K runnel.Key, V, S any](stepID string, up runnel.Stream[runnel.KV[K, V]], builder func() S, folder func(S, V) S, opts ...StateOption[S]) runnel.Stream[runnel.KV[K, S]] {
	logic := statefulLogic[K, V, S, S]{
		item: func(_ *Context[K, S], s S, ok bool, v V) (S, bool) {
			if !ok {
				s = builder()
			}
			return folder(s, v), true
		},
		eof: func(c *Context[K, S], s S) (S, bool) {
			c.Emit(s)
			var zero S
			return zero, false
		},
		migrate: migrationOf(opts),
	}
	return addStateful(scopeOf(up), stepID, "fold_final", up, logic)
}

// ReduceFinal combines the values of each key with reducer and emits each
// key's result at the end of input. The first value of a key is its
// initial result.
//
// It is commonly used for: sums, maxima, set unions over a finite input.
//
// reducer must be associative (reducer(reducer(a, b), c) equals
// reducer(a, reducer(b, c))), because ReduceFinal pre-aggregates: on the
// worker that reads them, the values of one batch are combined per key
// before they cross to the key's owner, so less data is exchanged. The
// order of values is kept: earlier values are always the left argument. It
// need not be commutative.
//
// ReduceFinal is a composite of two steps, "<id>.combine" (stateless,
// before the exchange) and "<id>.reduce" (keyed state, snapshotted per
// epoch as in FoldFinal). Keys are emitted in key order on each worker.
// opts may hold a MigrateState, converting results stored with an older V.
func ReduceFinal[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], reducer func(V, V) V, opts ...StateOption[V]) runnel.Stream[runnel.KV[K, V]] {
	return reduceFinal(scopeOf(up), stepID, "reduce_final", up, func(kv runnel.KV[K, V]) (K, V) { return kv.Key, kv.Value }, reducer, migrationOf(opts))
}

// CountFinal counts the items of up per key (key gives an item's key) and
// emits each key's count at the end of input.
//
// It is commonly used for: word counts, histograms of categories over a
// finite input. Use CountWindow on unbounded input.
//
// It is a ReduceFinal of 1s with pre-aggregation: only per-batch partial
// counts cross workers. Keys are emitted in key order on each worker.
func CountFinal[X any, K runnel.Key](stepID string, up runnel.Stream[X], key func(X) K) runnel.Stream[runnel.KV[K, int]] {
	return reduceFinal(scopeOf(up), stepID, "count_final", up, func(x X) (K, int) { return key(x), 1 },
		func(a, b int) int { return a + b }, nil)
}

// MaxFinal emits the largest value of each key at the end of input. Of
// equal values, the earliest is kept (this matters for floats: -0 and +0,
// and for MaxFinalFunc). NaN is smaller than every number (cmp.Compare).
//
// It is commonly used for: the peak of a metric per key over a finite
// input.
func MaxFinal[K runnel.Key, V cmp.Ordered](stepID string, up runnel.Stream[runnel.KV[K, V]], opts ...StateOption[V]) runnel.Stream[runnel.KV[K, V]] {
	return MaxFinalFunc(stepID, up, cmp.Compare[V], opts...)
}

// MaxFinalFunc is MaxFinal with a comparator (negative when a < b, as in
// slices.SortFunc). Of values that compare equal, the earliest is kept.
//
// It is commonly used for: the record with the largest field per key.
func MaxFinalFunc[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], compare func(a, b V) int, opts ...StateOption[V]) runnel.Stream[runnel.KV[K, V]] {
	return reduceFinal(scopeOf(up), stepID, "max_final", up, func(kv runnel.KV[K, V]) (K, V) { return kv.Key, kv.Value },
		func(a, b V) V {
			if compare(b, a) > 0 {
				return b
			}
			return a
		}, migrationOf(opts))
}

// MinFinal emits the smallest value of each key at the end of input. Of
// equal values, the earliest is kept. NaN is smaller than every number.
//
// It is commonly used for: the lowest price or first timestamp per key
// over a finite input.
func MinFinal[K runnel.Key, V cmp.Ordered](stepID string, up runnel.Stream[runnel.KV[K, V]], opts ...StateOption[V]) runnel.Stream[runnel.KV[K, V]] {
	return MinFinalFunc(stepID, up, cmp.Compare[V], opts...)
}

// MinFinalFunc is MinFinal with a comparator. Of values that compare
// equal, the earliest is kept.
func MinFinalFunc[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], compare func(a, b V) int, opts ...StateOption[V]) runnel.Stream[runnel.KV[K, V]] {
	return reduceFinal(scopeOf(up), stepID, "min_final", up, func(kv runnel.KV[K, V]) (K, V) { return kv.Key, kv.Value },
		func(a, b V) V {
			if compare(b, a) < 0 {
				return b
			}
			return a
		}, migrationOf(opts))
}

// reduceFinal is the composite behind ReduceFinal and its relatives: a
// per-worker combine step that maps items to (key, value) and reduces the
// values of each batch per key, then the keyed step that reduces across
// batches and emits at the end of input.
func reduceFinal[X any, K runnel.Key, V any](sc plan.Scope, stepID, kind string, up runnel.Stream[X], kv func(X) (K, V), reducer func(V, V) V, migrate *stateMigration) runnel.Stream[runnel.KV[K, V]] {
	inner, ok := compositeScope(sc, stepID)
	if !ok {
		if sc.Flow != nil {
			return pubapi.Broken[runnel.KV[K, V]](sc.Flow)
		}
		return runnel.Stream[runnel.KV[K, V]]{}
	}
	pre := statelessWorker(inner, "combine", kind+".combine", up, func(*engine.Worker) func([]X, []runnel.KV[K, V]) []runnel.KV[K, V] {
		idx := map[K]int{} // per worker: key -> its place in out
		return func(in []X, out []runnel.KV[K, V]) []runnel.KV[K, V] {
			clear(idx)
			for _, x := range in {
				k, v := kv(x)
				if i, seen := idx[k]; seen {
					out[i].Value = reducer(out[i].Value, v)
					continue
				}
				idx[k] = len(out)
				out = append(out, runnel.KV[K, V]{Key: k, Value: v})
			}
			return out
		}
	})
	logic := statefulLogic[K, V, V, V]{
		item: func(_ *Context[K, V], s V, ok bool, v V) (V, bool) {
			if !ok {
				return v, true
			}
			return reducer(s, v), true
		},
		eof: func(c *Context[K, V], s V) (V, bool) {
			c.Emit(s)
			var zero V
			return zero, false
		},
		migrate: migrate,
	}
	return addStateful(inner, "reduce", kind, pre, logic)
}

// compositeScope claims a composite operator's own id and returns the
// scope of its inner steps ("flow.id.inner"). ok is false when the flow is
// nil or the id is bad or taken (the error is recorded on the flow).
func compositeScope(sc plan.Scope, stepID string) (plan.Scope, bool) {
	return plan.Reserve(sc, stepID)
}
