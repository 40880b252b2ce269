package engine

import (
	"errors"
	"fmt"
)

// ErrPanic marks a StepError caused by a panic in user code.
var ErrPanic = errors.New("panic")

// StepError is a failure in one step on one worker. Its message starts with
// the step id path so that a user can find the failing operator.
type StepError struct {
	Step   string // full step id, "flow.step"
	Worker int
	Key    string // the state key, when the failure concerns one
	Err    error
}

// Error starts with the step id path, then the worker and key.
func (e *StepError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("step %s (worker %d, key %q): %v", e.Step, e.Worker, e.Key, e.Err)
	}
	return fmt.Sprintf("step %s (worker %d): %v", e.Step, e.Worker, e.Err)
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// panicError carries a recovered panic value and its stack.
type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string {
	return fmt.Sprintf("panic: %v\n%s", p.value, p.stack)
}

// Unwrap returns ErrPanic and, when the panic value is an error, that
// error, so that errors.Is sees the cause.
func (p *panicError) Unwrap() []error {
	if err, ok := p.value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}
