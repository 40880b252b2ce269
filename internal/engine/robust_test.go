package engine

import (
	"errors"
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
