// Package plan is the logical dataflow: steps, their ids, the typed streams
// between them, and the checks done while a flow is built. The root package
// re-exports its user-facing types; operators in package op add steps.
package plan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/engine"
)

// Dataflow is a graph of steps. Build it with runnel.NewDataflow and the
// operators in package op; run it with runnel.Run or runnel.Main. Mistakes
// made while building (a duplicate step id, a stream from another flow) are
// recorded on the flow and returned by Err and by Run: operator calls never
// panic for them.
type Dataflow struct {
	id    string
	steps []*Step
	ids   map[string]bool
	errs  []error
	// required are outputs that some step must consume (an error stream),
	// with the message Validate gives when none does.
	required map[engine.Port]string
	consumed map[engine.Port]bool
	// triedInput and triedOutput record that an input or output step was
	// added, even one that failed to build.
	triedInput, triedOutput bool
}

// New returns an empty dataflow. The id names the flow in step ids
// ("flow.step") and in recovery data.
func New(id string) *Dataflow {
	d := &Dataflow{id: id, ids: map[string]bool{}}
	if err := checkID(id); err != nil {
		d.errs = append(d.errs, fmt.Errorf("dataflow id: %w", err))
	}
	return d
}

// ID is the flow's id.
func (d *Dataflow) ID() string { return d.id }

// Err reports every build error recorded so far, or nil.
func (d *Dataflow) Err() error { return errors.Join(d.errs...) }

// Steps lists the flow's steps in the order they were added, which is
// also an order where each step comes after its inputs.
func (d *Dataflow) Steps() []*Step { return d.steps }

// Stream is a typed stream of items flowing out of a step. Operators take
// streams and return new ones; a Stream's zero value belongs to no flow and
// is reported as a build error by any operator that receives it.
type Stream[T any] struct {
	flow *Dataflow
	port engine.Port
	id   string
}

// Flow is the dataflow the stream belongs to (nil for the zero Stream).
func (s Stream[T]) Flow() *Dataflow { return s.flow }

// StepID is the full id of the step that produces the stream.
func (s Stream[T]) StepID() string { return s.id }

// Port is where the stream comes from.
func (s Stream[T]) Port() engine.Port { return s.port }

// Step is one node of the logical plan.
type Step struct {
	ID     string        // full id: "flow.step" or "flow.outer.inner"
	Kind   string        // operator name, for messages
	Inputs []engine.Port // upstream outputs, in input order
	Outs   int           // number of outputs
	// Build instantiates the step on one worker.
	Build func(b *engine.Builder) error
	// State describes the step's recoverable state; nil when it has none.
	State *State
	// Input and Output mark source and sink steps.
	Input, Output bool
	// Probe marks an Inspect, InspectDebug or Raises step: an end of the
	// flow that makes it valid without an Output, as in Bytewax.
	Probe bool

	consumers int
}

// State describes a step's recoverable state, for recovery metadata and
// for routing recovered rows to the worker that owns them.
type State struct {
	// Type is recorded in recovery data; a stored step whose type differs
	// from the flow's is refused at start.
	Type string
	// Check rejects a state type the codec cannot encode faithfully,
	// before the run starts.
	Check func() error
	// Shape returns the codec shape of the state type (codec.Shape),
	// recorded beside Type so that a changed field is a changed step; nil
	// when the step cannot tell.
	Shape func() string
	// Route returns the worker that owns a recovered key (keyed steps).
	Route func(key string, workers int) (int, error)
	// Keyed says the step is a keyed step whose inputs are exchanged by
	// key (and, in group mode, cut at a repartition topic); Route(key, n)
	// is then the key's key group among n.
	Keyed bool
	// Migration, when set, converts state stored with an older type (an
	// operator's migration option).
	Migration *Migration
	// ListParts, set for partitioned sources and sinks instead of Route,
	// lists their partitions. The runner calls it once per run; the
	// listing routes recovered positions and is handed to every worker.
	ListParts func(ctx context.Context) ([]string, error)
}

// Migration converts a step's state stored with an older type into its
// current one, one key's encoded value at a time.
type Migration struct {
	// FromType and FromShape are the Type and Shape the step recorded with
	// its old state type; Name is that type's name inside FromType.
	FromType, FromShape, Name string
	// Convert turns one stored value of the old type into the encoding of
	// the current one. Its error is the decode's or the user's conversion's.
	Convert func(raw []byte) ([]byte, error)
}

// Terminal says whether no step consumes this step's outputs.
func (s *Step) Terminal() bool { return s.consumers == 0 }

func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("step id is empty")
	case strings.Contains(id, "."):
		return fmt.Errorf("step id %q contains '.', which separates the parts of a step path", id)
	case strings.ContainsAny(id, "\x00\n"):
		return fmt.Errorf("step id %q contains a NUL or newline", id)
	}
	return nil
}

// Scope is where a step id is made: the flow itself, or inside a composite
// operator's step.
type Scope struct {
	Flow *Dataflow
	Path string // full id of the enclosing step, or the flow id
}

// FlowScope is the top-level scope of a flow.
func FlowScope(d *Dataflow) Scope { return Scope{Flow: d, Path: d.id} }

// Inner is the scope of a composite operator's inner steps.
func (s Scope) Inner(id string) Scope { return Scope{Flow: s.Flow, Path: s.Path + "." + id} }

// Input is one upstream stream of a step being added, type-erased.
type Input interface {
	flowOf() *Dataflow
	portOf() engine.Port
}

