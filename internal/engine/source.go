package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"
)

// SourcePartition reads one partition of an input.
//
// NextBatch returns the next items, possibly none (for example when a poll
// found nothing new); io.EOF (alone, or wrapped) ends the partition. As
// with io.Reader, items returned together with io.EOF are delivered, and
// NextBatch is not called again; items returned with any other error are
// not (the error stops the run). The
// returned slice is lent to the engine until the next call, so a partition
// may reuse its buffer. NextBatch should return promptly: a worker that waits
// in it runs nothing else.
//
// NextAwake says when to call NextBatch again, on the run's clock
// (BuildContext.Clock). The zero time means "at once" after a non-empty
// batch; after an empty batch, the zero time or a time already past means
// "after a short cool-down" (1ms), so that an idle partition never spins a
// core.
type SourcePartition[T any] interface {
	NextBatch() ([]T, error)
	NextAwake() time.Time
	Close() error
}

// StatefulSourcePartition is a partition that can resume: Snapshot returns
// its position after the last item it returned, and BuildPart receives it
// again in the next execution. An error from Snapshot stops the run (the
// epoch is not committed), naming the step and partition.
type StatefulSourcePartition[T, S any] interface {
	SourcePartition[T]
	Snapshot() (S, error)
}

// BuildContext is what a partition is built with: where it runs and the
// run's clock.
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
	// Clock is the run's clock (runnel.WithClock; wall time by default).
	// A partition computes NextAwake from Clock.Now(), never from
	// time.Now, so that a test's manual clock controls its pace.
	Clock Clock
}

// PartitionedSource is an input with a fixed set of named partitions whose
// positions are part of recovery data (a list, files, Kafka partitions).
// Partitions are spread over all workers; each is read by exactly one.
type PartitionedSource[T, S any] interface {
	// ListParts names the partitions. It is called once per run, before
	// recovered positions are routed and before any partition is built;
	// the engine sorts the list and hands the same one to every worker,
	// so partition i of the sorted list is read by worker i mod workers.
	// The list must be the same in every process that shares recovery
	// data. An error (a directory that cannot be listed, say) stops the
	// run before it starts.
	ListParts(ctx context.Context) ([]string, error)
	// BuildPart opens one partition; resume is the position snapshotted by
	// an earlier execution, or nil for a fresh start.
	BuildPart(bc BuildContext, part string, resume *S) (StatefulSourcePartition[T, S], error)
}

// DynamicSource is an input built once per worker that cannot resume
// (sockets, generators). Each execution reads it from its start.
type DynamicSource[T any] interface {
	Build(bc BuildContext) (SourcePartition[T], error)
}

// Source is what an input step reads: a partitioned or a dynamic source,
// made by the root package's PartitionedInput or DynamicInput (or given by
// a connector).
type Source[T any] interface {
	// BuildInput is called by the engine; it is exported only across
	// Runnel's internal packages (its parameter types are internal), so
	// user code cannot implement Source directly.
	BuildInput(b *Builder, out *Outlet[T]) error
	// StateType describes the position type for recovery metadata, or ""
	// when the source keeps no position (a dynamic source).
	StateType() string
	// CheckState rejects a position type the codec cannot encode
	// faithfully, before the run starts.
	CheckState() error
}

// Partitioned is implemented by a Source or Sink whose recovered keys are
// the partitions it lists. The runner calls ListParts once per run (see
// Parts).
type Partitioned interface {
	ListParts(ctx context.Context) ([]string, error)
}

// Routed is implemented by a Sink with recovered keys that are not
// partitions (a two-phase sink's per-worker states): Route names the
// worker that owns a key.
type Routed interface {
	Route(key string, workers int) (int, error)
}

// cooldown is the pause after an empty batch from a partition that did not
// say when to poll again, so an idle source does not spin a core.
const cooldown = time.Millisecond

// origin names an input partition for failure messages; describe returns
// its position after the batch just read (nil: it has none).
type origin struct {
	input, part string
	describe    func() string
}

type part[T any] struct {
	from     origin
	key      string
	p        SourcePartition[T]
	snapshot func() ([]byte, error) // nil for dynamic partitions
	last     []byte
	awake    time.Time
	done     bool
	ready    func() bool // nil unless the partition is a ReadyPartition
}

