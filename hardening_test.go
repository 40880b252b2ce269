package runnel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// growingSource lists one more partition each time it is asked, as a
// directory that files keep arriving in would: call k lists "p1" … and
// k-1 partitions that sort before it. Partition p reads 10 items.
type growingSource struct {
	calls atomic.Int32
}

func (g *growingSource) ListParts(context.Context) ([]string, error) {
	k := int(g.calls.Add(1))
	parts := []string{"p1"}
	for i := range k - 1 {
		parts = append(parts, fmt.Sprintf("a%d", i))
	}
	return parts, nil
}

func (g *growingSource) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[string, int], error) {
	p := &namedPart{name: part}
	if resume != nil {
		p.next = *resume
	}
	return p, nil
}

type namedPart struct {
	name string
	next int
}

func (p *namedPart) NextBatch() ([]string, error) {
	if p.next >= 10 {
		return nil, io.EOF
	}
	p.next++
	return []string{fmt.Sprintf("%s/%d", p.name, p.next-1)}, nil
}
func (p *namedPart) NextAwake() time.Time   { return time.Time{} }
func (p *namedPart) Snapshot() (int, error) { return p.next, nil }
func (p *namedPart) Close() error           { return nil }

// TestPartitionsListedOncePerRun: the resume router and every worker use
// one listing per run. With a listing that grows on every call, a second
// run used to route p1's position by one listing and build p1 on another
// worker by another, which restarted p1 from its beginning (and read
// partitions that appeared after routing).
func TestPartitionsListedOncePerRun(t *testing.T) {
	dir := initDir(t, 2)
	cfg := runneltest.Config(2, time.Hour, dir)
	src := &growingSource{}
	build := func() (*runnel.Dataflow, *runneltest.Sink[string]) {
		flow := runnel.NewDataflow("grow")
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Input("inp", flow, runnel.PartitionedInput[string, int](src)), sink)
		return flow, sink
	}
	flow, sink := build()
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.Items()); got != 10 || src.calls.Load() != 1 {
		t.Fatalf("first run: %d items from %d listings, want 10 from 1", got, src.calls.Load())
	}
	flow, sink = build()
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	got := sink.Items()
	slices.Sort(got)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("a0/%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) || src.calls.Load() != 2 {
		t.Errorf("second run read %v from %d listings in all; want only the new partition a0 (p1 is done) and 2 listings", got, src.calls.Load())
	}
}

// growingSink lists one more partition each time, like growingSource; it
// records the position each partition was built with.
type growingSink struct {
	calls   atomic.Int32
	mu      sync.Mutex
	resumed map[string]*int
}

func (g *growingSink) ListParts(context.Context) ([]string, error) {
	k := int(g.calls.Add(1))
	parts := []string{"x"}
	for i := range k - 1 {
		parts = append(parts, fmt.Sprintf("a%d", i))
	}
	return parts, nil
}

func (g *growingSink) PartFor(string) int { return 0 } // "x", first as listed

func (g *growingSink) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSinkPartition[string, int], error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resumed[part] = resume
	p := &countPart{}
	if resume != nil {
		p.n = *resume
	}
	return p, nil
}

type countPart struct{ n int }

func (p *countPart) WriteBatch(items []string) error { p.n += len(items); return nil }
func (p *countPart) Snapshot() (int, error)          { return p.n, nil }
func (p *countPart) Close() error                    { return nil }

// TestSinkPartitionsListedOncePerRun: a sink partition's recovered position
// reaches the worker that builds it even when the listing changes between
// calls, and PartFor indexes the list in its listed order.
func TestSinkPartitionsListedOncePerRun(t *testing.T) {
	dir := initDir(t, 2)
	cfg := runneltest.Config(2, time.Hour, dir)
	sink := &growingSink{resumed: map[string]*int{}}
	build := func() *runnel.Dataflow {
		flow := runnel.NewDataflow("grow")
		in := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "c"}))
		op.Output("out", in, runnel.PartitionedOutput[string, int](sink))
		return flow
	}
	if err := run(t, build(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := run(t, build(), cfg); err != nil {
		t.Fatal(err)
	}
	if r := sink.resumed["x"]; r == nil || *r != 3 || sink.calls.Load() != 2 {
		t.Errorf("second run built x with position %v after %d listings; want 3 after 2", r, sink.calls.Load())
	}
}

// TestPaceUnderManualClock: Pace waits on the run's clock, so a test that
// advances a manual clock gets one batch per step of the pace. It used to
// wait on wall time: one item, then a hang.
func TestPaceUnderManualClock(t *testing.T) {
	clock := runneltest.NewClock(time.Unix(0, 0))
	flow := runnel.NewDataflow("pace")
	sink := runneltest.NewSink[int]()
	op.Output("out", op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3}, runneltest.Pace(time.Hour))), sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runnel.Run(ctx, flow, runneltest.Config(1, 24*time.Hour, ""), runnel.WithClock(clock)) }()
	wallLimit := time.After(time.Minute)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if got := sink.Items(); !slices.Equal(got, []int{1, 2, 3}) {
				t.Errorf("got %v", got)
			}
			return
		case <-wallLimit:
			t.Fatalf("the run did not end; it delivered %v", sink.Items())
		case <-time.After(time.Millisecond):
			clock.Advance(time.Hour)
		}
	}
}

// recordingClock wraps a manual clock: every Now moves the time on by a
// microsecond after reading it (as a test advancing the clock at any
// moment would), and every At records the deadline it was asked for.
type recordingClock struct {
	*runneltest.Clock
	mu  sync.Mutex
	ats []time.Time
}