func (s Stream[T]) flowOf() *Dataflow   { return s.flow }
func (s Stream[T]) portOf() engine.Port { return s.port }

// ScopeOf returns the top-level scope of the flow a stream belongs to.
// For the zero stream it returns a scope with a nil flow.
func ScopeOf[T any](s Stream[T]) Scope {
	if s.flow == nil {
		return Scope{}
	}
	return FlowScope(s.flow)
}

// Add records a step with the given inputs and returns its full id and
// index. Build errors (bad or duplicate id, an input from no flow or another
// flow) are recorded on the flow; ok is false then and the caller returns a
// stream that carries the error on.
func Add(sc Scope, id string, st *Step, inputs ...Input) (ok bool) {
	d := sc.Flow
	if d == nil {
		return false
	}
	Tried(d, st.Input, st.Output || st.Probe)
	full := sc.Path + "." + id
	st.ID = full
	if err := checkID(id); err != nil {
		d.errs = append(d.errs, fmt.Errorf("step %s: %w", full, err))
		return false
	} else if d.ids[full] {
		d.errs = append(d.errs, fmt.Errorf("step %s: the id is used twice; step ids must be unique", full))
		return false
	}
	for i, in := range inputs {
		f := in.flowOf()
		switch {
		case f == nil:
			d.errs = append(d.errs, fmt.Errorf("step %s: input %d is a zero Stream that no operator made", full, i))
			return false
		case f != d:
			d.errs = append(d.errs, fmt.Errorf("step %s: input %d comes from dataflow %q, not %q", full, i, f.id, d.id))
			return false
		case in.portOf().Step < 0:
			return false // its producer failed to build; that error is recorded
		}
		st.Inputs = append(st.Inputs, in.portOf())
	}
	d.ids[full] = true
	for _, p := range st.Inputs {
		d.steps[p.Step].consumers++
		if d.consumed == nil {
			d.consumed = map[engine.Port]bool{}
		}
		d.consumed[p] = true
	}
	d.steps = append(d.steps, st)
	return true
}

// Out returns output i of the last step added to the flow.
func Out[T any](d *Dataflow, i int) Stream[T] {
	last := len(d.steps) - 1
	return Stream[T]{flow: d, port: engine.Port{Step: last, Out: i}, id: d.steps[last].ID}
}

// Broken is a stream that belongs to the flow but was not made, because the
// step that would have made it had a build error (already recorded). Steps
// downstream of it are not checked further.
func Broken[T any](d *Dataflow) Stream[T] {
	return Stream[T]{flow: d, port: engine.Port{Step: -1}}
}

// Validate checks the finished flow: no build errors, at least one input
// and one output (an Output, or an Inspect, InspectDebug or Raises step),
// no step downstream of a broken one.
func (d *Dataflow) Validate() error {
	errs := append([]error(nil), d.errs...)
	var inputs, outputs int
	for _, s := range d.steps {
		if s.Input {
			inputs++
		}
		if s.Output || s.Probe {
			outputs++
		}
		for _, p := range s.Inputs {
			if p.Step < 0 && len(d.errs) == 0 {
				errs = append(errs, fmt.Errorf("step %s: its input comes from a step that failed to build", s.ID))
			}
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(d.required), func(a, b engine.Port) int { return a.Step - b.Step }) {
		if !d.consumed[p] {
			errs = append(errs, fmt.Errorf("step %s: %s", d.steps[p.Step].ID, d.required[p]))
		}
	}
	// An input or output that failed to build counts: "no output step"
	// after "the sink is nil" would only mislead.
	if inputs == 0 && !d.triedInput {
		errs = append(errs, fmt.Errorf("dataflow %q has no input step; add one with op.Input", d.id))
	}
	if outputs == 0 && !d.triedOutput {
		errs = append(errs, fmt.Errorf("dataflow %q has no output step; add one with op.Output (or op.Inspect)", d.id))
	}
	return errors.Join(errs...)
}

// Require marks a stream that some step must consume, such as an error
// stream: a flow that leaves it unused fails Validate with msg, so that
// nothing is dropped silently.
func Require[T any](s Stream[T], msg string) {
	if s.flow == nil || s.port.Step < 0 {
		return
	}
	if s.flow.required == nil {
		s.flow.required = map[engine.Port]string{}
	}
	s.flow.required[s.port] = msg
}

// Tried records that an input (or output) step was added to d, even if it
// failed to build, so that Validate does not also say the flow has none.
func Tried(d *Dataflow, input, output bool) {
	d.triedInput = d.triedInput || input
	d.triedOutput = d.triedOutput || output
}

// Fail records a build error for a step that could not be added.
func Fail(d *Dataflow, id, msg string) {
	d.errs = append(d.errs, fmt.Errorf("step %s.%s: %s", d.id, id, msg))
}

// Reserve claims the id of a composite operator, whose inner steps nest
// under it ("flow.id.inner"), and returns their scope. Like Add, it
// records a bad or duplicate id on the flow and reports ok false.
func Reserve(sc Scope, id string) (inner Scope, ok bool) {
	d := sc.Flow
	if d == nil {
		return sc, false
	}
	full := sc.Path + "." + id
	if err := checkID(id); err != nil {
		d.errs = append(d.errs, fmt.Errorf("step %s: %w", full, err))
		return sc, false
	}
	if d.ids[full] {
		d.errs = append(d.errs, fmt.Errorf("step %s: the id is used twice; step ids must be unique", full))
		return sc, false
	}
	d.ids[full] = true
	return sc.Inner(id), true
}
