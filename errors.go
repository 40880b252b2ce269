package runnel

import (
	"errors"

	"github.com/runnel-dev/runnel/internal/engine"
)

// StepError is the error Run returns (wrapped) when a step fails on a
// worker: user code returned an error (op.TryMap, Context.Fail), panicked,
// or a connector failed. Get it with errors.As:
//
//	var se *runnel.StepError
//	if errors.As(err, &se) {
//		log.Printf("step %s failed on key %q: %v", se.Step, se.Key, se.Err)
//	}
//
// Its message names the step id path, the worker, the key of a keyed step,
// and, when the step ran on the worker that read the failing batch, the
// input partition and its position after that batch:
//
//	step sum.parse (worker 0, input sum.inp partition "data.txt" in the batch ending at position 1834): item "12x": strconv.ParseInt: parsing "12x": invalid syntax
type StepError struct {
	// Step is the full step id path, "flow.step" (or "flow.outer.inner"
	// inside a composite operator).
	Step string
	// Worker is the index of the worker the step failed on.
	Worker int
	// Key is the state key (formatted as recovery data stores it) when the
	// failure happened in a keyed step's logic or concerns one key; else
	// empty.
	Key string
	// Input, Partition and Position say where the failing batch was read
	// when the failing step ran on the worker that read it (before any
	// exchange): the input step's id, the source partition, and the
	// partition's position after that batch, as its Snapshot returns it
	// (printed with %v). They are empty otherwise, and Position is empty
	// for sources that keep no position.
	Input, Partition, Position string
	// Err is the cause. For a panic it wraps ErrPanic (and the panic
	// value, when that is an error).
	Err error
	// Stack is the failing goroutine's stack after a panic, for debug
	// logging; nil for errors returned by user code. The message leaves it
	// out. Main logs it at debug level (--log-level debug).
	Stack []byte
}

// Error names the step, worker, key and input position, then the cause.
func (e *StepError) Error() string { return e.internal().Error() }

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

func (e *StepError) internal() *engine.StepError {
	return &engine.StepError{Step: e.Step, Worker: e.Worker, Key: e.Key, Input: e.Input,
		Partition: e.Partition, Position: e.Position, Err: e.Err, Stack: e.Stack}
}

// ErrPanic is wrapped by a StepError's Err when user code panicked:
// errors.Is(err, runnel.ErrPanic) tells a bug from a returned error.
var ErrPanic = errors.New("panic")

func init() {
	engine.ErrPanic = ErrPanic
	engine.AsHook = func(e *engine.StepError, target any) bool {
		p, ok := target.(**StepError)
		if !ok {
			return false
		}
		*p = &StepError{Step: e.Step, Worker: e.Worker, Key: e.Key, Input: e.Input,
			Partition: e.Partition, Position: e.Position, Err: e.Err, Stack: e.Stack}
		return true
	}
}