func (c *recordingClock) Now() time.Time {
	t := c.Clock.Now()
	c.Clock.Advance(time.Microsecond)
	return t
}

func (c *recordingClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	c.ats = append(c.ats, t)
	c.mu.Unlock()
	return c.Clock.At(t)
}

// awakeSource emits one item per NextBatch and asks to be polled again at
// a deadline it records, a second later on the run's clock.
type awakeSource struct {
	mu     sync.Mutex
	awakes []time.Time
}

func (s *awakeSource) Build(bc runnel.BuildContext) (runnel.SourcePartition[int], error) {
	return &awakePart{s: s, clock: bc.Clock, left: 3}, nil
}

type awakePart struct {
	s     *awakeSource
	clock runnel.Clock
	left  int
	awake time.Time
}

func (p *awakePart) NextBatch() ([]int, error) {
	if p.left == 0 {
		return nil, io.EOF
	}
	p.left--
	p.awake = p.clock.Now().Add(time.Second)
	p.s.mu.Lock()
	p.s.awakes = append(p.s.awakes, p.awake)
	p.s.mu.Unlock()
	return []int{p.left}, nil
}
func (p *awakePart) NextAwake() time.Time { return p.awake }
func (p *awakePart) Close() error         { return nil }

// TestWakeArmedWithAbsoluteDeadline: the runner arms the clock with the
// deadline the worker asked for, not with a duration computed from an
// earlier Now, which a clock moved in between turned into a later wake-up
// (a lost wake-up under a test's manual clock).
func TestWakeArmedWithAbsoluteDeadline(t *testing.T) {
	clock := &recordingClock{Clock: runneltest.NewClock(time.Unix(0, 0))}
	src := &awakeSource{}
	flow := runnel.NewDataflow("wake")
	sink := runneltest.NewSink[int]()
	op.Output("out", op.Input("inp", flow, runnel.DynamicInput[int](src)), sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runnel.Run(ctx, flow, runneltest.Config(1, 24*time.Hour, ""), runnel.WithClock(clock)) }()
	wallLimit := time.After(time.Minute)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			src.mu.Lock()
			defer src.mu.Unlock()
			clock.mu.Lock()
			defer clock.mu.Unlock()
			for _, at := range clock.ats {
				if !slices.ContainsFunc(src.awakes, at.Equal) && !at.Equal(time.Unix(0, 0).Add(24*time.Hour)) {
					t.Errorf("the runner armed the clock at %v, which is no deadline the flow asked for (%v)", at, src.awakes)
				}
			}
			return
		case <-wallLimit:
			t.Fatalf("the run did not end; it delivered %v", sink.Items())
		case <-time.After(time.Millisecond):
			clock.Clock.Advance(100 * time.Millisecond)
		}
	}
}

// panicky panics in the method named by where.
type panicky struct{ where string }

func (p panicky) ListParts(context.Context) ([]string, error) {
	if p.where == "ListParts" {
		panic("boom in ListParts")
	}
	return []string{"only"}, nil
}

func (p panicky) BuildPart(runnel.BuildContext, string, *int) (runnel.StatefulSourcePartition[int, int], error) {
	if p.where == "BuildPart" {
		panic("boom in BuildPart")
	}
	return panickyPart(p), nil
}

func (p panicky) Build(runnel.BuildContext) (runnel.SinkPartition[int], error) {
	if p.where == "Build" {
		panic("boom in Build")
	}
	return panickyPart(p), nil
}

type panickyPart panicky

func (p panickyPart) NextBatch() ([]int, error)    { return nil, io.EOF }
func (p panickyPart) NextAwake() time.Time         { return time.Time{} }
func (p panickyPart) Snapshot() (int, error)       { return 0, nil }
func (p panickyPart) WriteBatch(items []int) error { return nil }
func (p panickyPart) Close() error {
	if p.where == "Close" {
		panic("boom in Close")
	}
	return nil
}

// TestPanicInBuildOrClose: a panic in a source's or sink's ListParts,
// BuildPart, Build or Close is returned by Run as an error naming the step
// and wrapping runnel.ErrPanic, instead of escaping Run; and nothing is
// left running (the committer starts only after every step is built;
// TestMain checks for leaked goroutines).
func TestPanicInBuildOrClose(t *testing.T) {
	for _, tc := range []struct{ src, sink, step string }{
		{src: "ListParts", step: "panics.inp"},
		{src: "BuildPart", step: "panics.inp"},
		{src: "Close", step: "panics.inp"},
		{sink: "Build", step: "panics.out"},
		{sink: "Close", step: "panics.out"},
	} {
		where := tc.src + tc.sink
		t.Run(where, func(t *testing.T) {
			flow := runnel.NewDataflow("panics")
			in := op.Input("inp", flow, runnel.PartitionedInput[int, int](panicky{tc.src}))
			op.Output("out", in, runnel.DynamicOutput[int](panicky{tc.sink}))
			for _, dir := range []string{"", initDir(t, 1)} {
				err := run(t, flow, runneltest.Config(2, time.Hour, dir))
				if err == nil || !errors.Is(err, runnel.ErrPanic) || !strings.Contains(err.Error(), "step "+tc.step) || !strings.Contains(err.Error(), "boom in "+where) {
					t.Errorf("recovery %q: err = %v, want a panic error naming step %s", dir, err, tc.step)
				}
			}
		})
	}
}
