package op

import (
	"github.com/runnel-dev/runnel"
)

// FlatMapBatch transforms a whole batch of items at once into any number
// of items: fn appends its output for batch to out and returns it.
//
// It is commonly used for: calling a service or a model once per batch
// instead of once per item, or amortising any per-call overhead.
//
// out is a buffer owned by the step on the current worker, empty and with
// the capacity of earlier batches, so a fn that only appends allocates
// nothing once warmed up. fn must keep neither batch nor out after it
// returns, and runs on every worker at once (it must not share mutable
// data without locking). Batch boundaries depend on the sources, the
// exchange and the worker count: fn must not give them a meaning.
// Stateless: each worker transforms the batches it holds, in order.
func FlatMapBatch[X, Y any](stepID string, up runnel.Stream[X], fn func(batch []X, out []Y) []Y) runnel.Stream[Y] {
	return stateless(scopeOf(up), stepID, "flat_map_batch", up, nil, fn)
}

// Flatten emits the elements of each slice of up, in order.
//
// It is commonly used for: undoing a Collect, or unpacking items that
// arrive grouped (a message holding several records).
func Flatten[X any](stepID string, up runnel.Stream[[]X]) runnel.Stream[X] {
	return stateless(scopeOf(up), stepID, "flatten", up, nil, func(in [][]X, out []X) []X {
		for _, xs := range in {
			out = append(out, xs...)
		}
		return out
	})
}

// FlatMapValue transforms the value of each keyed item into any number of
// values, each emitted with the item's key.
//
// It is commonly used for: splitting a keyed record into parts that keep
// its key (a user's sessions, an order's lines). Stateless, no exchange.
func FlatMapValue[K runnel.Key, V, W any](stepID string, up runnel.Stream[runnel.KV[K, V]], fn func(V) []W) runnel.Stream[runnel.KV[K, W]] {
	return stateless(scopeOf(up), stepID, "flat_map_value", up, nil, func(in []runnel.KV[K, V], out []runnel.KV[K, W]) []runnel.KV[K, W] {
		for _, kv := range in {
			for _, w := range fn(kv.Value) {
				out = append(out, runnel.KV[K, W]{Key: kv.Key, Value: w})
			}
		}
		return out
	})
}

// FilterValue keeps the keyed items whose value pred accepts.
//
// It is commonly used for: dropping irrelevant values before a keyed
// stateful step, without touching the keys. Stateless, no exchange.
func FilterValue[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], pred func(V) bool) runnel.Stream[runnel.KV[K, V]] {
	return stateless(scopeOf(up), stepID, "filter_value", up, nil, func(in []runnel.KV[K, V], out []runnel.KV[K, V]) []runnel.KV[K, V] {
		for _, kv := range in {
			if pred(kv.Value) {
				out = append(out, kv)
			}
		}
		return out
	})
}

// FilterMapValue transforms the value of each keyed item and keeps the
// results for which fn returns true, with the item's key: a MapValue and a
// FilterValue in one pass.
//
// It is commonly used for: parsing values and dropping the ones that do
// not parse. Stateless, no exchange.
func FilterMapValue[K runnel.Key, V, W any](stepID string, up runnel.Stream[runnel.KV[K, V]], fn func(V) (W, bool)) runnel.Stream[runnel.KV[K, W]] {
	return stateless(scopeOf(up), stepID, "filter_map_value", up, nil, func(in []runnel.KV[K, V], out []runnel.KV[K, W]) []runnel.KV[K, W] {
		for _, kv := range in {
			if w, ok := fn(kv.Value); ok {
				out = append(out, runnel.KV[K, W]{Key: kv.Key, Value: w})
			}
		}
		return out
	})
}

// StatefulFlatMap keeps a state per key and maps each item with it to any
// number of values, emitted with the item's key. mapper receives the key's
// state (ok is false when the key has none yet; state is then the zero
// value) and the value, and returns the new state, whether to keep it
// (false discards the key's state) and the values to emit, in order.
//
// It is commonly used for: per-key state machines that emit zero or more
// events per input (alerts on a threshold crossing, de-duplicating bursts).
//
// Each key is handled on the one worker that owns it, in the order its
// items arrive there (the order of one source partition is kept). With
// recovery, the keys changed in an epoch are snapshotted at its end; S must
// be encodable (exported fields, no funcs or channels), which is checked
// before the run starts. The returned slice is copied: mapper may reuse it;
// the values in it must not share a slice, map or pointer with the state
// that a later call changes in place (emit copies; see Stateful).
// opts may hold a MigrateState, converting state stored with an older S.
func StatefulFlatMap[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	mapper func(state S, ok bool, value V) (S, bool, []W), opts ...StateOption[S]) runnel.Stream[runnel.KV[K, W]] {
	logic := statefulLogic[K, V, S, W]{item: func(c *Context[K, W], s S, ok bool, v V) (S, bool) {
		s, keep, ws := mapper(s, ok, v)
		for _, w := range ws {
			c.Emit(w)
		}
		return s, keep
	}, migrate: migrationOf(opts)}
	return addStateful(scopeOf(up), stepID, "stateful_flat_map", up, logic)
}
