package window_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// reading is a sensor reading at a time, in seconds after align.
type reading struct {
	Sensor string
	Sec    int
	Value  int
}

var align = time.Date(2024, 6, 18, 0, 0, 0, 0, time.UTC)

func (r reading) String() string { return fmt.Sprintf("%s@%ds=%d", r.Sensor, r.Sec, r.Value) }

func at(r reading) time.Time { return align.Add(time.Duration(r.Sec) * time.Second) }

var readings = []reading{
	{"a", 0, 3}, {"a", 4, 1}, {"b", 5, 7}, {"a", 8, 5}, {"a", 12, 2}, {"a", 13, 9}, {"b", 14, 4},
}

func keyed(flow *runnel.Dataflow, rs []reading) runnel.Stream[runnel.KV[string, reading]] {
	s := op.Input("inp", flow, runneltest.NewSource(rs))
	return op.KeyOn("key", s, func(r reading) string { return r.Sensor })
}

func values(flow *runnel.Dataflow, rs []reading) runnel.Stream[runnel.KV[string, int]] {
	return op.MapValue("value", keyed(flow, rs), func(r reading) int { return r.Value })
}

// show runs flow on one worker and prints what each sink got, sorted.
func show(flow *runnel.Dataflow, sinks ...fmt.Stringer) {
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, s := range sinks {
		fmt.Print(s.String())
	}
}

type printed[T any] struct{ *runneltest.Sink[T] }

func (p printed[T]) String() string {
	var lines []string
	for _, x := range p.Items() {
		lines = append(lines, fmt.Sprint(x)+"\n")
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

func sink[T any](name string, s runnel.Stream[T]) printed[T] {
	k := runneltest.NewSink[T]()
	op.Output(name, s, k)
	return printed[T]{k}
}

func ExampleCountWindow() {
	flow := runnel.NewDataflow("count")
	s := op.Input("inp", flow, runneltest.NewSource(readings))
	clock := window.EventClock(at, 0)
	out := window.CountWindow("count", s, clock, window.Tumbling(10*time.Second, align),
		func(r reading) string { return r.Sensor })
	show(flow, sink("down", out.Down), sink("meta", out.Meta))
	// Output:
	// ('a', (0, 3))
	// ('a', (1, 2))
	// ('b', (0, 1))
	// ('b', (1, 1))
	// ('a', Meta(0, 2024-06-18T00:00:00Z, 2024-06-18T00:00:10Z))
	// ('a', Meta(1, 2024-06-18T00:00:10Z, 2024-06-18T00:00:20Z))
	// ('b', Meta(0, 2024-06-18T00:00:00Z, 2024-06-18T00:00:10Z))
	// ('b', Meta(1, 2024-06-18T00:00:10Z, 2024-06-18T00:00:20Z))
}

// simClock is a manual clock for runnel.WithClock: time moves only when a
// worker waits, straight to what it waits for.
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

func ExampleTumbling() {
	flow := runnel.NewDataflow("tumbling")
	out := window.CollectWindow("collect", keyed(flow, readings), window.EventClock(at, time.Minute),
		window.Tumbling(10*time.Second, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, [a@0s=3, a@4s=1, a@8s=5]))
	// ('a', (1, [a@12s=2, a@13s=9]))
	// ('b', (0, [b@5s=7]))
	// ('b', (1, [b@14s=4]))
}

func ExampleSliding() {
	flow := runnel.NewDataflow("sliding")
	out := window.CollectWindow("collect", keyed(flow, readings[:4]), window.EventClock(at, time.Minute),
		window.Sliding(10*time.Second, 5*time.Second, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (-1, [a@0s=3, a@4s=1]))
	// ('a', (0, [a@0s=3, a@4s=1, a@8s=5]))
	// ('a', (1, [a@8s=5]))
	// ('b', (0, [b@5s=7]))
	// ('b', (1, [b@5s=7]))
}

func ExampleSession() {
	flow := runnel.NewDataflow("session")
	// a@3s comes out of order, within the gap of both sessions so far,
	// and joins them into one. (Unordered: items go to the sessions as they
	// come. By default they would wait for the watermark and go in time
	// order, so no sessions would need merging; the results are the same.)
	rs := []reading{{"a", 0, 1}, {"a", 1, 2}, {"a", 6, 3}, {"a", 3, 4}, {"a", 20, 5}}
	out := window.CollectWindow("collect", keyed(flow, rs), window.EventClock(at, time.Minute),
		window.Session(3*time.Second), window.Unordered())
	show(flow, sink("down", out.Down), sink("meta", out.Meta))
	// Output:
	// ('a', (1718668800000000000, [a@0s=1, a@1s=2, a@3s=4, a@6s=3]))
	// ('a', (1718668820000000000, [a@20s=5]))
	// ('a', Meta(1718668800000000000, 2024-06-18T00:00:00Z, 2024-06-18T00:00:06Z, merged=[1718668806000000000]))
	// ('a', Meta(1718668820000000000, 2024-06-18T00:00:20Z, 2024-06-18T00:00:20Z))
}

func ExampleSystemClock() {
	flow := runnel.NewDataflow("system")
	s := op.Input("inp", flow, runneltest.NewSource([]string{"x", "y", "x"}))
	out := window.CountWindow("count", s, window.SystemClock,
		window.Tumbling(time.Minute, align), func(w string) string { return w })
	down := sink("down", out.Down)
	meta := sink("meta", out.Meta)
	clock := &simClock{now: align.Add(90 * time.Second)}
	err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clock))
	fmt.Println(err)
	fmt.Print(down.String() + meta.String())
	// Output:
	// <nil>
	// ('x', (1, 2))
	// ('y', (1, 1))
	// ('x', Meta(1, 2024-06-18T00:01:00Z, 2024-06-18T00:02:00Z))
	// ('y', Meta(1, 2024-06-18T00:01:00Z, 2024-06-18T00:02:00Z))
}

func ExampleEventClock() {
	flow := runnel.NewDataflow("event")
	// a@3s comes after a@12s moved the watermark to 12s-5s = 7s: still in
	// time for [0s, 10s). a@1s comes after a@16s moved it to 11s: late.
	rs := []reading{{"a", 2, 1}, {"a", 12, 2}, {"a", 3, 3}, {"a", 16, 4}, {"a", 1, 5}}
	out := window.CollectWindow("collect", keyed(flow, rs), window.EventClock(at, 5*time.Second),
		window.Tumbling(10*time.Second, align))
	show(flow, sink("down", out.Down), sink("late", out.Late))
	// Output:
	// ('a', (0, [a@2s=1, a@3s=3]))
	// ('a', (1, [a@12s=2, a@16s=4]))
	// ('a', Late(0, a@1s=5, 2024-06-18T00:00:01Z))
}

func ExampleAllowedLateness() {
	flow := runnel.NewDataflow("lateness")
	rs := []reading{{"a", 2, 1}, {"a", 16, 4}, {"a", 1, 5}, {"a", 31, 6}, {"a", 3, 7}}
	out := window.CollectWindow("collect", keyed(flow, rs), window.EventClock(at, 5*time.Second),
		window.Tumbling(10*time.Second, align), window.AllowedLateness(5*time.Second))
	show(flow, sink("down", out.Down), sink("late", out.Late))
	// Output:
	// ('a', (0, [a@2s=1, a@1s=5]))
	// ('a', (1, [a@16s=4]))
	// ('a', (3, [a@31s=6]))
	// ('a', Late(0, a@3s=7, 2024-06-18T00:00:03Z))
}

func ExampleOrdered() {
	flow := runnel.NewDataflow("ordered")
	rs := []reading{{"a", 4, 1}, {"a", 2, 2}, {"a", 3, 3}, {"a", 1, 4}}
	out := window.CollectWindow("collect", keyed(flow, rs), window.EventClock(at, 5*time.Second),
		window.Tumbling(10*time.Second, align), window.Ordered())
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, [a@1s=4, a@2s=2, a@3s=3, a@4s=1]))
}