// ReadyPartition is a SourcePartition fed by another goroutine that wakes
// the worker when it adds something (group mode's queues): Ready reports
// that a batch is waiting, and the engine then reads the partition at its
// next step whatever NextAwake said, so an idle partition can ask to be
// polled rarely without delaying what arrives.
type ReadyPartition interface {
	Ready() bool
}

type inputNode[T any] struct {
	w     *Worker
	step  string
	out   *Outlet[T]
	parts []*part[T]
	stats *StepStats // nil when the worker does not count
}

func (n *inputNode[T]) peek() (bool, time.Time) {
	var next time.Time
	for _, p := range n.parts {
		if !p.done && (next.IsZero() || p.awake.Before(next)) {
			next = p.awake
			if next.IsZero() {
				return false, time.Unix(0, 1)
			}
		}
	}
	return false, next
}

func (n *inputNode[T]) poll(now time.Time) (bool, time.Time) {
	progress := false
	for _, p := range n.parts {
		if p.done || now.Before(p.awake) && (p.ready == nil || !p.ready()) {
			continue
		}
		batch, err := n.next(p)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				n.w.Fail(n.step, "", fmt.Errorf("partition %q: %w", p.key, err))
			}
			// Items returned with the end are delivered, as io.Reader's
			// convention has it, and the partition is not read again.
			n.out.Push(batch)
			p.done = true
			progress = true
			continue
		}
		n.w.reading = &p.from
		n.out.Push(batch)
		n.w.reading = nil
		progress = progress || len(batch) > 0
		p.awake = n.nextAwake(p)
		if len(batch) == 0 && !p.awake.After(now) {
			// Nothing came, and the partition asks to be polled at once
			// (zero) or at a time already past: polling again right away
			// would spin a core, so wait the cool-down.
			p.awake = now.Add(cooldown)
		}
	}
	return progress, time.Time{}
}

func (n *inputNode[T]) next(p *part[T]) ([]T, error) {
	defer n.w.guard(n.step)
	if n.stats != nil {
		s := n.w.stats
		outer, start := s.begin()
		batch, err := p.p.NextBatch()
		s.end(n.stats, len(batch), outer, start)
		return batch, err
	}
	return p.p.NextBatch()
}

func (n *inputNode[T]) nextAwake(p *part[T]) time.Time {
	defer n.w.guard(n.step)
	return p.p.NextAwake()
}

func (n *inputNode[T]) closeEpoch(e Epoch) {
	defer n.w.guard(n.step)
	if n.w.snapshots {
		for _, p := range n.parts {
			if p.snapshot == nil {
				continue
			}
			b, err := p.snapshot()
			if err != nil {
				n.w.Fail(n.step, p.key, fmt.Errorf("snapshot of partition %q: %w", p.key, err))
			}
			if !bytes.Equal(b, p.last) {
				p.last = b
				n.w.Record(e, Row{Step: n.step, Key: p.key, Value: b})
			}
		}
	}
	n.out.Barrier(e)
}

// progress sums what the node's partitions know of their progress.
func (n *inputNode[T]) progress() (done, total int64, known bool) {
	defer n.w.guard(n.step)
	for _, p := range n.parts {
		sp, ok := p.p.(SourceProgress)
		if !ok {
			continue
		}
		d, t := sp.Progress()
		done, total, known = done+d, total+t, true
	}
	return done, total, known
}

func (n *inputNode[T]) exhausted() bool {
	for _, p := range n.parts {
		if !p.done {
			return false
		}
	}
	return true
}

func (n *inputNode[T]) end() { n.out.EOF() }

// Parts is the partition list of a partitioned source or sink, listed once
// per run and handed to the routing of recovered positions and to every
// worker, so that they all agree on who owns what even if a new listing
// would differ (a file arrived, a topic grew).
type Parts struct {
	// Listed is the list in the order ListParts returned it; a sink's
	// PartFor indexes it.
	Listed []string
	// Sorted is the same list sorted; Sorted[i] belongs to worker
	// i mod workers.
	Sorted []string
	// index maps a partition name to its position in Sorted.
	index map[string]int
}

