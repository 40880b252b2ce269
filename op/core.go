package op

import (
	"fmt"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Input adds a step that reads src into the flow.
//
// It is commonly used for: reading a list in tests (runneltest.NewSource),
// files, Kafka topics, or generators. A partitioned source is spread over
// all workers, partition by partition; its positions are snapshotted every
// epoch, so a resumed run continues where the last committed epoch ended.
func Input[T any](stepID string, public *runnel.Dataflow, source runnel.Source[T]) runnel.Stream[T] {
	flow := pubapi.Flow(public)
	if flow == nil {
		return runnel.Stream[T]{}
	}
	st := &plan.Step{Kind: "input", Outs: 1, Input: true}
	src := pubapi.Source(source)
	if src == nil {
		plan.Tried(flow, true, false)
		return brokenWith[T](flow, stepID, "the source is nil")
	}
	if t := src.StateType(); t != "" {
		st.State = stateOf("position "+t, src)
	}
	st.Build = func(b *engine.Builder) error {
		return src.BuildInput(b, engine.NewOutlet[T](b, 0))
	}
	return add[T](plan.FlowScope(flow), stepID, st)
}

// Output adds a step that writes every item of up to sink. It is a
// terminal step: it returns nothing.
//
// A dynamic sink writes on each worker the items that reach it there; a
// partitioned sink receives each item on the worker that owns its
// partition, and its positions are snapshotted for exactly-once output.
func Output[T any](stepID string, up runnel.Stream[T], to runnel.Sink[T]) {
	sc := scopeOf(up)
	if sc.Flow == nil {
		return
	}
	sink := pubapi.Sink(to)
	if sink == nil {
		plan.Tried(sc.Flow, false, true)
		brokenWith[T](sc.Flow, stepID, "the sink is nil")
		return
	}
	st := &plan.Step{Kind: "output", Output: true}
	if t := sink.StateType(); t != "" {
		st.State = stateOf("position "+t, sink)
	}
	st.Build = func(b *engine.Builder) error { return sink.BuildOutput(b, engine.Inlet[T]{}) }
	plan.Add(sc, stepID, st, pubapi.Stream(up))
}

// OutputTo is Output for a sink made by a constructor without arguments,
// such as stdio.NewSink: pass the constructor itself, not a call, and Go
// infers its item type from up, as it infers cmp.Compare's in
// slices.SortFunc:
//
//	op.OutputTo("out", counts, stdio.NewSink)
//
// does what op.Output("out", counts, stdio.NewSink[runnel.KV[string, int]]())
// does.
func OutputTo[T any](stepID string, up runnel.Stream[T], newSink func() runnel.Sink[T]) {
	if newSink == nil {
		if sc := scopeOf(up); sc.Flow != nil {
			plan.Tried(sc.Flow, false, true)
			brokenWith[T](sc.Flow, stepID, "the sink constructor is nil")
		}
		return
	}
	Output(stepID, up, newSink())
}

// stateShape returns the position type's shape function of a source or
// sink made by the root package (PartitionedInput, PartitionedOutput).
func stateShape(x any) func() string {
	if s, ok := x.(interface{ StateShape() string }); ok {
		return s.StateShape
	}
	return nil
}

// stateOf describes the recovered state of a source or sink: positions of
// the partitions it lists, or keys it routes itself.
func stateOf(typ string, s interface{ CheckState() error }) *plan.State {
	st := &plan.State{Type: typ, Check: s.CheckState, Shape: stateShape(s)}
	switch s := s.(type) {
	case engine.Partitioned:
		st.ListParts = s.ListParts
	case engine.Routed:
		st.Route = s.Route
	}
	return st
}

func brokenWith[T any](flow *plan.Dataflow, stepID, msg string) runnel.Stream[T] {
	plan.Fail(flow, stepID, msg)
	return pubapi.Broken[T](flow)
}

// Map transforms each item with fn.
//
// It is commonly used for: parsing, converting types, computing a field.
func Map[X, Y any](stepID string, up runnel.Stream[X], fn func(X) Y) runnel.Stream[Y] {
	return stateless(scopeOf(up), stepID, "map", up, nil, func(in []X, out []Y) []Y {
		for _, x := range in {
			out = append(out, fn(x))
		}
		return out
	})
}

// TryMap transforms each item with fn; an error from fn stops the run with
// a *runnel.StepError that names the step, the item (as Python would print
// it, cut to 60 characters) and, when the step runs on the worker that read
// the item, the input partition and position (for failures that must not be
// skipped).
func TryMap[X, Y any](stepID string, up runnel.Stream[X], fn func(X) (Y, error)) runnel.Stream[Y] {
	sc := scopeOf(up)
	var id string
	if sc.Flow != nil {
		id = sc.Path + "." + stepID
	}
	return statelessWorker(sc, stepID, "try_map", up, func(w *engine.Worker) func(in []X, out []Y) []Y {
		return func(in []X, out []Y) []Y {
			for _, x := range in {
				y, err := fn(x)
				if err != nil {
					w.Fail(id, "", fmt.Errorf("item %s: %w", itemText(x), err))
				}
				out = append(out, y)
			}
			return out
		}
	})
}

// statelessWorker is stateless for logic that needs its worker (to fail
// with an error, or to know its index).
func statelessWorker[X, Y any](sc plan.Scope, id, kind string, up runnel.Stream[X], mk func(*engine.Worker) func([]X, []Y) []Y) runnel.Stream[Y] {
	st := &plan.Step{Kind: kind, Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &statelessNode[X, Y]{fn: mk(b.Worker())}
		n.out = engine.NewOutlet[Y](b, 0)
		g := b.NewGate(n)
		engine.Connect(b, g, 0, nil, n.handle)
		return nil
	}
	return add[Y](sc, id, st, pubapi.Stream(up))
}

// FlatMap transforms each item into any number of items.
//
// It is commonly used for: splitting lines into words, unpacking batches.
func FlatMap[X, Y any](stepID string, up runnel.Stream[X], fn func(X) []Y) runnel.Stream[Y] {
	return stateless(scopeOf(up), stepID, "flat_map", up, nil, func(in []X, out []Y) []Y {
		for _, x := range in {
			out = append(out, fn(x)...)
		}
		return out
	})
}

// Filter keeps the items for which pred returns true.
func Filter[X any](stepID string, up runnel.Stream[X], pred func(X) bool) runnel.Stream[X] {
	return stateless(scopeOf(up), stepID, "filter", up, nil, func(in []X, out []X) []X {
		for _, x := range in {
			if pred(x) {
				out = append(out, x)
			}
		}
		return out
	})
}

// FilterMap transforms each item and keeps the results for which fn
// returns true: a Map and a Filter in one pass.
func FilterMap[X, Y any](stepID string, up runnel.Stream[X], fn func(X) (Y, bool)) runnel.Stream[Y] {
	return stateless(scopeOf(up), stepID, "filter_map", up, nil, func(in []X, out []Y) []Y {
		for _, x := range in {
			if y, ok := fn(x); ok {
				out = append(out, y)
			}
		}
		return out
	})
}

// Inspect calls fn on each item and passes the items on unchanged.
//
// It is commonly used for: debugging and logging.
//
// As in Bytewax, an Inspect is an end of the flow: a flow whose only end
// is an Inspect (or InspectDebug, or Raises) is valid without an Output.
// fn runs on every worker at once: it must be safe for concurrent use.
func Inspect[X any](stepID string, up runnel.Stream[X], fn func(X)) runnel.Stream[X] {
	st := statelessStep("inspect", nil, func(in []X, out []X) []X {
		for _, x := range in {
			fn(x)
		}
		return append(out, in...)
	})
	st.Probe = true
	return add[X](scopeOf(up), stepID, st, pubapi.Stream(up))
}

// KeyOn makes a keyed stream: each item becomes KV{key(item), item}.
//
// It is commonly used for: preparing a stream for a stateful operator.
func KeyOn[K runnel.Key, X any](stepID string, up runnel.Stream[X], key func(X) K) runnel.Stream[runnel.KV[K, X]] {
	return stateless(scopeOf(up), stepID, "key_on", up, nil, func(in []X, out []runnel.KV[K, X]) []runnel.KV[K, X] {
		for _, x := range in {
			out = append(out, runnel.KV[K, X]{Key: key(x), Value: x})
		}
		return out
	})
}

// KeyRm drops the keys of a keyed stream.
func KeyRm[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]]) runnel.Stream[V] {
	return stateless(scopeOf(up), stepID, "key_rm", up, nil, func(in []runnel.KV[K, V], out []V) []V {
		for _, kv := range in {
			out = append(out, kv.Value)
		}
		return out
	})
}

