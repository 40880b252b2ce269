// Package op holds Runnel's operators: one generic function per operator,
// taking the step id first, the upstream stream(s) second and the logic
// last, as Bytewax's operators do. Types are inferred from the streams and
// the functions, so a mismatch between steps is a compile error.
//
// Keyed operators take a Stream of runnel.KV; each key is handled by one
// worker (items cross workers by a stable hash of the key), so per-key state
// needs no locking. Functions given to operators run on the worker
// goroutines: they must not block for long, and a panic in one stops the
// run with the step id in the error.
package op

import (
	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// stateless adds a one-input step whose node transforms each batch with
// fn, which appends its output to out and returns it. Every stateless
// operator is this primitive with a different fn, as Bytewax builds its
// operators on flat_map_batch.
func stateless[X, Y any](sc plan.Scope, id, kind string, up runnel.Stream[X], route func(X) int, fn func(in []X, out []Y) []Y) runnel.Stream[Y] {
	return add[Y](sc, id, statelessStep(kind, route, fn), pubapi.Stream(up))
}

// statelessStep is the step that stateless adds.
func statelessStep[X, Y any](kind string, route func(X) int, fn func(in []X, out []Y) []Y) *plan.Step {
	st := &plan.Step{Kind: kind, Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &statelessNode[X, Y]{fn: fn}
		n.out = engine.NewOutlet[Y](b, 0)
		g := b.NewGate(n)
		engine.Connect(b, g, 0, route, n.handle)
		return nil
	}
	return st
}

func add[Y any](sc plan.Scope, id string, st *plan.Step, inputs ...plan.Input) runnel.Stream[Y] {
	if sc.Flow == nil {
		return runnel.Stream[Y]{}
	}
	if !plan.Add(sc, id, st, inputs...) {
		return pubapi.Broken[Y](sc.Flow)
	}
	return pubapi.Out[Y](sc.Flow, 0)
}

type statelessNode[X, Y any] struct {
	fn  func([]X, []Y) []Y
	buf []Y
	out *engine.Outlet[Y]
}

func (n *statelessNode[X, Y]) handle(batch []X) {
	n.buf = n.fn(batch, n.buf[:0])
	n.out.Push(n.buf)
}

func (n *statelessNode[X, Y]) OnBarrier(e engine.Epoch) { n.out.Barrier(e) }
func (n *statelessNode[X, Y]) OnEOF()                   { n.out.EOF() }

// scopeOf is the scope for a step reading up, reporting a zero stream.
func scopeOf[T any](up runnel.Stream[T]) plan.Scope { return pubapi.Scope(up) }
