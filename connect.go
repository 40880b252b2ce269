package runnel

import (
	"context"
	"math"
	"reflect"
	"time"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
)

// This file holds what a connector implements: sources and sinks, their
// partitions, and what they are built with. A connector returns a Source
// or a Sink made by the wrappers at the end of the file (PartitionedInput,
// DynamicInput, PartitionedOutput, TwoPhaseOutput, DynamicOutput); the
// wrappers adapt these public interfaces to the engine's.

// Clock is a run's time source: the wall clock by default, a manual clock
// in tests (WithClock, runneltest.Clock). Sources compute NextAwake from
// BuildContext.Clock, never from time.Now, so that a test's clock paces
// them.
type Clock interface {
	// Now is the clock's current time.
	Now() time.Time
	// At returns a channel that receives the clock's time once it reads t
	// or later (at once if it already does). The deadline is absolute, so
	// that a manual clock advanced between Now and At cannot push it back.
	At(t time.Time) <-chan time.Time
}

// Epoch numbers the intervals of input between snapshots (the -s
// interval), from 1; a two-phase sink is told which epoch it pre-commits
// and which epochs became durable.
type Epoch = uint64

// EOFEpoch is the epoch of what steps emit at the end of input (OnEOF
// hooks, the *Final operators, the windows the end closes): the largest
// Epoch, after every epoch of the input. Such output is never part of a
// snapshot: a later run resumes from the last barrier before the end.
const EOFEpoch Epoch = math.MaxUint64

// BuildContext is what a source or sink partition is built with: where it
// runs and the run's clock.
type BuildContext struct {
	// Context is cancelled when the run is aborted or fails, or when a stop
	// is requested while the run is still being set up. Build code that
	// waits (connecting to a broker, say) should give up when it is done.
	// Partitions must not keep it for later use.
	Context context.Context
	// Step is the full id of the input or output step ("flow.step").
	Step string
	// Worker is the index of the worker the partition is built on, in
	// [0, Workers).
	Worker, Workers int
	// Clock is the run's clock (WithClock; wall time by default). A
	// partition computes NextAwake from Clock.Now(), never from time.Now,
	// so that a test's manual clock controls its pace.
	Clock Clock
}

func buildContext(bc engine.BuildContext) BuildContext {
	return BuildContext{Context: bc.Context, Step: bc.Step, Worker: bc.Worker, Workers: bc.Workers, Clock: bc.Clock}
}

// SourcePartition reads one partition of an input. Runnel calls its
// methods from one goroutine (the worker's), never concurrently.
type SourcePartition[T any] interface {
	// NextBatch returns the next items, possibly none (a poll that found
	// nothing new); io.EOF (alone or wrapped) ends the partition. As with
	// io.Reader, items returned together with io.EOF are delivered, and
	// NextBatch is not called again; items returned with another error are
	// not (the error stops the run, naming the step and partition). The
	// returned slice is lent to Runnel until the next call, so a partition
	// may reuse its buffer. NextBatch should return promptly: a worker
	// that waits in it runs nothing else.
	NextBatch() ([]T, error)
	// NextAwake says when to call NextBatch again, on the run's clock
	// (BuildContext.Clock): the zero time means at once after a non-empty
	// batch; after an empty batch, the zero time or a time already past
	// means after a 1ms cool-down, so an idle partition never spins a core.
	NextAwake() time.Time
	// Close is called once at the end of the run.
	Close() error
}

// StatefulSourcePartition is a SourcePartition that can resume.
type StatefulSourcePartition[T, S any] interface {
	SourcePartition[T]
	// Snapshot returns the partition's position after the last item
	// NextBatch returned; a resumed run hands it back to BuildPart. An
	// error stops the run (the epoch is not committed), naming the step
	// and partition.
	Snapshot() (S, error)
}

// SourceProgress is implemented by source partitions that know how much of
// their input they have read and how much there is (bytes of a file, items
// of a list, offsets of a Kafka partition). It feeds --progress's percent
// and the runnel_source_remaining metric; Runnel calls it between batches
// on the partition's worker, a few times a second and only while metrics
// or progress are on.
type SourceProgress interface {
	// Progress returns how much was read (done) of how much there is
	// (total), in the partition's own unit.
	Progress() (done, total int64)
}

