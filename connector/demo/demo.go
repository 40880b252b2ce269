// Package demo generates input for trying flows and for tests, like
// Bytewax's bytewax.connectors.demo: NewSource makes items with a seeded
// random generator, NewRandomMetricSource makes (name, value) metrics.
//
// Generation is deterministic: item n is made from a generator seeded with
// (Seed, n) alone, so the same options give the same items in every run,
// on any number of workers, however the items are batched. Sources are
// partitioned and resumable: each partition's position is the number of
// the next item it generates, so a resumed run continues after the last
// committed epoch and never repeats or skips an item (exactly-once input).
//
// Pacing (Interval) uses the run's clock (runnel.WithClock), so a test can
// drive a paced demo source with a manual clock.
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// Opt configures a demo source. The interface is sealed; options are made
// by this package's functions.
type Opt interface{ apply(*config) }

type config struct {
	seed     uint64
	count    int64
	parts    int
	interval time.Duration
	batch    int
}

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

// Seed sets the seed of the generator (default 0).
func Seed(s uint64) Opt { return optFunc(func(c *config) { c.seed = s }) }

// Count ends the input after n items in all (across partitions). The
// default is no end.
func Count(n int64) Opt { return optFunc(func(c *config) { c.count = n }) }

// Parts spreads the items over n partitions, "demo-0" … "demo-{n-1}", so
// that n workers generate at once: partition p makes items p, p+n, p+2n, …
// The default is 1. n must not change between runs that share recovery
// data (a run with other partitions than the recovered ones is refused).
func Parts(n int) Opt { return optFunc(func(c *config) { c.parts = n }) }

// Interval paces each partition: one item every d of the run's clock, the
// first at once; a partition that falls behind catches up in batches.
// The default (0) generates as fast as the flow takes items.
func Interval(d time.Duration) Opt { return optFunc(func(c *config) { c.interval = d }) }

// BatchSize sets the most items a partition returns per poll (default
// 1000).
func BatchSize(n int) Opt { return optFunc(func(c *config) { c.batch = n }) }

func newConfig(defaults config, opts []Opt) config {
	c := defaults
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

func (c config) validate() error {
	switch {
	case c.parts < 1:
		return fmt.Errorf("demo: Parts(%d) must be at least 1", c.parts)
	case c.batch < 1:
		return fmt.Errorf("demo: BatchSize(%d) must be at least 1", c.batch)
	case c.interval < 0:
		return fmt.Errorf("demo: Interval(%v) must not be negative", c.interval)
	case c.count < -1:
		return fmt.Errorf("demo: Count(%d) must not be negative", c.count)
	}
	return nil
}

// NewSource generates items with gen, which gets a generator seeded for
// item n alone and the item's number n (0, 1, 2, … across partitions).
// gen must be a pure function of its arguments (make what you need from r
// and n, keep no state between calls), or a resumed run would not
// continue the same sequence.
//
// Options: Seed, Count (default endless), Parts, Interval, BatchSize. A
// bad option fails the run before the first item.
func NewSource[T any](gen func(r *rand.Rand, n int64) T, opts ...Opt) runnel.Source[T] {
	s := &source[T]{gen: gen, cfg: newConfig(config{count: -1, parts: 1, batch: 1000}, opts)}
	return runnel.PartitionedInput[T, Position](s)
}

// NewRandomMetricSource emits (name, value) pairs with a random integer
// value in [0, 10), one every 0.7 s by default (Interval changes it), like
// Bytewax's RandomMetricSource. It is NewSource with those defaults: the
// same options apply.
func NewRandomMetricSource(name string, opts ...Opt) runnel.Source[runnel.KV[string, int]] {
	s := &source[runnel.KV[string, int]]{
		gen: func(r *rand.Rand, _ int64) runnel.KV[string, int] {
			return runnel.KV[string, int]{Key: name, Value: r.IntN(10)}
		},
		cfg: newConfig(config{count: -1, parts: 1, batch: 1000, interval: 700 * time.Millisecond}, opts),
	}
	return runnel.PartitionedInput[runnel.KV[string, int], Position](s)
}

// Position is a demo partition's position: the number of the next item,
// and the partition count it was made with, so that a run with another
// Parts is refused rather than repeating or skipping items.
type Position struct {
	Next  int64
	Parts int
}

type source[T any] struct {
	gen func(*rand.Rand, int64) T
	cfg config
}

func (s *source[T]) ListParts(context.Context) ([]string, error) {
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	names := make([]string, s.cfg.parts)
	for i := range names {
		names[i] = "demo-" + strconv.Itoa(i)
	}
	return names, nil
}

func (s *source[T]) BuildPart(bc runnel.BuildContext, name string, resume *Position) (runnel.StatefulSourcePartition[T, Position], error) {
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	num, _ := strings.CutPrefix(name, "demo-")
	idx, err := strconv.Atoi(num)
	if err != nil || idx < 0 || idx >= s.cfg.parts || name != "demo-"+strconv.Itoa(idx) {
		return nil, fmt.Errorf("demo: no partition %q", name)
	}
	p := &part[T]{src: s, clock: bc.Clock, next: int64(idx), pcg: rand.NewPCG(0, 0)}
	p.rng = rand.New(p.pcg)
	if resume != nil {
		at := *resume
		if at.Parts != s.cfg.parts {
			return nil, engine.StaleState(fmt.Errorf("demo: partition %q: recovered with Parts(%d), now Parts(%d): the partition count must not change between runs that share recovery data", name, at.Parts, s.cfg.parts))
		}
		if at.Next < 0 || at.Next%int64(s.cfg.parts) != int64(idx) {
			return nil, engine.StaleState(fmt.Errorf("demo: partition %q: recovered position %d is not one of its items", name, at.Next))
		}
		p.next = at.Next
	}
	return p, nil
}

type part[T any] struct {
	src   *source[T]
	clock runnel.Clock
	pcg   *rand.PCG
	rng   *rand.Rand
	next  int64     // the number of the next item
	due   time.Time // when the next item is due, with an interval
	batch []T
}

func (p *part[T]) NextBatch() ([]T, error) {
	c := &p.src.cfg
	if c.count >= 0 && p.next >= c.count {
		return nil, io.EOF
	}
	n := c.batch
	if c.interval > 0 {
		now := p.clock.Now()
		if p.due.IsZero() {
			p.due = now
		}
		if now.Before(p.due) {
			return nil, nil
		}
		n = min(n, int(now.Sub(p.due)/c.interval)+1)
		p.due = p.due.Add(time.Duration(n) * c.interval)
	}
	clear(p.batch)
	p.batch = p.batch[:0]
	for range n {
		if c.count >= 0 && p.next >= c.count {
			break
		}
		p.pcg.Seed(c.seed, mix(uint64(p.next)))
		p.batch = append(p.batch, p.src.gen(p.rng, p.next))
		p.next += int64(c.parts)
	}
	return p.batch, nil
}

// mix spreads consecutive item numbers over the generator's seed space
// (SplitMix64's finalizer), so neighbouring items are unrelated.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// NextAwake is when the next item is due (zero without an interval).
func (p *part[T]) NextAwake() time.Time { return p.due }

// Snapshot is the number of the next item.
func (p *part[T]) Snapshot() (Position, error) {
	return Position{Next: p.next, Parts: p.src.cfg.parts}, nil
}

func (p *part[T]) Close() error { return nil }
