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
//	op.Output("out", sums, stdio.NewSink[runnel.KV[string, int]]())
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
// transactions (Kafka, a database) implements TwoPhaseSink. At each
// epoch's barrier the engine calls PreCommit(e): the sink flushes its open
// transaction without committing it and returns what it needs to finish it
// (for Kafka: transactional id, producer id and producer epoch), which is
// stored with snapshot e. Once epoch e is durable, Committed(e) commits
// it. A resumed run hands the stored pre-commit states back to Build,
// which must commit them first (a commit that already happened succeeds
// again) and abort anything newer, since those epochs are replayed. A run
// that fails never commits epochs that are not durable. Partitioned sinks
// get the same hooks when their partitions have a Committed method (their
// Snapshot is then the pre-commit). The full contract is in
// internal/engine's package documentation; docs/connectors.md has a
// complete example.
package runnel

import (
	"context"
	"reflect"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
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
func (d *Dataflow) Graph() FlowGraph { return d.p.Graph() }

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
	d := &Dataflow{p: plan.New(id)}
	d.p.SetPublic(d)
	return d
}

// SourcePartition reads one partition of an input.
//
// NextBatch returns the next items (possibly none); io.EOF (alone or
// wrapped) ends the partition. As with io.Reader, items returned together
// with io.EOF are delivered, and NextBatch is not called again; items
// returned with another error are not (the error stops the run). The
// returned slice is lent to Runnel until the next call.
// NextAwake says when to poll again, on the run's clock (BuildContext.Clock):
// zero means at once after a non-empty batch; after an empty batch, zero or
// a time already past means after a 1ms cool-down, so an idle partition
// never spins a core. Close is called once at the end of the run.
type SourcePartition[T any] = engine.SourcePartition[T]

// SourceProgress is implemented by source partitions that know how much of
// their input they have read and how much there is (bytes of a file, items
// of a list, offsets of a Kafka partition). It feeds --progress's percent
// and the runnel_source_remaining metric; Runnel calls it between batches
// on the partition's worker, a few times a second and only while metrics
// or progress are on.
type SourceProgress = engine.SourceProgress

// StatefulSourcePartition is a SourcePartition that can resume: Snapshot
// returns its position after the last item it returned.
type StatefulSourcePartition[T, S any] = engine.StatefulSourcePartition[T, S]

// PartitionedSource is an input with fixed, named partitions whose
// positions are recovered (like Bytewax's FixedPartitionedSource). Each
// partition is read by one worker; a resumed run continues each partition
// from its snapshotted position. Wrap it with PartitionedInput.
type PartitionedSource[T, S any] = engine.PartitionedSource[T, S]

// DynamicSource is an input built once per worker that does not resume
// (like Bytewax's DynamicSource). Wrap it with DynamicInput.
type DynamicSource[T any] = engine.DynamicSource[T]

// Source is what op.Input reads. Connectors return one; custom inputs are
// wrapped with PartitionedInput or DynamicInput.
type Source[T any] = engine.Source[T]

// SinkPartition writes one partition of an output. WriteBatch must not keep
// the slice after it returns.
type SinkPartition[T any] = engine.SinkPartition[T]

// StatefulSinkPartition is a SinkPartition whose position (a file offset,
// say) is recovered; resuming from it gives exactly-once output.
type StatefulSinkPartition[T, S any] = engine.StatefulSinkPartition[T, S]

// PartitionedSink is an output with fixed, named partitions whose positions
// are recovered. Wrap it with PartitionedOutput.
type PartitionedSink[T, S any] = engine.PartitionedSink[T, S]

// DynamicSink is an output built once per worker (at-least-once after a
// resume). Wrap it with DynamicOutput.
type DynamicSink[T any] = engine.DynamicSink[T]

// Sink is what op.Output writes to.
type Sink[T any] = engine.Sink[T]

// Epoch numbers the intervals of input between snapshots (the -s
// interval); a two-phase sink is told which epoch it pre-commits and which
// epochs became durable.
type Epoch = engine.Epoch

// EOFEpoch is the epoch of what steps emit at the end of input (OnEOF
// hooks, the *Final operators, the windows the end closes): the largest
// Epoch, after every epoch of the input. Such output is never part of a
// snapshot: a later run resumes from the last barrier before the end.
const EOFEpoch Epoch = engine.EOF

// TwoPhaseSinkPartition is one worker's share of a TwoPhaseSink: its writes
// stay invisible until Committed. At each epoch's barrier PreCommit(e)
// makes them durable but invisible (flushes a transaction) and returns
// what is stored with snapshot e to finish them later; Committed(e) is
// called once epoch e is durable and commits everything pre-committed for
// epochs <= e. The contract is spelled out under "Two-phase sinks" in the
// package documentation.
type TwoPhaseSinkPartition[T, S any] = engine.TwoPhaseSinkPartition[T, S]

// TwoPhaseSink is an output built once per worker whose writes become
// visible only with the epoch that made them (like Flink's two-phase
// commit sinks): Kafka transactions, a database transaction per epoch. On
// resume, Build receives the pre-commit states stored with the last
// committed snapshot, which it must finish (commit) before writing. Wrap
// it with TwoPhaseOutput.
type TwoPhaseSink[T, S any] = engine.TwoPhaseSink[T, S]

