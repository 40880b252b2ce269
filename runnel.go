// Package runnel is stateful stream processing for Go with recoverable
// state: typed dataflows built from operators (package op), run on many
// workers, that snapshot their state and input positions and resume after a
// crash or a clean stop without re-reading what they already processed.
//
// # Usage
//
// A flow is an ordinary Go program:
//
//	flow := runnel.NewDataflow("recovery")
//	nums := op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}))
//	keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
//	sums := op.StatefulMap("running_count", keyed,
//		func(sum int, _ bool, x int) (int, bool, int) { return sum + x, true, sum + x })
//	op.OutputTo("out", sums, stdio.NewSink)
//	runnel.Main(flow)
//
// Main parses the standard flags (-w workers, -r recovery directory, -s
// snapshot interval, -b backup interval, ...; see Config), runs the flow and
// exits non-zero on error. Run does the same for programs and tests that
// manage their own flags.
//
// # Semantics
//
// Every worker runs every step. Keyed stateful steps receive each key on
// exactly one worker (stable xxhash routing). Inputs stamp items with
// epochs; at the end of each epoch a barrier flows behind its items, and
// stateful steps snapshot the keys that changed. With a recovery directory,
// an epoch is committed once every worker has persisted its snapshots for
// it; a later run resumes from the last committed epoch. See
// docs/recovery.md.
//
// # Two-phase sinks
//
// A sink whose output must appear exactly once in a system with
// transactions (Kafka, a database) implements TwoPhaseSink (and wraps it
// with TwoPhaseOutput); docs/connectors.md has a complete example.
//
// A two-phase sink makes its output visible only together with the epoch
// that produced it, as Flink's TwoPhaseCommitSinkFunction and Kafka
// transactions do. The contract between Runnel and a sink partition,
// in the order things happen:
//
//  1. Write. WriteBatch receives the items of the open epoch. They may go
//     to the external system at once, but must stay invisible to readers
//     (inside an open transaction).
//  2. Pre-commit. When barrier e has reached the sink on this worker, the
//     Runnel calls PreCommit(e). The partition makes everything written so
//     far durable but still invisible (flushes the transaction) and returns
//     what it needs to finish it later: a transactional id, a producer id
//     and epoch. With a recovery directory Runnel stores that value in
//     snapshot e, in the same commit as every other step's state for e. An
//     error stops the run before e can commit. PreCommit is called at every
//     barrier, with or without a recovery directory.
//  3. Committed. Once epoch e is durable (every worker's snapshots for e
//     are written and the frontier says e+1; without a recovery directory,
//     once every worker has passed barrier e), Runnel calls
//     Committed(e) on the worker that owns the partition, on that worker's
//     goroutine. The partition commits everything it pre-committed for
//     epochs <= e. One call may cover several epochs, and items of later
//     epochs may already have arrived through WriteBatch: a partition that
//     can hold one transaction at a time needs a second one (a pool) for
//     them. An error from Committed stops the run; the next run finishes
//     the commit from the stored state (step 4), so nothing is lost.
//     At the end of a run (end of input or a clean stop) the last epoch is
//     committed before Close. At the end of input, what steps emit after
//     the last barrier (final aggregations, window flushes) is pre-committed
//     with PreCommit(EOF), not stored, and committed with Committed(EOF)
//     once the last epoch is durable; a crash before then replays the last
//     epoch, which reaches the end again.
//  4. Resume. The next execution hands the state stored with the newest
//     committed snapshot back to the sink's Build. Its epoch is committed
//     in recovery data, so the sink must finish what that state names
//     (commit it; a commit that already happened must succeed again, and a
//     commit that cannot be done is an error, never a silent loss), and
//     abort anything newer: those epochs are replayed.
//  5. Failure. A run that fails, or is killed, never calls Committed for
//     the epochs that were not durable, and Close must not commit.
//
// A TwoPhaseSink may have a method CheckEpochInterval(time.Duration) error:
// it is called with the snapshot interval before the run starts (a Kafka
// sink refuses an interval too close to its transaction timeout).
//
// Rescaling: a TwoPhaseSink keeps one state per worker (key "worker-N").
// When a run has fewer workers than the last, worker i also receives the
// states of the old workers j >= workers with j mod workers == i, finishes
// them in Build, and Runnel deletes them from recovery data at the
// first barrier, once the new run's own states replace them.
package runnel

