package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// pastAwake is a partition that never has anything and always asks to be
// polled at a time long past.
type pastAwake struct{ polls int }

func (p *pastAwake) NextBatch() ([]int, error) { p.polls++; return nil, nil }
func (p *pastAwake) NextAwake() time.Time      { return time.Unix(1, 0) }
func (p *pastAwake) Close() error              { return nil }

type oneDynamic struct{ p SourcePartition[int] }

func (d oneDynamic) Build(BuildContext) (SourcePartition[int], error) { return d.p, nil }

// TestPastNextAwakeDoesNotSpin: an idle partition whose NextAwake is in the
// past is polled again only after the cool-down, not at once (which made
// the runner poll it in a loop, about 325k times in 200ms).
func TestPastNextAwakeDoesNotSpin(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	src := &pastAwake{}
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(),
		EpochInterval: time.Hour, StartEpoch: 1})
	p := NewProgram()
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](oneDynamic{src}))
	}))
	must(t, w.AddStep(p, 1, "f.out", []Port{{0, 0}}, true, func(b *Builder) error {
		Connect(b, b.NewGate(nopNode{}), 0, nil, func([]int) {})
		return nil
	}))
	for range 10 {
		if _, err := w.Step(); err != nil {
			t.Fatal(err)
		}
		d, ok := w.Deadline()
		if !ok || !d.After(clock.now) {
			t.Fatalf("after an empty poll, deadline %v (ok %v) is not after now %v: the worker would poll again at once", d, ok, clock.now)
		}
	}
	if src.polls != 1 {
		t.Errorf("polled %d times without the clock moving, want 1", src.polls)
	}
	clock.now = clock.now.Add(cooldown)
	if _, err := w.Step(); err != nil {
		t.Fatal(err)
	}
	if src.polls != 2 {
		t.Errorf("polled %d times after the cool-down, want 2", src.polls)
	}
}

type nopNode struct{}

func (nopNode) OnBarrier(Epoch) {}
func (nopNode) OnEOF()          {}

// TestBuildPanicIsStepError: a panic while a step is built (user code
// building a partition) comes back as the step's error, like a panic in
// an operator, and a panic in a closer as a close error naming the step.
func TestBuildPanicIsStepError(t *testing.T) {
	w := NewWorker(Config{Index: 3, Workers: 4, Clock: &manualClock{}, Transport: newQueueTransport(),
		EpochInterval: time.Hour, StartEpoch: 1})
	err := w.AddStep(NewProgram(), 0, "f.inp", nil, false, func(b *Builder) error {
		b.OnClose(func() error { panic("close boom") })
		panic("build boom")
	})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "f.inp" || se.Worker != 3 || !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "build boom") {
		t.Errorf("build panic: got %v, want a StepError of f.inp on worker 3 wrapping ErrPanic", err)
	}
	err = w.Close()
	if !errors.As(err, &se) || se.Step != "f.inp" || !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "close: panic: close boom") {
		t.Errorf("close panic: got %v, want a StepError of f.inp wrapping ErrPanic", err)
	}
}

// countingFeed counts its polls and returns one item each time.
type countingFeed struct{ polls int }

func (f *countingFeed) NextBatch() ([]int, error) { f.polls++; return []int{f.polls}, nil }
func (f *countingFeed) NextAwake() time.Time      { return time.Time{} }
func (f *countingFeed) Close() error              { return nil }

type nopCommitter struct{ reported []Epoch }

func (c *nopCommitter) EpochDone(_ int, e Epoch, _ []Row) { c.reported = append(c.reported, e) }
func (c *nopCommitter) Done(int, Epoch)                   {}

// TestMaxUncommittedHoldsBack: with MaxUncommitted 2, a worker that has
// closed two epochs nobody committed neither closes a third nor polls,
// however much time passes, and asks for no deadline (the commit wakes
// it). Committing one lets it read again, for a full epoch.
func TestMaxUncommittedHoldsBack(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	src := &countingFeed{}
	com := &nopCommitter{}
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(), Committer: com,
		EpochInterval: time.Second, StartEpoch: 1, MaxUncommitted: 2})
	p := NewProgram()
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](oneDynamic{src}))
	}))
	must(t, w.AddStep(p, 1, "f.out", []Port{{0, 0}}, true, func(b *Builder) error {
		Connect(b, b.NewGate(nopNode{}), 0, nil, func([]int) {})
		return nil
	}))
	step := func() {
		t.Helper()
		if _, err := w.Step(); err != nil {
			t.Fatal(err)
		}
	}
	step() // epoch 1 reads
	clock.now = clock.now.Add(time.Second)
	step() // closes epoch 1, reads in epoch 2
	clock.now = clock.now.Add(time.Second)
	step() // closes epoch 2: two uncommitted, held back
	if w.Epoch() != 3 || !slices.Equal(com.reported, []Epoch{1, 2}) {
		t.Fatalf("open epoch %d, reported %v; want 3 and [1 2]", w.Epoch(), com.reported)
	}
	polls := src.polls
	for range 5 {
		clock.now = clock.now.Add(time.Second)
		step()
	}
	if w.Epoch() != 3 || src.polls != polls {
		t.Errorf("held back, the worker moved to epoch %d and polled %d more times; want epoch 3 and no polls", w.Epoch(), src.polls-polls)
	}
	if d, ok := w.Deadline(); ok {
		t.Errorf("held back, the worker asks to be stepped at %v; only a commit can give it work", d)
	}
	if err := w.Committed(1); err != nil {
		t.Fatal(err)
	}
	step()
	if w.Epoch() != 3 || src.polls != polls+1 {
		t.Errorf("after a commit: epoch %d, %d more polls; want epoch 3 read on for a full interval (1 poll)", w.Epoch(), src.polls-polls)
	}
	if _, ok := w.Deadline(); !ok {
		t.Errorf("after a commit, the worker asks for no deadline")
	}
	clock.now = clock.now.Add(time.Second)
	step() // closes epoch 3: two uncommitted again
	if w.Epoch() != 4 {
		t.Errorf("a full interval after the commit: open epoch %d, want 4", w.Epoch())
	}
}