// MapValue transforms the value of each keyed item, keeping its key.
func MapValue[K runnel.Key, V, W any](stepID string, up runnel.Stream[runnel.KV[K, V]], fn func(V) W) runnel.Stream[runnel.KV[K, W]] {
	return stateless(scopeOf(up), stepID, "map_value", up, nil, func(in []runnel.KV[K, V], out []runnel.KV[K, W]) []runnel.KV[K, W] {
		for _, kv := range in {
			out = append(out, runnel.KV[K, W]{Key: kv.Key, Value: fn(kv.Value)})
		}
		return out
	})
}

// Redistribute spreads items evenly over all workers, round-robin, to
// balance work after a skewed input. Order between items is not kept.
func Redistribute[X any](stepID string, up runnel.Stream[X]) runnel.Stream[X] {
	sc := scopeOf(up)
	st := &plan.Step{Kind: "redistribute", Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &statelessNode[X, X]{fn: func(in, out []X) []X { return append(out, in...) }}
		n.out = engine.NewOutlet[X](b, 0)
		g := b.NewGate(n)
		next, workers := b.Worker().Index, b.Worker().Workers
		engine.Connect(b, g, 0, func(X) int {
			next++
			if next >= workers {
				next = 0
			}
			return next
		}, n.handle)
		return nil
	}
	return add[X](sc, stepID, st, pubapi.Stream(up))
}

// Merge combines streams of the same type into one. Items keep their order
// within each input; between inputs, order is not defined.
func Merge[X any](stepID string, ups ...runnel.Stream[X]) runnel.Stream[X] {
	var sc plan.Scope
	for _, u := range ups {
		if sc = scopeOf(u); sc.Flow != nil {
			break // a zero stream among the others is reported by plan.Add
		}
	}
	st := &plan.Step{Kind: "merge", Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &statelessNode[X, X]{fn: func(in, out []X) []X { return in }}
		n.out = engine.NewOutlet[X](b, 0)
		g := b.NewGate(n)
		for i := range ups {
			engine.Connect(b, g, i, nil, n.out.Push)
		}
		return nil
	}
	inputs := make([]plan.Input, len(ups))
	for i, u := range ups {
		inputs[i] = pubapi.Stream(u)
	}
	return add[X](sc, stepID, st, inputs...)
}

// itemText is an item as failure messages show it: its Python-style repr,
// cut short so that a huge item does not flood the message.
func itemText(x any) string {
	s := plan.Repr(x)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}