func ExampleWindow() {
	flow := runnel.NewDataflow("window")
	// Emit a running total on every item and the count when the window
	// closes.
	type acc struct{ Sum, N int }
	out := window.Window("totals", keyed(flow, readings[:4]), window.EventClock(at, time.Minute),
		window.Tumbling(10*time.Second, align), window.Logic[reading, acc, string]{
			OnValue: func(e *window.Emitter[string], s acc, r reading) acc {
				s.Sum += r.Value
				s.N++
				e.Emit(fmt.Sprint("sum so far ", s.Sum))
				return s
			},
			OnClose: func(e *window.Emitter[string], s acc) {
				e.Emit(fmt.Sprintf("%d items until %s", s.N, e.Close().Format(time.TimeOnly)))
			},
		})
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, '3 items until 00:00:10'))
	// ('a', (0, 'sum so far 3'))
	// ('a', (0, 'sum so far 4'))
	// ('a', (0, 'sum so far 9'))
	// ('b', (0, '1 items until 00:00:10'))
	// ('b', (0, 'sum so far 7'))
}

func ExampleFoldWindow() {
	flow := runnel.NewDataflow("fold")
	out := window.FoldWindow("sum", values(flow, readings), valueClockFor(readings),
		window.Tumbling(10*time.Second, align),
		func() int { return 0 }, func(s, v int) int { return s + v }, func(a, b int) int { return a + b })
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, 9))
	// ('a', (1, 11))
	// ('b', (0, 7))
	// ('b', (1, 4))
}

func ExampleCollectWindow() {
	flow := runnel.NewDataflow("collect")
	out := window.CollectWindow("collect", values(flow, readings), valueClockFor(readings),
		window.Tumbling(time.Minute, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, [3, 1, 5, 2, 9]))
	// ('b', (0, [7, 4]))
}

