package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
// NextAwake says when to call NextBatch again; the zero time means "at once"
// after a non-empty batch, and after a short cool-down after an empty one.
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

// PartitionedSource is an input with a fixed set of named partitions whose
// positions are part of recovery data (a list, files, Kafka partitions).
// Partitions are spread over all workers; each is read by exactly one.
type PartitionedSource[T, S any] interface {
	// ListParts names the partitions. The list must be the same in every
	// process and execution that shares recovery data. An error (a
	// directory that cannot be listed, say) stops the run before it starts.
	ListParts() ([]string, error)
	// BuildPart opens one partition; resume is the position snapshotted by
	// an earlier execution, or nil for a fresh start.
	BuildPart(step, part string, resume *S) (StatefulSourcePartition[T, S], error)
}

// DynamicSource is an input built once per worker that cannot resume
// (sockets, generators). Each execution reads it from its start.
type DynamicSource[T any] interface {
	Build(step string, worker, workers int) (SourcePartition[T], error)
}

// Source is what an input step reads: a partitioned or a dynamic source,
// made by the root package's Partitioned or Dynamic constructors (or given
// by a connector).
type Source[T any] interface {
	// BuildInput is called by the engine; it is exported only across
	// Runnel's internal packages (its parameter types are internal), so
	// user code cannot implement Source directly.
	BuildInput(b *Builder, out *Outlet[T]) error
	// StateType describes the position type for recovery metadata, or ""
	// when the source keeps no position.
	StateType() string
	// CheckState rejects a position type the codec cannot encode
	// faithfully, before the run starts.
	CheckState() error
	// Route sends a recovered position to the worker that owns its
	// partition.
	Route(part string, workers int) (int, error)
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
		if p.done || now.Before(p.awake) {
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
		p.awake = p.p.NextAwake()
		if p.awake.IsZero() && len(batch) == 0 {
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

// AssignParts returns the partitions of a sorted list that a worker owns:
// partition i goes to worker i mod workers.
func AssignParts(parts []string, worker, workers int) []string {
	var mine []string
	for i, p := range parts {
		if i%workers == worker {
			mine = append(mine, p)
		}
	}
	return mine
}

// SortedParts returns a sorted copy of a partition list, or an error if it
// names a partition twice.
func SortedParts(parts []string) ([]string, error) {
	s := slices.Clone(parts)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return nil, fmt.Errorf("partition %q is listed twice", s[i])
		}
	}
	return s, nil
}

// PartOwner is the worker that reads a partition.
func PartOwner(parts []string, part string, workers int) (int, error) {
	i, ok := slices.BinarySearch(parts, part)
	if !ok {
		return 0, fmt.Errorf("partition %q is not among the source's partitions %q", part, parts)
	}
	return i % workers, nil
}

// AddPartitioned builds an input node on the builder's worker that reads
// the partitions it owns.
func AddPartitioned[T, S any](b *Builder, out *Outlet[T], src PartitionedSource[T, S], encode func(S) ([]byte, error), decode func([]byte) (S, error)) error {
	listed, err := src.ListParts()
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	parts, err := SortedParts(listed)
	if err != nil {
		return err
	}
	n := &inputNode[T]{w: b.w, step: b.stepID, out: out, stats: b.stepStats()}
	resume := b.Resume()
	if err := knownParts(resume, parts); err != nil {
		return err
	}
	for _, key := range AssignParts(parts, b.w.Index, b.w.Workers) {
		var at *S
		if raw, ok := resume[key]; ok {
			s, err := decode(raw)
			if err != nil {
				return StaleState(fmt.Errorf("partition %q: recovered position does not decode: %w", key, err))
			}
			at = &s
		}
		p, err := src.BuildPart(b.stepID, key, at)
		if err != nil {
			return fmt.Errorf("partition %q: %w", key, err)
		}
		pt := &part[T]{key: key, p: p}
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
		b.OnClose(p.Close)
	}
	b.w.sources = append(b.w.sources, n)
	if n.stats != nil {
		n.stats.sources = n.progress
	}
	return nil
}

// AddDynamic builds an input node reading one dynamic partition.
func AddDynamic[T any](b *Builder, out *Outlet[T], src DynamicSource[T]) error {
	p, err := src.Build(b.stepID, b.w.Index, b.w.Workers)
	if err != nil {
		return err
	}
	b.OnClose(p.Close)
	n := &inputNode[T]{w: b.w, step: b.stepID, out: out, stats: b.stepStats(),
		parts: []*part[T]{{key: fmt.Sprintf("worker-%d", b.w.Index), p: p}}}
	b.w.sources = append(b.w.sources, n)
	if n.stats != nil {
		n.stats.sources = n.progress
	}
	return nil
}

// knownParts refuses recovered positions of partitions the source or sink
// no longer lists: resuming without them would silently re-read or skip.
func knownParts(resume map[string][]byte, parts []string) error {
	for key := range resume {
		if !slices.Contains(parts, key) {
			return StaleState(fmt.Errorf("recovery data holds a position for partition %q, which is not among the partitions %q any more (renamed or removed?)", key, parts))
		}
	}
	return nil
}