// PartitionedSource is an input with fixed, named partitions whose
// positions are recovered (like Bytewax's FixedPartitionedSource). Each
// partition is read by one worker; a resumed run continues each partition
// from its snapshotted position. Wrap it with PartitionedInput; see
// docs/connectors.md for a complete example.
type PartitionedSource[T, S any] interface {
	// ListParts names the partitions. It is called once per run, before
	// recovered positions are routed and before any partition is built;
	// Runnel sorts the list and hands the same one to every worker, so
	// partition i of the sorted list is read by worker i mod workers. An
	// error (a directory that cannot be listed, say) stops the run before
	// it starts.
	ListParts(ctx context.Context) ([]string, error)
	// BuildPart opens one partition; resume is the position snapshotted by
	// an earlier run, or nil for a fresh start.
	BuildPart(bc BuildContext, part string, resume *S) (StatefulSourcePartition[T, S], error)
}

// DynamicSource is an input built once per worker that does not resume
// (like Bytewax's DynamicSource): sockets, generators, standard input.
// Each run reads it from its start. Wrap it with DynamicInput.
type DynamicSource[T any] interface {
	// Build opens the worker's share of the input.
	Build(bc BuildContext) (SourcePartition[T], error)
}

// SinkPartition writes one partition of an output. Runnel calls its
// methods from one goroutine (the worker's), never concurrently.
type SinkPartition[T any] interface {
	// WriteBatch writes items; it must not keep the slice after it
	// returns (Runnel reuses it). An error stops the run, naming the step.
	WriteBatch(items []T) error
	// Close is called once at the end of the run.
	Close() error
}

// StatefulSinkPartition is a SinkPartition whose position (a file offset,
// say) is recovered; resuming from it (truncating past it) gives
// exactly-once output.
//
// A partition that also has a method Committed(e Epoch) error is a
// two-phase partition: Snapshot is its pre-commit, called at every barrier
// with or without recovery, and Committed(e) is called once epoch e is
// durable (see TwoPhaseSinkPartition).
type StatefulSinkPartition[T, S any] interface {
	SinkPartition[T]
	// Snapshot returns the position after everything written so far, once
	// that is durable. Runnel calls it at each epoch's barrier, before the
	// epoch can commit; an error stops the run and the epoch never commits.
	Snapshot() (S, error)
}

// PartitionedSink is an output with fixed, named partitions whose positions
// are recovered. Wrap it with PartitionedOutput.
type PartitionedSink[T, S any] interface {
	// ListParts names the partitions. It is called once per run (see
	// PartitionedSource.ListParts); partition i of the sorted list is
	// written by worker i mod workers. An error stops the run before it
	// starts.
	ListParts(ctx context.Context) ([]string, error)
	// PartFor picks the partition of an item: an index into the list
	// ListParts returned, in its order (taken modulo its length).
	PartFor(item T) int
	// BuildPart opens one partition at the position an earlier run
	// snapshotted (nil for a fresh start).
	BuildPart(bc BuildContext, part string, resume *S) (StatefulSinkPartition[T, S], error)
}

// DynamicSink is an output built once per worker that keeps no position;
// after a resume it may see some items again (at-least-once). Wrap it with
// DynamicOutput.
type DynamicSink[T any] interface {
	// Build opens the worker's share of the output.
	Build(bc BuildContext) (SinkPartition[T], error)
}

// TwoPhaseSinkPartition is one worker's share of a TwoPhaseSink: its writes
// stay invisible until Committed. The contract is spelled out under
// "Two-phase sinks" in the package documentation.
type TwoPhaseSinkPartition[T, S any] interface {
	SinkPartition[T]
	// PreCommit makes everything written so far durable but invisible
	// (flushes a transaction) and returns what is stored with snapshot e
	// to finish it later. It is called at each epoch's barrier.
	PreCommit(e Epoch) (S, error)
	// Committed is called once epoch e is durable and commits everything
	// pre-committed for epochs <= e.
	Committed(e Epoch) error
}

// TwoPhaseSink is an output built once per worker whose writes become
// visible only with the epoch that made them (like Flink's two-phase
// commit sinks): Kafka transactions, a database transaction per epoch.
// Wrap it with TwoPhaseOutput. A TwoPhaseSink may also have a method
// CheckEpochInterval(time.Duration) error, called with the snapshot
// interval before the run starts (the Kafka sink refuses an interval too
// close to its transaction timeout).
type TwoPhaseSink[T, S any] interface {
	// Build opens the worker's share of the output. resume holds the
	// pre-commit states stored with the last committed snapshot for this
	// worker (and for old workers that now map to it), ordered by old
	// worker index; Build must finish (commit) them before writing, and
	// abort anything newer, since those epochs are replayed. It is empty
	// on a fresh start.
	Build(bc BuildContext, resume []S) (TwoPhaseSinkPartition[T, S], error)
}

