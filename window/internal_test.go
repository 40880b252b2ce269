package window

import (
	"context"
	"flag"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) {
	// Property tests run Runnel flows (with SQLite recovery in some), so
	// keep rapid's example count small unless asked for more.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		_ = flag.Set("rapid.checks", "20")
	}
	goleak.VerifyTestMain(m)
}

func TestFixedRange(t *testing.T) {
	align := time.Unix(100, 0)
	sec := int64(time.Second)
	tum := Tumbling(10*time.Second, align)
	sl := Sliding(10*time.Second, 5*time.Second, align)
	cases := []struct {
		w           Windower
		ts          int64
		first, last int64
	}{
		{tum, 100 * sec, 0, 0},     // open is inclusive
		{tum, 110*sec - 1, 0, 0},   // close is exclusive
		{tum, 110 * sec, 1, 1},     // the next window's open
		{tum, 100*sec - 1, -1, -1}, // before alignTo
		{tum, 80 * sec, -2, -2},
		{sl, 100 * sec, -1, 0},
		{sl, 105*sec - 1, -1, 0},
		{sl, 105 * sec, 0, 1},
		{sl, 95 * sec, -2, -1},
	}
	for _, c := range cases {
		first, last := c.w.fixedRange(c.ts)
		if first != c.first || last != c.last {
			t.Errorf("%s: ts %v: windows %d..%d, want %d..%d", c.w, time.Duration(c.ts-100*sec), first, last, c.first, c.last)
		}
		for id := first; id <= last; id++ {
			open := c.w.fixedOpen(id)
			if c.ts < open || c.ts >= open+c.w.length {
				t.Errorf("%s: ts %d not in window %d [%d, %d)", c.w, c.ts, id, open, open+c.w.length)
			}
		}
	}
}

// TestStateCodec checks that every operator's state type encodes, and
// round-trips, with Runnel's codec.
func TestStateCodec(t *testing.T) {
	type acc struct{ Sum, N int }
	type pair = Either[string, int]
	ts := time.Unix(0, 0).UnixNano()
	check := func(name string, v any, into any) {
		t.Helper()
		if err := codec.CheckType(reflect.TypeOf(v)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		b, err := codec.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := codec.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(v, reflect.ValueOf(into).Elem().Interface()); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", name, diff)
		}
	}
	check("Window", State[string, acc]{Watermark: ts, SeenAt: 5, Windows: []OpenWindow[acc]{{ID: 1, Open: 2, Close: 3, Merged: []int64{7}, State: acc{4, 2}}},
		Queue: []Pending[string]{{Time: 9, Watermark: 8, Value: "x"}}}, &State[string, acc]{})
	check("FoldWindow/CountWindow", State[int, int]{Watermark: noWatermark, Windows: []OpenWindow[int]{{ID: -3, State: 7}}}, &State[int, int]{})
	check("CollectWindow", State[float64, []float64]{Windows: []OpenWindow[[]float64]{{State: []float64{1.5, 2}}}}, &State[float64, []float64]{})
	check("ReduceWindow/MaxWindow/MinWindow", State[int, reduced[int]]{Windows: []OpenWindow[reduced[int]]{{State: reduced[int]{3, true}}}}, &State[int, reduced[int]]{})
	check("JoinWindow", State[pair, Joined[string, int]]{Windows: []OpenWindow[Joined[string, int]]{{State: Joined[string, int]{"a", 1, true, true}}},
		Queue: []Pending[pair]{{Value: pair{Right: 4, IsRight: true}}}}, &State[pair, Joined[string, int]]{})
}

// simClock moves only when a worker waits, straight to what it waits for.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// cue is one step of a scripted source: at system time At, emit Items
// and call Do.
type cue[T any] struct {
	At    time.Duration
	Items []T
	Do    func()
}

type script[T any] struct {
	clock *simClock
	start time.Time
	cues  []cue[T]
}

func (s *script[T]) Build(runnel.BuildContext) (runnel.SourcePartition[T], error) {
	return &scriptPart[T]{s: s}, nil
}

type scriptPart[T any] struct {
	s *script[T]
	i int
}

func (p *scriptPart[T]) NextBatch() ([]T, error) {
	if p.i >= len(p.s.cues) {
		return nil, io.EOF
	}
	c := p.s.cues[p.i]
	if p.s.clock.Now().Before(p.s.start.Add(c.At)) {
		return nil, nil
	}
	p.i++
	if c.Do != nil {
		c.Do()
	}
	return c.Items, nil
}

func (p *scriptPart[T]) NextAwake() time.Time {
	if p.i >= len(p.s.cues) {
		return time.Time{}
	}
	return p.s.start.Add(p.s.cues[p.i].At)
}

func (p *scriptPart[T]) Close() error { return nil }

// TestStateFreedAfterClose checks that windows close on system time, by
// wake-ups and without new items, and that a key's state (sessions
// included) is freed once nothing of it is open.
func TestStateFreedAfterClose(t *testing.T) {
	for _, wdr := range []Windower{Tumbling(10*time.Second, time.Unix(0, 0)), Session(3 * time.Second)} {
		t.Run(wdr.String(), func(t *testing.T) {
			start := time.Unix(1000, 0).UTC()
			clock := &simClock{now: start}
			var nodes []*node[string, string, int, int]
			testHookBuilt = func(n any) { nodes = append(nodes, n.(*node[string, string, int, int])) }
			defer func() { testHookBuilt = nil }()
			var open, closed int
			sizes := func(dst *int) func() {
				return func() { *dst = nodes[0].table.Len() + nodes[0].table.Timers() }
			}
			var closedAt []time.Duration
			src := &script[string]{clock: clock, start: start, cues: []cue[string]{
				{At: 1 * time.Second, Items: []string{"a", "b"}},
				{At: 2 * time.Second, Items: []string{"a"}},
				{At: 3 * time.Second, Do: sizes(&open)},
				{At: 60 * time.Second, Do: sizes(&closed)},
			}}
			flow := runnel.NewDataflow("free")
			s := op.Input("inp", flow, runnel.DynamicInput[string](src))
			out := CountWindow("count", s, SystemClock, wdr, func(x string) string { return x })
			down := op.Inspect("when", out.Down, func(runnel.KV[string, Result[int]]) {
				closedAt = append(closedAt, clock.Now().Sub(start))
			})
			sink := runneltest.NewSink[runnel.KV[string, Result[int]]]()
			op.Output("out", down, sink)
			err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			if open != 4 || closed != 0 {
				t.Errorf("state+timers: %d while open, %d after close; want 4 and 0", open, closed)
			}
			want := []time.Duration{10 * time.Second, 10 * time.Second}
			if wdr.kind == sessionWindower {
				// b closes when the watermark passes 1s+3s, a 2s+3s.
				want = []time.Duration{4*time.Second + 1, 5*time.Second + 1}
			}
			if diff := cmp.Diff(want, closedAt); diff != "" {
				t.Errorf("windows closed at (-want +got):\n%s", diff)
			}
			if len(sink.Items()) != 2 {
				t.Errorf("results = %v", sink.Items())
			}
		})
	}
}