// NewParts checks a listing (no partition named twice) and sorts a copy.
func NewParts(listed []string) (*Parts, error) {
	p := &Parts{Listed: slices.Clone(listed), Sorted: slices.Clone(listed), index: make(map[string]int, len(listed))}
	slices.Sort(p.Sorted)
	for i, name := range p.Sorted {
		if i > 0 && name == p.Sorted[i-1] {
			return nil, fmt.Errorf("partition %q is listed twice", name)
		}
		p.index[name] = i
	}
	return p, nil
}

// Owner is the worker that owns a partition.
func (p *Parts) Owner(part string, workers int) (int, error) {
	i, ok := p.index[part]
	if !ok {
		return 0, fmt.Errorf("partition %q is not among the partitions %q", part, p.Sorted)
	}
	return i % workers, nil
}

// Mine returns the partitions of the sorted list that a worker owns, with
// their index in Sorted.
func (p *Parts) Mine(worker, workers int) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for i := worker; i < len(p.Sorted); i += workers {
			if !yield(i, p.Sorted[i]) {
				return
			}
		}
	}
}

// AddPartitioned builds an input node on the builder's worker that reads
// the partitions it owns, from the run's listing (Builder.Parts).
func AddPartitioned[T, S any](b *Builder, out *Outlet[T], src PartitionedSource[T, S], encode func(S) ([]byte, error), decode func([]byte) (S, error)) error {
	parts, err := b.Parts()
	if err != nil {
		return err
	}
	n := &inputNode[T]{w: b.w, step: b.stepID, out: out, stats: b.stepStats()}
	resume := b.Resume()
	if err := knownParts(resume, parts); err != nil {
		return err
	}
	bc := b.BuildContext()
	for _, key := range parts.Mine(b.w.Index, b.w.Workers) {
		var at *S
		if raw, ok := resume[key]; ok {
			s, err := decode(raw)
			if err != nil {
				return StaleState(fmt.Errorf("partition %q: recovered position does not decode: %w", key, err))
			}
			at = &s
		}
		p, err := src.BuildPart(bc, key, at)
		if err != nil {
			return fmt.Errorf("partition %q: %w", key, err)
		}
		if p == nil {
			return fmt.Errorf("partition %q: BuildPart returned a nil partition", key)
		}
		b.OnClose(p.Close)
		pt := &part[T]{key: key, p: p}
		if r, ok := p.(ReadyPartition); ok {
			pt.ready = r.Ready
		}
		pt.from = origin{input: b.stepID, part: key, describe: func() string {
			s, err := p.Snapshot()
			if err != nil {
				return ""
			}
			return fmt.Sprintf("%v", s)
		}}
		pt.snapshot = func() ([]byte, error) {
			s, err := p.Snapshot()
			if err != nil {
				return nil, err
			}
			return encode(s)
		}
		if at != nil {
			pt.last = resume[key]
		}
		n.parts = append(n.parts, pt)
	}
	b.w.sources = append(b.w.sources, n)
	if n.stats != nil {
		n.stats.sources = n.progress
	}
	return nil
}

// AddDynamic builds an input node reading one dynamic partition.
func AddDynamic[T any](b *Builder, out *Outlet[T], src DynamicSource[T]) error {
	p, err := src.Build(b.BuildContext())
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("Build returned a nil partition")
	}
	b.OnClose(p.Close)
	n := &inputNode[T]{w: b.w, step: b.stepID, out: out, stats: b.stepStats(),
		parts: []*part[T]{{key: fmt.Sprintf("worker-%d", b.w.Index), p: p}}}
	if r, ok := p.(ReadyPartition); ok {
		n.parts[0].ready = r.Ready
	}
	b.w.sources = append(b.w.sources, n)
	if n.stats != nil {
		n.stats.sources = n.progress
	}
	return nil
}

// knownParts refuses recovered positions of partitions the source or sink
// no longer lists: resuming without them would silently re-read or skip.
func knownParts(resume map[string][]byte, parts *Parts) error {
	for key := range resume {
		if _, ok := parts.index[key]; !ok {
			return StaleState(fmt.Errorf("recovery data holds a position for partition %q, which is not among the partitions %q any more (renamed or removed?)", key, parts.Sorted))
		}
	}
	return nil
}