import (
	"reflect"

	"github.com/runnel-dev/runnel/internal/plan"
)

// Dataflow is a graph of steps, built with NewDataflow and the operators in
// package op, and run with Run or Main. Build mistakes (a duplicate or
// malformed step id, a stream from another flow, a nil function) are
// recorded on the flow, named by step id, and returned by Err, Validate and
// Run: operator calls never panic for them.
type Dataflow struct {
	p *plan.Dataflow
}

// ID returns the flow's id, as given to NewDataflow.
func (d *Dataflow) ID() string { return d.p.ID() }

// Err returns the build errors recorded so far (joined with errors.Join,
// each naming its step), or nil.
func (d *Dataflow) Err() error { return d.p.Err() }

// Validate checks the finished flow as Run does before it starts: no build
// errors, at least one input step, and at least one output (op.Output, or
// op.Inspect, op.InspectDebug or op.Raises), and every stream that must be
// consumed (an error stream) consumed.
func (d *Dataflow) Validate() error { return d.p.Validate() }

// Graph describes the flow's steps and the streams between them as built so
// far, every step after its inputs; --print-flow prints it.
func (d *Dataflow) Graph() FlowGraph { return publicGraph(d.p.Graph()) }

// Stream is a typed stream of items flowing out of a step. Operators take
// streams and return new ones, so a type mismatch between steps is a
// compile error. The zero Stream belongs to no flow; an operator given one
// records a build error on its flow.
type Stream[T any] struct {
	s plan.Stream[T]
}

// StepID returns the full id ("flow.step") of the step that produces the
// stream, or "" for the zero Stream and a stream of a step that failed to
// build.
func (s Stream[T]) StepID() string { return s.s.StepID() }

func (s Stream[T]) planStream() any { return s.s }

func (s *Stream[T]) setPlanStream(p any) { s.s = p.(plan.Stream[T]) }

func init() {
	plan.FlowHook = func(public any) *plan.Dataflow { return public.(*Dataflow).p }
	plan.StreamHook = func(public any) any { return public.(interface{ planStream() any }).planStream() }
	plan.WrapHook = func(public, s any) { public.(interface{ setPlanStream(any) }).setPlanStream(s) }
}

// KV is a keyed item, the input and output of keyed operators (make one
// with op.KeyOn). Each key is handled on one worker, so per-key state needs
// no locking.
type KV[K Key, V any] struct {
	// Key routes the item: keyed steps handle each key on the worker that
	// owns it (a stable hash of the key), and keep state per key.
	Key K
	// Value is the item itself.
	Value V
}

// String renders the pair as Python prints a 2-tuple, ('ALL', 0), as
// Bytewax's StdOutSink does, so that Runnel's output matches Bytewax's
// tutorials line for line: strings in single quotes, booleans as
// True/False, nil as None, floats with a decimal point.
func (kv KV[K, V]) String() string {
	return plan.PairRepr(reflect.ValueOf(kv.Key), reflect.ValueOf(&kv.Value).Elem())
}

// Key constrains state keys to strings and integer kinds (and types
// defined on them). Integer keys are hashed as integers and only become
// text when a snapshot is written.
type Key interface {
	~string | ~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// NewDataflow returns an empty flow. The id prefixes every step id
// ("recovery.running_count") and identifies the flow in recovery data.
func NewDataflow(id string) *Dataflow {
	return &Dataflow{p: plan.New(id)}
}