// Source is what op.Input reads: a connector returns one, and custom
// inputs are wrapped with PartitionedInput or DynamicInput. Only this
// package implements it, so that its item type T is checked by the
// compiler and its position type by the codec before a run starts.
type Source[T any] interface {
	sourceItem(T)
	engineSource() any // an engine.Source[T]
}

// Sink is what op.Output writes to: a connector returns one, and custom
// outputs are wrapped with PartitionedOutput, TwoPhaseOutput or
// DynamicOutput. Only this package implements it. Its item type is part of
// its method set, so op.Output with a sink of another item type is a
// compile error.
type Sink[T any] interface {
	sinkItem(T)
	engineSink() any // an engine.Sink[T]
}

// The end-of-input epoch is the engine's: a difference does not compile.
const _ = uint64(EOFEpoch - engine.EOF)

func init() {
	plan.SourceHook = func(s any) any { return s.(interface{ engineSource() any }).engineSource() }
	plan.SinkHook = func(s any) any { return s.(interface{ engineSink() any }).engineSink() }
}

// PartitionedInput makes a Source of a PartitionedSource. The position type
// S is encoded with Runnel's codec (CBOR); a type it cannot encode
// faithfully (unexported fields, funcs, channels) is refused before the run
// starts.
func PartitionedInput[T, S any](src PartitionedSource[T, S]) Source[T] {
	return partitionedInput[T, S]{src: src}
}

type partitionedInput[T, S any] struct{ src PartitionedSource[T, S] }

func (p partitionedInput[T, S]) sourceItem(T)      {}
func (p partitionedInput[T, S]) engineSource() any { return engine.Source[T](p) }

func (p partitionedInput[T, S]) BuildInput(b *engine.Builder, out *engine.Outlet[T]) error {
	return engine.AddPartitioned(b, out, enginePartitionedSource[T, S]{p.src}, encodeState[S], decodeState[S])
}

func (p partitionedInput[T, S]) StateType() string { return typeName[S]() }

func (p partitionedInput[T, S]) CheckState() error { return codec.CheckType(reflect.TypeFor[S]()) }

// StateShape is the codec shape of the position type, recorded in recovery data.
func (p partitionedInput[T, S]) StateShape() string { return codec.Shape(reflect.TypeFor[S]()) }

func (p partitionedInput[T, S]) ListParts(ctx context.Context) ([]string, error) {
	return p.src.ListParts(ctx)
}

type enginePartitionedSource[T, S any] struct{ src PartitionedSource[T, S] }

func (a enginePartitionedSource[T, S]) ListParts(ctx context.Context) ([]string, error) {
	return a.src.ListParts(ctx)
}

func (a enginePartitionedSource[T, S]) BuildPart(bc engine.BuildContext, part string, resume *S) (engine.StatefulSourcePartition[T, S], error) {
	p, err := a.src.BuildPart(buildContext(bc), part, resume)
	return p, err
}

// DynamicInput makes a Source of a DynamicSource.
func DynamicInput[T any](src DynamicSource[T]) Source[T] { return dynamicInput[T]{src} }

type dynamicInput[T any] struct{ src DynamicSource[T] }

func (d dynamicInput[T]) sourceItem(T)      {}
func (d dynamicInput[T]) engineSource() any { return engine.Source[T](d) }

func (d dynamicInput[T]) BuildInput(b *engine.Builder, out *engine.Outlet[T]) error {
	return engine.AddDynamic(b, out, engineDynamicSource[T]{d.src})
}
func (d dynamicInput[T]) StateType() string { return "" }
func (d dynamicInput[T]) CheckState() error { return nil }

type engineDynamicSource[T any] struct{ src DynamicSource[T] }

func (a engineDynamicSource[T]) Build(bc engine.BuildContext) (engine.SourcePartition[T], error) {
	p, err := a.src.Build(buildContext(bc))
	return p, err
}

// PartitionedOutput makes a Sink of a PartitionedSink. Its position type S
// is checked and encoded like a PartitionedInput's.
func PartitionedOutput[T, S any](sink PartitionedSink[T, S]) Sink[T] {
	return partitionedOutput[T, S]{sink: sink}
}

type partitionedOutput[T, S any] struct{ sink PartitionedSink[T, S] }

