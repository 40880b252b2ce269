package op

import (
	"fmt"
	"iter"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// This file holds the variants of operators whose function may fail with an
// error (the Try… operators) or return an iterator (the …Seq operators). A
// failure stops the run with a *runnel.StepError naming the step, the item
// or key, and the input position where known, like op.TryMap; it is not a
// panic, so the error carries no stack.

// fail stops the run from inside an operator's function with err, which
// the worker attributes to the running step (and its current key).
func fail(err error) { panic(engine.Failure{Err: err}) }

// FlatMapSeq is FlatMap for a function that returns an iterator, such as
// strings.FieldsSeq or maps.Keys: every value the iterator yields is
// emitted, in order.
//
// It is commonly used for: splitting lines into words without building a
// slice per line.
func FlatMapSeq[X, Y any](stepID string, up runnel.Stream[X], fn func(X) iter.Seq[Y]) runnel.Stream[Y] {
	return stateless(scopeOf(up), stepID, "flat_map_seq", up, nil, func(in []X, out []Y) []Y {
		for _, x := range in {
			for y := range fn(x) {
				out = append(out, y)
			}
		}
		return out
	})
}

// TryKeyOn is KeyOn for a key function that can fail: an error stops the
// run, naming the step and the item.
//
// It is commonly used for: keys parsed out of the item (a user id field
// that must be present).
func TryKeyOn[K runnel.Key, X any](stepID string, up runnel.Stream[X], key func(X) (K, error)) runnel.Stream[runnel.KV[K, X]] {
	return stateless(scopeOf(up), stepID, "try_key_on", up, nil, func(in []X, out []runnel.KV[K, X]) []runnel.KV[K, X] {
		for _, x := range in {
			k, err := key(x)
			if err != nil {
				fail(fmt.Errorf("item %s: %w", itemText(x), err))
			}
			out = append(out, runnel.KV[K, X]{Key: k, Value: x})
		}
		return out
	})
}

// TryEnrichCached is EnrichCached for a getter that can fail (a lookup that
// times out, a row that must exist): an error from getter stops the run,
// naming the step and the key looked up. Values are cached only when
// getter succeeds.
func TryEnrichCached[X any, K comparable, V, Y any](stepID string, up runnel.Stream[X], getter func(K) (V, error), ttl time.Duration,
	mapper func(cache *TTLCache[K, V], item X) Y) runnel.Stream[Y] {
	get := func(k K) V {
		v, err := getter(k)
		if err != nil {
			fail(fmt.Errorf("get %s: %w", itemText(k), err))
		}
		return v
	}
	return EnrichCached(stepID, up, get, ttl, mapper)
}

// TryStatefulMap is StatefulMap for a mapper that can fail: an error stops
// the run, naming the step and the key. The key's state stays as it was
// before the failing item; nothing of the open epoch is committed, so a
// resumed run (with -r) handles the item again.
func TryStatefulMap[K runnel.Key, V, S, W any](stepID string, up runnel.Stream[runnel.KV[K, V]],
	mapper func(state S, ok bool, value V) (S, bool, W, error)) runnel.Stream[runnel.KV[K, W]] {
	logic := statefulLogic[K, V, S, W]{item: func(c *Context[K, W], s S, ok bool, v V) (S, bool) {
		s, keep, w, err := mapper(s, ok, v)
		if err != nil {
			c.Fail(fmt.Errorf("item %s: %w", itemText(v), err))
		}
		c.Emit(w)
		return s, keep
	}}
	return addStateful(scopeOf(up), stepID, "try_stateful_map", up, logic)
}