func ExampleReduceWindow() {
	flow := runnel.NewDataflow("reduce")
	out := window.ReduceWindow("product", values(flow, readings), valueClockFor(readings),
		window.Tumbling(10*time.Second, align), func(a, b int) int { return a * b })
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, 15))
	// ('a', (1, 18))
	// ('b', (0, 7))
	// ('b', (1, 4))
}

func ExampleMaxWindow() {
	flow := runnel.NewDataflow("max")
	out := window.MaxWindow("max", values(flow, readings), valueClockFor(readings),
		window.Tumbling(10*time.Second, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, 5))
	// ('a', (1, 9))
	// ('b', (0, 7))
	// ('b', (1, 4))
}

func ExampleMinWindow() {
	flow := runnel.NewDataflow("min")
	out := window.MinWindow("min", values(flow, readings), valueClockFor(readings),
		window.Tumbling(10*time.Second, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, 1))
	// ('a', (1, 2))
	// ('b', (0, 7))
	// ('b', (1, 4))
}

func ExampleMaxWindowFunc() {
	flow := runnel.NewDataflow("max")
	out := window.MaxWindowFunc("loudest", keyed(flow, readings), window.EventClock(at, time.Minute),
		window.Tumbling(time.Minute, align), func(a, b reading) int { return a.Value - b.Value })
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, a@13s=9))
	// ('b', (0, b@5s=7))
}

func ExampleMinWindowFunc() {
	flow := runnel.NewDataflow("min")
	out := window.MinWindowFunc("quietest", keyed(flow, readings), window.EventClock(at, time.Minute),
		window.Tumbling(time.Minute, align), func(a, b reading) int { return a.Value - b.Value })
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, a@4s=1))
	// ('b', (0, b@14s=4))
}

func ExampleJoinWindow() {
	flow := runnel.NewDataflow("join")
	type click struct{ Sec int }
	clicks := op.KeyOn("key_clicks", op.Input("clicks", flow, runneltest.NewSource([]click{{1}, {12}})),
		func(click) string { return "user1" })
	views := keyed(flow, []reading{{"user1", 2, 100}, {"user1", 25, 200}})
	clock := window.EventClock(func(e window.Either[click, reading]) time.Time {
		if e.IsRight {
			return at(e.Right)
		}
		return align.Add(time.Duration(e.Left.Sec) * time.Second)
	}, time.Minute)
	out := window.JoinWindow("join", clicks, views, clock, window.Tumbling(10*time.Second, align))
	show(flow, sink("down", out.Down))
	// Output:
	// ('user1', (0, ({1}, user1@2s=100)))
	// ('user1', (1, ({12}, None)))
	// ('user1', (2, (None, user1@25s=200)))
}

// valueClockFor times the values of rs by the readings they came from:
// values are unique here, so a lookup table will do for the examples.
func valueClockFor(rs []reading) window.Clock[int] {
	times := map[int]time.Time{}
	for _, r := range rs {
		times[r.Value] = at(r)
	}
	return window.EventClock(func(v int) time.Time { return times[v] }, time.Minute)
}

// Print each count with its window's bounds, computed from the window id.
func ExampleWindower_Bounds() {
	align := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tumbling := window.Tumbling(time.Minute, align)
	start, end, _ := tumbling.Bounds(2)
	fmt.Println(start.Format(time.TimeOnly), end.Format(time.TimeOnly))

	sliding := window.Sliding(time.Minute, 20*time.Second, align)
	start, end, _ = sliding.Bounds(-1)
	fmt.Println(start.Format(time.TimeOnly), end.Format(time.TimeOnly))

	_, _, ok := window.Session(time.Minute).Bounds(0)
	fmt.Println("session bounds known:", ok)
	// Output:
	// 00:02:00 00:03:00
	// 23:59:40 00:00:40
	// session bounds known: false
}

func ExampleJoinWindowN() {
	flow := runnel.NewDataflow("joinn")
	side := func(id string, rs []reading) runnel.Stream[runnel.KV[string, reading]] {
		return op.KeyOn("key_"+id, op.Input(id, flow, runneltest.NewSource(rs)), func(r reading) string { return r.Sensor })
	}
	gw1 := side("gw1", []reading{{"a", 1, 10}, {"a", 3, 11}})
	gw2 := side("gw2", []reading{{"a", 2, 20}})
	gw3 := side("gw3", []reading{{"a", 12, 30}})
	out := window.JoinWindowN("join", []runnel.Stream[runnel.KV[string, reading]]{gw1, gw2, gw3},
		window.EventClock(at, time.Minute), window.Tumbling(10*time.Second, align),
		window.JoinModes(op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal}))
	show(flow, sink("down", out.Down))
	// Output:
	// ('a', (0, [a@1s=10, a@2s=20, None]))
	// ('a', (0, [a@3s=11, a@2s=20, None]))
	// ('a', (1, [None, None, a@12s=30]))
}
