package engine

import (
	"bytes"
	"context"
	"fmt"
)

// SinkPartition writes to one partition of an output. WriteBatch may keep
// nothing of the batch after it returns: the engine reuses it.
type SinkPartition[T any] interface {
	WriteBatch(items []T) error
	Close() error
}

// StatefulSinkPartition is a sink partition that can resume: Snapshot
// returns its position after everything written so far (a file offset, say),
// once what was written is durable. Resuming from that position (truncating
// past it) gives exactly-once output. The engine calls Snapshot at each
// epoch's barrier, before the epoch can commit; an error stops the run and
// the epoch is never committed.
//
// A partition that also has a method Committed(e Epoch) error is a
// two-phase partition: Snapshot is its pre-commit and is called at every
// barrier (with or without recovery), and Committed(e) is called once epoch
// e is durable. See TwoPhaseSinkPartition for the full contract.
type StatefulSinkPartition[T, S any] interface {
	SinkPartition[T]
	Snapshot() (S, error)
}

// PartitionedSink is an output with a fixed set of named partitions whose
// positions are part of recovery data. Items are routed to a partition by
// PartFor, and partitions are spread over all workers.
type PartitionedSink[T, S any] interface {
	// ListParts names the partitions, the same in every process. It is
	// called once per run (see PartitionedSource.ListParts); partition i
	// of the sorted list is written by worker i mod workers. An error
	// stops the run before it starts.
	ListParts(ctx context.Context) ([]string, error)
	// PartFor picks the partition of an item: an index into the list
	// ListParts returned, in its order (taken modulo its length).
	PartFor(item T) int
	// BuildPart opens one partition, at the position an earlier execution
	// snapshotted (nil for a fresh start).
	BuildPart(bc BuildContext, part string, resume *S) (StatefulSinkPartition[T, S], error)
}

// DynamicSink is an output built once per worker that keeps no position;
// after a resume it may see some items again (at-least-once).
type DynamicSink[T any] interface {
	Build(bc BuildContext) (SinkPartition[T], error)
}

// Sink is what an output step writes to, made by the root package's
// Partitioned, TwoPhase or Dynamic sink constructors or given by a
// connector. Like Source, its methods take internal types, so only Runnel
// implements it. A sink with recovered state also implements Partitioned
// or Routed. BuildOutput's Inlet[T] puts the item type in the method set: a
// sink of another item type does not satisfy Sink[T], so op.Output with the
// wrong sink is a compile error rather than a conversion panic at run time.
type Sink[T any] interface {
	BuildOutput(b *Builder, in Inlet[T]) error
	StateType() string
	CheckState() error
}

// Inlet is an output step's typed input: it carries no data, only the item
// type, which makes Sink[T] specific to T.
type Inlet[T any] struct{ _ [0]T }

type dynamicSinkNode[T any] struct {
	b    *Builder
	p    SinkPartition[T]
	step string
}

func (n *dynamicSinkNode[T]) write(batch []T) {
	if err := n.p.WriteBatch(batch); err != nil {
		n.b.w.Fail(n.step, "", fmt.Errorf("write: %w", err))
	}
}
func (n *dynamicSinkNode[T]) OnBarrier(Epoch) {}
func (n *dynamicSinkNode[T]) OnEOF()          {}

// AddDynamicSink builds an output node writing to one dynamic partition
// per worker.
func AddDynamicSink[T any](b *Builder, sink DynamicSink[T]) error {
	p, err := sink.Build(b.BuildContext())
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("Build returned a nil partition")
	}
	b.OnClose(p.Close)
	n := &dynamicSinkNode[T]{b: b, p: p, step: b.stepID}
	g := b.NewGate(n)
	Connect(b, g, 0, nil, n.write)
	return nil
}

type sinkPart[T any] struct {
	key      string
	p        func([]T) error
	snapshot func() ([]byte, error)
	last     []byte
	buf      []T
	twoPhase bool // the partition implements Committed: pre-commit at every barrier
}

type partitionedSinkNode[T any] struct {
	w      *Worker
	step   string
	partOf func(T) int
	mine   map[int]*sinkPart[T] // by partition index
	only   *sinkPart[T]         // when this worker owns exactly one
}