// BuildContext is what a source or sink partition is built with: the
// step id, the worker index and count, the run's clock (compute NextAwake
// from its Now, never from time.Now, so that a test's manual clock paces
// the source) and a context for build code that waits.
type BuildContext = engine.BuildContext

// PartitionedInput makes a Source of a PartitionedSource. The position type
// S is encoded with Runnel's codec (CBOR); a type it cannot encode
// faithfully (unexported fields, funcs, channels) is refused before the run
// starts.
func PartitionedInput[T, S any](src PartitionedSource[T, S]) Source[T] {
	return partitionedInput[T, S]{src: src}
}

type partitionedInput[T, S any] struct{ src PartitionedSource[T, S] }

func (p partitionedInput[T, S]) BuildInput(b *engine.Builder, out *engine.Outlet[T]) error {
	return engine.AddPartitioned(b, out, p.src, encodeState[S], decodeState[S])
}

func (p partitionedInput[T, S]) StateType() string { return typeName[S]() }

func (p partitionedInput[T, S]) CheckState() error { return codec.CheckType(reflect.TypeFor[S]()) }

// StateShape is the codec shape of the position type, recorded in recovery data.
func (p partitionedInput[T, S]) StateShape() string { return codec.Shape(reflect.TypeFor[S]()) }

func (p partitionedInput[T, S]) ListParts(ctx context.Context) ([]string, error) {
	return p.src.ListParts(ctx)
}

// DynamicInput makes a Source of a DynamicSource.
func DynamicInput[T any](src DynamicSource[T]) Source[T] { return dynamicInput[T]{src} }

type dynamicInput[T any] struct{ src DynamicSource[T] }

func (d dynamicInput[T]) BuildInput(b *engine.Builder, out *engine.Outlet[T]) error {
	return engine.AddDynamic(b, out, d.src)
}
func (d dynamicInput[T]) StateType() string { return "" }
func (d dynamicInput[T]) CheckState() error { return nil }

// PartitionedOutput makes a Sink of a PartitionedSink. Its position type S
// is checked and encoded like a PartitionedInput's.
func PartitionedOutput[T, S any](sink PartitionedSink[T, S]) Sink[T] {
	return partitionedOutput[T, S]{sink: sink}
}

type partitionedOutput[T, S any] struct{ sink PartitionedSink[T, S] }

func (p partitionedOutput[T, S]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddPartitionedSink(b, p.sink, encodeState[S], decodeState[S])
}
func (p partitionedOutput[T, S]) StateType() string { return typeName[S]() }
func (p partitionedOutput[T, S]) CheckState() error { return codec.CheckType(reflect.TypeFor[S]()) }
func (p partitionedOutput[T, S]) ListParts(ctx context.Context) ([]string, error) {
	return p.sink.ListParts(ctx)
}

// StateShape is the codec shape of the position type, recorded in recovery data.
func (p partitionedOutput[T, S]) StateShape() string {
	return codec.Shape(reflect.TypeFor[S]())
}

// TwoPhaseOutput makes a Sink of a TwoPhaseSink. Its pre-commit state S is
// checked and encoded like a PartitionedInput's position, and stored per
// worker ("worker-N"), so a run with fewer workers hands the states of the
// old workers to the remaining ones.
func TwoPhaseOutput[T, S any](sink TwoPhaseSink[T, S]) Sink[T] {
	return &twoPhaseOutput[T, S]{sink: sink}
}

type twoPhaseOutput[T, S any] struct{ sink TwoPhaseSink[T, S] }

func (p *twoPhaseOutput[T, S]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddTwoPhaseSink(b, p.sink, encodeState[S], decodeState[S])
}
func (p *twoPhaseOutput[T, S]) StateType() string { return "pre-commit " + typeName[S]() }
func (p *twoPhaseOutput[T, S]) CheckState() error { return codec.CheckType(reflect.TypeFor[S]()) }

// StateShape is the codec shape of the pre-commit state, recorded in
// recovery data so that a reshaped state is refused at start.
func (p *twoPhaseOutput[T, S]) StateShape() string { return codec.Shape(reflect.TypeFor[S]()) }
func (p *twoPhaseOutput[T, S]) Route(key string, workers int) (int, error) {
	return engine.WorkerStateOwner(key, workers)
}

// DynamicOutput makes a Sink of a DynamicSink.
func DynamicOutput[T any](sink DynamicSink[T]) Sink[T] { return dynamicOutput[T]{sink} }

type dynamicOutput[T any] struct{ sink DynamicSink[T] }

func (d dynamicOutput[T]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddDynamicSink(b, d.sink)
}
func (d dynamicOutput[T]) StateType() string { return "" }
func (d dynamicOutput[T]) CheckState() error { return nil }

func encodeState[S any](s S) ([]byte, error) { return codec.Marshal(s) }

func decodeState[S any](b []byte) (S, error) {
	var s S
	err := codec.Unmarshal(b, &s)
	return s, err
}

func typeName[S any]() string { return reflect.TypeFor[S]().String() }
