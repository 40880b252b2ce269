// Package runneltest helps test dataflows, like bytewax.testing: a source
// that reads a slice (and can simulate a crash), a sink that collects into a
// slice, and run helpers.
package runneltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel"
)

// ErrCrash is the error of a source that reached its FailAt index.
var ErrCrash = errors.New("runneltest: simulated crash")

// SourceOpt configures NewSource.
type SourceOpt func(*sourceConfig)

type sourceConfig struct {
	parts  int
	batch  int
	failAt int
	pace   time.Duration
}

// BatchSize sets how many items each poll returns. The default is 1, as
// in Bytewax's TestingSource, so every item can land in its own epoch.
func BatchSize(n int) SourceOpt { return func(c *sourceConfig) { c.batch = max(1, n) } }

// FailAt makes the source fail with ErrCrash when it is about to emit the
// item at index i, the first time only (per Source value), to simulate a
// crash. Items before i are emitted. FailAt(len(items)) fails after the
// last item instead of ending the input, as Bytewax's TestingSource.ABORT()
// at the end of a list does: no end-of-input processing runs. Build the
// flow again without FailAt (or reuse the same Source) for the resumed run.
func FailAt(i int) SourceOpt { return func(c *sourceConfig) { c.failAt = i } }

// Parts splits the items over n partitions, "part-0" … "part-{n-1}" (item
// i goes to partition i mod n), so that several workers read at once. Order
// is kept within a partition only. The default is one partition, "list".
func Parts(n int) SourceOpt { return func(c *sourceConfig) { c.parts = max(1, n) } }

// Pace waits d between batches, so that a test with a short snapshot
// interval sees its input spread over many epochs. The wait is measured
// on the run's clock: under a manual Clock (runnel.WithClock), the next
// batch comes once the test has advanced the clock by d.
func Pace(d time.Duration) SourceOpt { return func(c *sourceConfig) { c.pace = d } }

// NewSource reads items in order from one partition named "list". Its
// position is the index of the next item, so a resumed run continues at
// the first item after the last committed epoch; a run with a longer slice
// continues where the previous one ended.
func NewSource[T any](items []T, opts ...SourceOpt) runnel.Source[T] {
	c := sourceConfig{parts: 1, batch: 1, failAt: -1}
	for _, o := range opts {
		o(&c)
	}
	s := &listSource[T]{cfg: c, parts: map[string][]T{}}
	if c.parts == 1 {
		s.names = []string{"list"}
		s.parts["list"] = items
	} else {
		for i := range c.parts {
			s.names = append(s.names, fmt.Sprintf("part-%d", i))
		}
		for i, x := range items {
			name := s.names[i%c.parts]
			s.parts[name] = append(s.parts[name], x)
		}
	}
	return runnel.PartitionedInput[T, int](s)
}

type listSource[T any] struct {
	names  []string
	parts  map[string][]T
	cfg    sourceConfig
	failed atomic.Bool
}

func (s *listSource[T]) ListParts(context.Context) ([]string, error) { return s.names, nil }

func (s *listSource[T]) BuildPart(bc runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[T, int], error) {
	items, ok := s.parts[part]
	if !ok {
		return nil, fmt.Errorf("no partition %q", part)
	}
	p := &listPart[T]{src: s, items: items, failAt: -1, clock: bc.Clock}
	if s.cfg.failAt >= 0 && s.cfg.failAt%s.cfg.parts == s.partIndex(part) {
		p.failAt = s.cfg.failAt / s.cfg.parts
	}
	if resume != nil {
		if *resume < 0 {
			return nil, fmt.Errorf("resume position %d is negative", *resume)
		}
		p.next = *resume
	}
	return p, nil
}

func (s *listSource[T]) partIndex(part string) int {
	for i, n := range s.names {
		if n == part {
			return i
		}
	}
	return -1
}

type listPart[T any] struct {
	src    *listSource[T]
	items  []T
	failAt int // index within this partition, or -1
	next   int
	awake  time.Time
	clock  runnel.Clock
}

func (p *listPart[T]) NextBatch() ([]T, error) {
	s := p.src
	if p.next >= len(p.items) {
		if p.failAt == p.next && s.failed.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("%w at index %d", ErrCrash, s.cfg.failAt)
		}
		return nil, io.EOF
	}
	end := min(len(p.items), p.next+s.cfg.batch)
	if f := p.failAt; f >= p.next && f < end {
		if f == p.next && s.failed.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("%w at index %d", ErrCrash, s.cfg.failAt)
		}
		if f > p.next && !s.failed.Load() {
			end = f
		}
	}
	batch := p.items[p.next:end:end]
	p.next = end
	if s.cfg.pace > 0 {
		p.awake = p.clock.Now().Add(s.cfg.pace)
	}
	return batch, nil
}

// Progress is how many of the partition's items were read, of how many.
func (p *listPart[T]) Progress() (done, total int64) { return int64(p.next), int64(len(p.items)) }

func (p *listPart[T]) NextAwake() time.Time   { return p.awake }
func (p *listPart[T]) Snapshot() (int, error) { return p.next, nil }
func (p *listPart[T]) Close() error           { return nil }

// Sink collects every item written to it, from all workers, safely.
type Sink[T any] struct {
	runnel.Sink[T]
	mu    sync.Mutex
	items []T
}

// NewSink returns an empty collecting sink.
func NewSink[T any]() *Sink[T] {
	s := &Sink[T]{}
	s.Sink = runnel.DynamicOutput[T](sinkBuilder[T]{s})
	return s
}

// Items returns a copy of what has been written so far, in arrival order
// (which, across workers, is not defined).
func (s *Sink[T]) Items() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), s.items...)
}

// Reset forgets what was collected.
func (s *Sink[T]) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = nil
}

type sinkBuilder[T any] struct{ s *Sink[T] }

func (b sinkBuilder[T]) Build(runnel.BuildContext) (runnel.SinkPartition[T], error) {
	return sinkPart[T](b), nil
}

type sinkPart[T any] struct{ s *Sink[T] }

func (p sinkPart[T]) WriteBatch(items []T) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.items = append(p.s.items, items...)
	return nil
}

func (p sinkPart[T]) Close() error { return nil }

// Config returns a run configuration for tests: the given number of
// workers, epochs of the given length (use a long one for one epoch), and
// recovery in dir when dir is not empty (backup interval 0).
func Config(workers int, epoch time.Duration, dir string) runnel.Config {
	c := runnel.DefaultConfig()
	c.WorkersPerProcess = workers
	c.SnapshotInterval = epoch
	c.RecoveryDir = dir
	return c
}

// Run runs flow on the given number of workers with one long epoch and no
// recovery, as bytewax.testing.run_main does.
func Run(flow *runnel.Dataflow, workers int) error {
	return runnel.Run(context.Background(), flow, Config(workers, time.Hour, ""))
}