func (n *partitionedSinkNode[T]) write(batch []T) {
	if n.only != nil {
		if err := n.only.p(batch); err != nil {
			n.w.Fail(n.step, n.only.key, fmt.Errorf("write to partition %q: %w", n.only.key, err))
		}
		return
	}
	for _, x := range batch {
		sp := n.mine[n.partOf(x)]
		sp.buf = append(sp.buf, x)
	}
	for _, sp := range n.mine {
		if len(sp.buf) == 0 {
			continue
		}
		if err := sp.p(sp.buf); err != nil {
			n.w.Fail(n.step, sp.key, fmt.Errorf("write to partition %q: %w", sp.key, err))
		}
		clear(sp.buf)
		sp.buf = sp.buf[:0]
	}
}

func (n *partitionedSinkNode[T]) OnBarrier(e Epoch) {
	defer n.w.guard(n.step)
	for _, sp := range n.mine {
		if !n.w.snapshots && !sp.twoPhase {
			continue
		}
		b, err := sp.snapshot()
		if err != nil {
			n.w.Fail(n.step, sp.key, fmt.Errorf("snapshot of partition %q: %w", sp.key, err))
		}
		if n.w.snapshots && !bytes.Equal(b, sp.last) {
			sp.last = b
			n.w.Record(e, Row{Step: n.step, Key: sp.key, Value: b})
		}
	}
}

func (n *partitionedSinkNode[T]) OnEOF() {}

// AddPartitionedSink builds an output node owning this worker's share of
// the sink's partitions (from the run's listing, Builder.Parts); items cross
// workers to their partition's owner.
func AddPartitionedSink[T, S any](b *Builder, sink PartitionedSink[T, S], encode func(S) ([]byte, error), decode func([]byte) (S, error)) error {
	parts, err := b.Parts()
	if err != nil {
		return err
	}
	if len(parts.Listed) == 0 {
		return fmt.Errorf("the sink lists no partitions")
	}
	// PartFor indexes the list as listed; ownership follows the sorted
	// list, like a source's.
	np := len(parts.Listed)
	sorted := make([]int, np)
	for i, name := range parts.Listed {
		sorted[i] = parts.index[name]
	}
	partOf := func(x T) int {
		i := sink.PartFor(x) % np
		if i < 0 {
			i += np
		}
		return sorted[i]
	}
	n := &partitionedSinkNode[T]{w: b.w, step: b.stepID, partOf: partOf, mine: map[int]*sinkPart[T]{}}
	resume := b.Resume()
	if err := knownParts(resume, parts); err != nil {
		return err
	}
	bc := b.BuildContext()
	for i, key := range parts.Mine(b.w.Index, b.w.Workers) {
		var at *S
		if raw, ok := resume[key]; ok {
			s, err := decode(raw)
			if err != nil {
				return StaleState(fmt.Errorf("partition %q: recovered position does not decode: %w", key, err))
			}
			at = &s
		}
		p, err := sink.BuildPart(bc, key, at)
		if err != nil {
			return fmt.Errorf("partition %q: %w", key, err)
		}
		if p == nil {
			return fmt.Errorf("partition %q: BuildPart returned a nil partition", key)
		}
		b.OnClose(p.Close)
		sp := &sinkPart[T]{key: key, p: p.WriteBatch, snapshot: func() ([]byte, error) {
			s, err := p.Snapshot()
			if err != nil {
				return nil, err
			}
			return encode(s)
		}}
		if at != nil {
			sp.last = resume[key]
		}
		if c, ok := p.(interface{ Committed(Epoch) error }); ok {
			// A two-phase partition (see "Two-phase sinks" in the package documentation):
			// Snapshot is its pre-commit, and it is told when epochs commit.
			sp.twoPhase = true
			b.w.commits = append(b.w.commits, commitHook{step: b.stepID, key: key, f: c.Committed})
		}
		n.mine[i] = sp
	}
	if len(n.mine) == 1 {
		for _, sp := range n.mine {
			n.only = sp
		}
	}
	g := b.NewGate(n)
	workers := b.w.Workers
	Connect(b, g, 0, func(x T) int { return partOf(x) % workers }, n.write)
	return nil
}
