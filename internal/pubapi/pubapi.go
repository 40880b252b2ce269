// Package pubapi is how Runnel's own packages (op, window, the connectors,
// tests) reach the plan behind the root package's public types. The root
// package's Dataflow and Stream wrap internal/plan's without exporting a
// way to unwrap them, so that users see only their documented API; this
// package, internal to the module, converts between the two.
package pubapi

import (
	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
)

// Source returns the engine's source behind a public one (nil for nil).
func Source[T any](s runnel.Source[T]) engine.Source[T] {
	if s == nil {
		return nil
	}
	return plan.SourceHook(s).(engine.Source[T])
}

// Sink returns the engine's sink behind a public one (nil for nil).
func Sink[T any](s runnel.Sink[T]) engine.Sink[T] {
	if s == nil {
		return nil
	}
	return plan.SinkHook(s).(engine.Sink[T])
}

// Flow returns the plan of a flow, or nil for a nil flow.
func Flow(d *runnel.Dataflow) *plan.Dataflow {
	if d == nil {
		return nil
	}
	return plan.FlowHook(d)
}

// Stream returns the plan stream of a public stream (the zero plan stream
// for the zero Stream).
func Stream[T any](s runnel.Stream[T]) plan.Stream[T] {
	return plan.StreamHook(s).(plan.Stream[T])
}

// Public wraps a plan stream as a public one.
func Public[T any](s plan.Stream[T]) runnel.Stream[T] {
	var p runnel.Stream[T]
	plan.WrapHook(&p, s)
	return p
}

// Scope is the top-level scope of the flow a stream belongs to (a scope
// with a nil flow for the zero Stream).
func Scope[T any](s runnel.Stream[T]) plan.Scope { return plan.ScopeOf(Stream(s)) }

// Out returns output i of the last step added to d, as a public stream.
func Out[T any](d *plan.Dataflow, i int) runnel.Stream[T] { return Public(plan.Out[T](d, i)) }

// Broken is plan.Broken as a public stream.
func Broken[T any](d *plan.Dataflow) runnel.Stream[T] { return Public(plan.Broken[T](d)) }
