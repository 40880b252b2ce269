// Package runclock hands a connector the run's clock (runnel.WithClock)
// when its source is built, so that partitions schedule polls on the same
// clock as the engine.
package runclock

import (
	"sync"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// Clock is what a partition reads the time from.
type Clock interface{ Now() time.Time }

// Once holds the clock of the run, set by the first worker that builds the
// source (every worker of a run shares one clock).
type Once struct {
	once sync.Once
	c    Clock
}

// Set stores c unless a clock is already stored.
func (o *Once) Set(c Clock) { o.once.Do(func() { o.c = c }) }

// Get returns the stored clock. It must follow a Set on the same
// goroutine (the worker's build).
func (o *Once) Get() Clock { return o.c }

// Wrap returns src, which calls set with the run's clock before building
// its partitions on each worker.
func Wrap[T any](src runnel.Source[T], set func(Clock)) runnel.Source[T] {
	return wrapped[T]{src, set}
}

type wrapped[T any] struct {
	runnel.Source[T]
	set func(Clock)
}

func (w wrapped[T]) BuildInput(b *engine.Builder, out *engine.Outlet[T]) error {
	w.set(b.Clock())
	return w.Source.BuildInput(b, out)
}

// StateShape forwards the wrapped source's state shape, when it has one,
// so that recovery still records it.
func (w wrapped[T]) StateShape() string {
	if s, ok := w.Source.(interface{ StateShape() string }); ok {
		return s.StateShape()
	}
	return ""
}
