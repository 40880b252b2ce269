package demo

import (
	"github.com/runnel-dev/runnel"
	"math/rand/v2"
	"testing"
	"time"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// At is never called: the tests poll partitions by hand.
func (c *fakeClock) At(time.Time) <-chan time.Time { panic("fakeClock.At") }

// TestInterval paces a partition on the run's clock: one item per
// interval, a late partition catches up in one batch (up to the batch
// size), and NextAwake says when the next item is due.
func TestInterval(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	s := &source[int64]{
		gen: func(_ *rand.Rand, n int64) int64 { return n },
		cfg: newConfig(config{count: -1, parts: 1, batch: 3}, []Opt{Interval(time.Second)}),
	}
	p, err := s.BuildPart(runnel.BuildContext{Step: "step", Clock: clock}, "demo-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want int
		next time.Duration
	}{
		{0, 1, time.Second},
		{500 * time.Millisecond, 0, time.Second},
		{time.Second, 1, 2 * time.Second},
		{4500 * time.Millisecond, 3, 5 * time.Second}, // items due at 2, 3 and 4 s
		{10 * time.Second, 3, 8 * time.Second},        // 5, 6, 7 s: the batch size caps it
		{10 * time.Second, 3, 11 * time.Second},       // 8, 9, 10 s
	} {
		clock.now = t0.Add(tc.at)
		b, err := p.NextBatch()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != tc.want {
			t.Errorf("at %v: %d items, want %d", tc.at, len(b), tc.want)
		}
		if next := p.NextAwake(); !next.Equal(t0.Add(tc.next)) {
			t.Errorf("at %v: next awake %v, want %v", tc.at, next.Sub(t0), tc.next)
		}
	}
	if pos, _ := p.Snapshot(); pos != (Position{Next: 11, Parts: 1}) {
		t.Errorf("position %+v, want 11", pos)
	}
}
