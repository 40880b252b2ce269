package poll

import (
	"errors"
	"github.com/runnel-dev/runnel"
	"io"
	"slices"
	"testing"
	"time"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// At is never called: the tests poll partitions by hand.
func (c *fakeClock) At(time.Time) <-chan time.Time { panic("fakeClock.At") }

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// script is a poll function that answers from a list of results and
// records the positions it was called with.
type script struct {
	results []result
	calls   []int
}

type result struct {
	items []string
	err   error
}

func (s *script) poll(pos int) ([]string, int, error) {
	s.calls = append(s.calls, pos)
	r := s.results[len(s.calls)-1]
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		var retry *RetryError
		if !errors.As(r.err, &retry) {
			return nil, pos + 100, r.err // a failed call's position is ignored
		}
	}
	return r.items, pos + len(r.items), r.err
}

func newPart(t *testing.T, s *script, clock *fakeClock, interval time.Duration, opts ...Opt) *part[string, int] {
	t.Helper()
	src := &source[string, int]{interval: interval, cfg: newConfig(opts), poll: s.poll}
	p, err := src.BuildPart(runnel.BuildContext{Step: "step", Clock: clock}, Partition, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*part[string, int])
}

func TestSchedule(t *testing.T) {
	s := &script{results: []result{
		{items: []string{"a", "b"}},
		{},
		{err: RetryAfter(3 * time.Second)},
		{items: []string{"c"}, err: RetryAfter(time.Second)},
		{items: []string{"d"}, err: io.EOF},
	}}
	clock := &fakeClock{now: t0}
	p := newPart(t, s, clock, 10*time.Second)
	step := func(at time.Duration, want []string, wantNext time.Duration) {
		t.Helper()
		clock.now = t0.Add(at)
		got, err := p.NextBatch()
		if err != nil {
			t.Fatalf("at %v: %v", at, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("at %v: got %q, want %q", at, got, want)
		}
		if next := p.NextAwake(); !next.Equal(t0.Add(wantNext)) {
			t.Errorf("at %v: next awake %v, want %v", at, next.Sub(t0), wantNext)
		}
	}
	step(0, []string{"a", "b"}, 10*time.Second) // the first call at once
	step(9*time.Second, nil, 10*time.Second)    // too early: no call
	step(12*time.Second, nil, 22*time.Second)   // late: the next is an interval after this one
	step(22*time.Second, nil, 25*time.Second)   // RetryAfter(3s)
	step(25*time.Second, []string{"c"}, 26*time.Second)
	step(26*time.Second, []string{"d"}, 26*time.Second) // EOF with an item
	if _, err := p.NextBatch(); err != io.EOF {
		t.Errorf("after EOF: %v, want io.EOF", err)
	}
	if want := []int{0, 2, 2, 2, 3}; !slices.Equal(s.calls, want) {
		t.Errorf("positions passed %v, want %v", s.calls, want)
	}
	if pos, _ := p.Snapshot(); pos != 4 {
		t.Errorf("final position %d, want 4", pos)
	}
}

func TestAlignTo(t *testing.T) {
	s := &script{results: make([]result, 5)}
	// Aligned to 12:00:03 with a 10 s interval: polls at :03, :13, :23 …
	clock := &fakeClock{now: t0.Add(5 * time.Second)}
	p := newPart(t, s, clock, 10*time.Second, AlignTo(t0.Add(-7*time.Second)))
	for _, tc := range []struct{ at, next time.Duration }{
		{5 * time.Second, 13 * time.Second}, // before the first aligned instant: no call
		{13 * time.Second, 23 * time.Second},
		{23 * time.Second, 33 * time.Second},
		{41 * time.Second, 43 * time.Second}, // late: back on the grid
		{43 * time.Second, 53 * time.Second},
	} {
		clock.now = t0.Add(tc.at)
		if _, err := p.NextBatch(); err != nil {
			t.Fatal(err)
		}
		if next := p.NextAwake(); !next.Equal(t0.Add(tc.next)) {
			t.Errorf("at %v: next awake %v, want %v", tc.at, next.Sub(t0), tc.next)
		}
	}
	if len(s.calls) != 4 {
		t.Errorf("%d calls, want 4", len(s.calls))
	}
	// Aligned to an instant after now: the grid extends backwards.
	q := newPart(t, &script{results: make([]result, 1)}, &fakeClock{now: t0}, time.Hour, AlignTo(t0.Add(100*time.Hour+time.Minute)))
	if _, err := q.NextBatch(); err != nil {
		t.Fatal(err)
	}
	if next := q.NextAwake(); !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("next awake %v, want 12:01", next)
	}
}

func TestErrorKeepsPosition(t *testing.T) {
	boom := errors.New("boom")
	s := &script{results: []result{{items: []string{"a"}}, {err: boom}}}
	clock := &fakeClock{now: t0}
	p := newPart(t, s, clock, time.Second)
	if _, err := p.NextBatch(); err != nil {
		t.Fatal(err)
	}
	clock.now = t0.Add(time.Second)
	if _, err := p.NextBatch(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if pos, _ := p.Snapshot(); pos != 1 {
		t.Errorf("position after a failed call %d, want 1", pos)
	}
}