func (p partitionedOutput[T, S]) sinkItem(T)      {}
func (p partitionedOutput[T, S]) engineSink() any { return engine.Sink[T](p) }

func (p partitionedOutput[T, S]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddPartitionedSink(b, enginePartitionedSink[T, S]{p.sink}, encodeState[S], decodeState[S])
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

type enginePartitionedSink[T, S any] struct{ sink PartitionedSink[T, S] }

func (a enginePartitionedSink[T, S]) ListParts(ctx context.Context) ([]string, error) {
	return a.sink.ListParts(ctx)
}

func (a enginePartitionedSink[T, S]) PartFor(item T) int { return a.sink.PartFor(item) }

func (a enginePartitionedSink[T, S]) BuildPart(bc engine.BuildContext, part string, resume *S) (engine.StatefulSinkPartition[T, S], error) {
	p, err := a.sink.BuildPart(buildContext(bc), part, resume)
	return p, err
}

// TwoPhaseOutput makes a Sink of a TwoPhaseSink. Its pre-commit state S is
// checked and encoded like a PartitionedInput's position, and stored per
// worker ("worker-N"), so a run with fewer workers hands the states of the
// old workers to the remaining ones.
func TwoPhaseOutput[T, S any](sink TwoPhaseSink[T, S]) Sink[T] {
	return &twoPhaseOutput[T, S]{sink: sink}
}

type twoPhaseOutput[T, S any] struct{ sink TwoPhaseSink[T, S] }

func (p *twoPhaseOutput[T, S]) sinkItem(T)      {}
func (p *twoPhaseOutput[T, S]) engineSink() any { return engine.Sink[T](p) }

func (p *twoPhaseOutput[T, S]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddTwoPhaseSink(b, engineTwoPhaseSink[T, S]{p.sink}, encodeState[S], decodeState[S])
}
func (p *twoPhaseOutput[T, S]) StateType() string { return "pre-commit " + typeName[S]() }
func (p *twoPhaseOutput[T, S]) CheckState() error { return codec.CheckType(reflect.TypeFor[S]()) }

// StateShape is the codec shape of the pre-commit state, recorded in
// recovery data so that a reshaped state is refused at start.
func (p *twoPhaseOutput[T, S]) StateShape() string { return codec.Shape(reflect.TypeFor[S]()) }
func (p *twoPhaseOutput[T, S]) Route(key string, workers int) (int, error) {
	return engine.WorkerStateOwner(key, workers)
}

type engineTwoPhaseSink[T, S any] struct{ sink TwoPhaseSink[T, S] }

func (a engineTwoPhaseSink[T, S]) Build(bc engine.BuildContext, resume []S) (engine.TwoPhaseSinkPartition[T, S], error) {
	p, err := a.sink.Build(buildContext(bc), resume)
	return p, err
}

// CheckEpochInterval passes the engine's check on to the sink when it has
// one (see TwoPhaseSink).
func (a engineTwoPhaseSink[T, S]) CheckEpochInterval(d time.Duration) error {
	if c, ok := a.sink.(interface{ CheckEpochInterval(time.Duration) error }); ok {
		return c.CheckEpochInterval(d)
	}
	return nil
}

// DynamicOutput makes a Sink of a DynamicSink.
func DynamicOutput[T any](sink DynamicSink[T]) Sink[T] { return dynamicOutput[T]{sink} }

type dynamicOutput[T any] struct{ sink DynamicSink[T] }

func (d dynamicOutput[T]) sinkItem(T)      {}
func (d dynamicOutput[T]) engineSink() any { return engine.Sink[T](d) }

func (d dynamicOutput[T]) BuildOutput(b *engine.Builder, _ engine.Inlet[T]) error {
	return engine.AddDynamicSink(b, engineDynamicSink[T]{d.sink})
}
func (d dynamicOutput[T]) StateType() string { return "" }
func (d dynamicOutput[T]) CheckState() error { return nil }

type engineDynamicSink[T any] struct{ sink DynamicSink[T] }

func (a engineDynamicSink[T]) Build(bc engine.BuildContext) (engine.SinkPartition[T], error) {
	p, err := a.sink.Build(buildContext(bc))
	return p, err
}

func encodeState[S any](s S) ([]byte, error) { return codec.Marshal(s) }

func decodeState[S any](b []byte) (S, error) {
	var s S
	err := codec.Unmarshal(b, &s)
	return s, err
}

func typeName[S any]() string { return reflect.TypeFor[S]().String() }
