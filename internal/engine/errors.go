package engine

import (
	"errors"
	"fmt"
	"strings"
)

// ErrPanic marks a StepError caused by a panic in user code. The root
// package sets it to runnel.ErrPanic at init, so that the two are one.
var ErrPanic = errors.New("panic")

// StepError is a failure in one step on one worker. Its message starts with
// the step id path so that a user can find the failing operator. The root
// package converts it to runnel.StepError (see AsHook).
type StepError struct {
	Step   string // full step id, "flow.step"
	Worker int
	Key    string // the state key, when the failure concerns one
	// Input, Partition and Position say where the failing batch was read,
	// when the failing step ran on the worker that read it, before any
	// exchange: the input step, its partition, and the partition's
	// position after that batch.
	Input, Partition, Position string
	Err                        error
	// Stack is the failing goroutine's stack for a panic, else nil.
	Stack []byte
}

// Error starts with the step id path, then the worker, the key and where
// the input came from.
func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %s (worker %d", e.Step, e.Worker)
	if e.Key != "" {
		fmt.Fprintf(&b, ", key %q", e.Key)
	}
	if e.Partition != "" {
		fmt.Fprintf(&b, ", input %s partition %q", e.Input, e.Partition)
		if e.Position != "" {
			fmt.Fprintf(&b, " in the batch ending at position %s", e.Position)
		}
	}
	fmt.Fprintf(&b, "): %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// AsHook, when set (by the root package), lets errors.As convert a
// StepError to a public error type.
var AsHook func(e *StepError, target any) bool

// As implements errors.As for the public step error type.
func (e *StepError) As(target any) bool {
	return AsHook != nil && AsHook(e, target)
}

// Failure is panicked by user-facing helpers (a Context's Fail, the Try
// variants of operators) to stop the run with an error rather than a panic:
// the worker turns it into a StepError of the step, with no stack.
type Failure struct {
	Key string // the state key, when known
	Err error
}

// panicError carries a recovered panic value. Its message leaves out the
// stack, which the StepError keeps for debug logging.
type panicError struct {
	value any
}

func (p *panicError) Error() string {
	return fmt.Sprintf("panic: %v", p.value)
}

// Unwrap returns ErrPanic and, when the panic value is an error, that
// error, so that errors.Is sees the cause.
func (p *panicError) Unwrap() []error {
	if err, ok := p.value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// StaleState marks a build error caused by recovered data that no longer
// fits the step: a position of a partition that is gone, a position past the
// end of a file, a state that does not decode. The worker adds to its
// message how to start the step over with --drop-state.
func StaleState(err error) error { return &staleState{err} }

type staleState struct{ err error }

func (s *staleState) Error() string { return s.err.Error() }
func (s *staleState) Unwrap() error { return s.err }

// withDropHint appends the --drop-state advice to a build error of step
// caused by stale recovered data.
func withDropHint(step string, err error) error {
	var ss *staleState
	if !errors.As(err, &ss) {
		return err
	}
	return fmt.Errorf("%w; if the input or the step changed on purpose, run once with --drop-state %s to discard the step's recovered state (it then starts over)", err, step)
}
