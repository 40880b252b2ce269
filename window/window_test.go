package window_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// outputs collects the three streams of a window operator as sorted text.
type outputs struct {
	down fmt.Stringer
	late fmt.Stringer
	meta fmt.Stringer
}

func collect[K runnel.Key, V, W any](o window.Out[K, V, W]) outputs {
	id := o.Down.StepID()
	id = id[strings.LastIndex(id, ".")+1:]
	return outputs{sink(id+"_down", o.Down), sink(id+"_late", o.Late), sink(id+"_meta", o.Meta)}
}

func (o outputs) lines() []string {
	var all []string
	for _, s := range []fmt.Stringer{o.down, o.late, o.meta} {
		all = append(all, strings.Split(strings.TrimSpace(s.String()), "\n")...)
	}
	return slices.DeleteFunc(all, func(s string) bool { return s == "" })
}

func run(t *testing.T, flow *runnel.Dataflow, workers int) {
	t.Helper()
	if err := runneltest.Run(flow, workers); err != nil {
		t.Fatal(err)
	}
}

func secs(key string, ss ...int) []reading {
	var rs []reading
	for i, s := range ss {
		rs = append(rs, reading{key, s, i})
	}
	return rs
}

func TestTumblingBoundaries(t *testing.T) {
	flow := runnel.NewDataflow("f")
	// -1s is in window -1; 0s opens window 0 (inclusive); 10s is in window 1
	// (the close is exclusive).
	rs := []reading{{"a", 0, 0}, {"a", 10, 1}, {"a", -1, 2}, {"a", 9, 3}}
	o := collect(window.CollectWindow("c", keyed(flow, rs), window.EventClock(at, time.Hour), window.Tumbling(10*time.Second, align)))
	run(t, flow, 1)
	want := []string{
		"('a', (-1, [a@-1s=2]))",
		"('a', (0, [a@0s=0, a@9s=3]))",
		"('a', (1, [a@10s=1]))",
		"('a', Meta(-1, 2024-06-17T23:59:50Z, 2024-06-18T00:00:00Z))",
		"('a', Meta(0, 2024-06-18T00:00:00Z, 2024-06-18T00:00:10Z))",
		"('a', Meta(1, 2024-06-18T00:00:10Z, 2024-06-18T00:00:20Z))",
	}
	if diff := cmp.Diff(want, o.lines()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSlidingBoundaries(t *testing.T) {
	flow := runnel.NewDataflow("f")
	rs := []reading{{"a", 5, 0}, {"a", 15, 1}}
	o := collect(window.CollectWindow("c", keyed(flow, rs), window.EventClock(at, time.Hour),
		window.Sliding(10*time.Second, 5*time.Second, align)))
	run(t, flow, 1)
	want := []string{
		"('a', (0, [a@5s=0]))",
		"('a', (1, [a@5s=0]))",
		"('a', (2, [a@15s=1]))",
		"('a', (3, [a@15s=1]))",
	}
	if diff := cmp.Diff(want, o.lines()[:4]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBuildErrors(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := keyed(flow, readings)
	clock := window.EventClock(at, 0)
	o := window.CollectWindow("slide", s, clock, window.Sliding(time.Second, 2*time.Second, align))
	op.Output("o1", o.Down, runneltest.NewSink[runnel.KV[string, window.Result[[]reading]]]())
	window.CountWindow("zero_clock", op.KeyRm("rm", s), window.Clock[reading](nil), window.Tumbling(time.Second, align), func(r reading) string { return r.Sensor })
	window.CountWindow("empty_clock", op.KeyRm("rm2", s), func(*window.ClockSetup[reading]) {}, window.Tumbling(time.Second, align), func(r reading) string { return r.Sensor })
	window.CollectWindow("zero_windower", s, clock, window.Windower{})
	window.CollectWindow("neg", s, clock, window.Tumbling(time.Second, align), window.AllowedLateness(-time.Second))
	window.CollectWindow("gap", s, clock, window.Session(-time.Second))
	window.Window("merge", s, clock, window.Session(time.Second), window.Logic[reading, int, int]{
		OnValue: func(_ *window.Emitter[int], s int, _ reading) int { return s + 1 }})
	err := runneltest.Run(flow, 1)
	for _, want := range []string{
		"step f.slide: sliding window offset 2s is longer than its length 1s",
		"step f.zero_clock: the clock is nil; pass window.SystemClock or window.EventClock(...)",
		"step f.empty_clock: the clock set nothing; pass window.SystemClock or window.EventClock(...)",
		"step f.zero_windower: the windower is the zero Windower",
		"step f.neg: allowed lateness -1s must not be negative",
		"step f.gap: session gap -1s must not be negative",
		"step f.merge: session windows merge, so the logic needs OnMerge",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
}

func TestSessionMergesOutOfOrder(t *testing.T) {
	flow := runnel.NewDataflow("f")
	// Gap 5s. Sessions {0,3}, {20} and {11} form apart; 16 joins {11} and
	// brings it within the gap of {20}; then 8 bridges {0,3} and {11,16,20}.
	rs := secs("a", 0, 3, 20, 11, 16, 8, 40)
	o := collect(window.CollectWindow("c", keyed(flow, rs), window.EventClock(at, time.Hour), window.Session(5*time.Second), window.Unordered()))
	run(t, flow, 1)
	id := func(s int) int64 { return at(reading{Sec: s}).UnixNano() }
	want := []string{
		fmt.Sprintf("('a', (%d, [a@0s=0, a@3s=1, a@8s=5, a@11s=3, a@16s=4, a@20s=2]))", id(0)),
		fmt.Sprintf("('a', (%d, [a@40s=6]))", id(40)),
		fmt.Sprintf("('a', Meta(%d, 2024-06-18T00:00:00Z, 2024-06-18T00:00:20Z, merged=[%d %d]))", id(0), id(11), id(20)),
		fmt.Sprintf("('a', Meta(%d, 2024-06-18T00:00:40Z, 2024-06-18T00:00:40Z))", id(40)),
	}
	if diff := cmp.Diff(want, o.lines()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLateItems(t *testing.T) {
	flow := runnel.NewDataflow("f")
	// Sliding 10s every 5s, no wait. 25s moves the watermark to 25s:
	// windows up to [15s, 25s) are closed. 22s is late for window 3
	// ([15s, 25s)) only, and still counts in window 4 ([20s, 30s)); 12s is
	// late for both of its windows. A session item is late when it is
	// before the watermark.
	rs := secs("a", 1, 25, 22, 12)
	o := collect(window.CountWindow("c", op.Input("inp", flow, runneltest.NewSource(rs)), window.EventClock(at, 0),
		window.Sliding(10*time.Second, 5*time.Second, align), func(r reading) string { return r.Sensor }))
	so := collect(window.CountWindow("s", op.Input("inp_b", flow, runneltest.NewSource(secs("b", 1, 25, 17))), window.EventClock(at, 0), window.Session(time.Second),
		func(r reading) string { return r.Sensor }))
	run(t, flow, 1)
	late := strings.Split(strings.TrimSpace(o.late.String()), "\n")
	want := []string{
		"('a', Late(1, a@12s=3, 2024-06-18T00:00:12Z))",
		"('a', Late(2, a@12s=3, 2024-06-18T00:00:12Z))",
		"('a', Late(3, a@22s=2, 2024-06-18T00:00:22Z))",
	}
	if diff := cmp.Diff(want, late); diff != "" {
		t.Errorf("late (-want +got):\n%s", diff)
	}
	if !strings.Contains(o.down.String(), "('a', (4, 2))") {
		t.Errorf("window 4 should count 25s and 17s:\n%s", o.down)
	}
	if got := strings.TrimSpace(so.late.String()); got != "('b', Late(-1, b@17s=2, 2024-06-18T00:00:17Z))" {
		t.Errorf("session late = %q", got)
	}
}

func TestAllowedLatenessSessions(t *testing.T) {
	flow := runnel.NewDataflow("f")
	// Gap 2s, no wait, 10s of allowed lateness: at watermark 30s the
	// session {5} has closed (5s+2s+10s < 30s) and 4 is late, while 22 is
	// within the lateness and joins {20}, which closes only after 32s.
	rs := secs("a", 5, 20, 30, 22, 4)
	o := collect(window.CountWindow("c", op.Input("inp", flow, runneltest.NewSource(rs)), window.EventClock(at, 0),
		window.Session(2*time.Second), func(r reading) string { return r.Sensor }, window.AllowedLateness(10*time.Second)))
	run(t, flow, 1)
	if got := o.late.String(); !strings.Contains(got, "a@4s") || strings.Contains(got, "a@22s") {
		t.Errorf("late = %s", got)
	}
	if got := o.down.String(); !strings.Contains(got, fmt.Sprintf("(%d, 2)", at(reading{Sec: 20}).UnixNano())) {
		t.Errorf("session 20 should hold 20 and 22: %s", got)
	}
}

func TestOrderedMode(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		flow := runnel.NewDataflow("f")
		opts := []window.Option{window.Unordered()}
		if ordered {
			opts = append(opts, window.Ordered())
		}
		// With a wait of 10.5s, 11 moves the watermark to 0.5s: 0 comes
		// after it and runs at once; 1, 2, 3 wait (in ordered mode) until 30
		// moves it to 19.5s, which also makes 4 late.
		rs := secs("a", 3, 1, 2, 11, 0, 30, 4)
		o := collect(window.CollectWindow("c", keyed(flow, rs), window.EventClock(at, 10500*time.Millisecond),
			window.Tumbling(10*time.Second, align), opts...))
		run(t, flow, 1)
		want := "('a', (0, [a@3s=0, a@1s=1, a@2s=2, a@0s=4]))"
		if ordered {
			want = "('a', (0, [a@0s=4, a@1s=1, a@2s=2, a@3s=0]))"
		}
		if got := o.down.String(); !strings.Contains(got, want) {
			t.Errorf("ordered=%v: got\n%s\nwant %s", ordered, got, want)
		}
		if got := o.late.String(); !strings.Contains(got, "a@4s=6") {
			t.Errorf("ordered=%v: late = %s", ordered, got)
		}
	}
}

// event is a property-test item: a key, an event time in whole minutes and
// a value.
type event struct {
	Key   string
	Min   int
	Value int
}

func (e event) time() time.Time { return align.Add(time.Duration(e.Min) * time.Minute) }

// The wait is not a whole number of minutes, so that the few milliseconds
// of real time a test run takes never move a watermark across an event
// time: results are deterministic although the clock is the wall clock.
const propWait = 5*time.Minute + 30*time.Second

func genEvents() *rapid.Generator[[]event] {
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) event {
		return event{
			Key:   rapid.SampledFrom([]string{"k0", "k1", "k2", "k3"}).Draw(t, "key"),
			Min:   rapid.IntRange(0, 60).Draw(t, "min"),
			Value: rapid.IntRange(1, 9).Draw(t, "value"),
		}
	}), 4, 30)
}

func genWindower(t *rapid.T) window.Windower {
	switch rapid.IntRange(0, 2).Draw(t, "windower") {
	case 0:
		return window.Tumbling(10*time.Minute, align)
	case 1:
		return window.Sliding(10*time.Minute, 4*time.Minute, align)
	}
	return window.Session(4 * time.Minute)
}

// propFlow builds the flow under test: Window (general logic) or
// CountWindow over the events.
func propFlow(src runnel.Source[event], wdr window.Windower, general bool, opts []window.Option) (*runnel.Dataflow, outputs) {
	flow := runnel.NewDataflow("prop")
	s := op.Input("inp", flow, src)
	clock := window.EventClock(event.time, propWait)
	if !general {
		return flow, collect(window.CountWindow("count", s, clock, wdr, func(e event) string { return e.Key }, opts...))
	}
	type acc struct{ Sum, N int }
	k := op.KeyOn("key", s, func(e event) string { return e.Key })
	return flow, collect(window.Window("win", k, clock, wdr, window.Logic[event, acc, string]{
		OnValue: func(e *window.Emitter[string], s acc, v event) acc {
			if v.Value == 9 {
				e.Emit(fmt.Sprint("nine at ", v.Min)) // emitted before the close
			}
			return acc{s.Sum + v.Value, s.N + 1}
		},
		OnMerge: func(_ *window.Emitter[string], a, b acc) acc { return acc{a.Sum + b.Sum, a.N + b.N} },
		OnClose: func(e *window.Emitter[string], s acc) { e.Emit(fmt.Sprintf("sum %d of %d", s.Sum, s.N)) },
	}, opts...))
}

func drawOpts(t *rapid.T) []window.Option {
	var opts []window.Option
	if rapid.Bool().Draw(t, "ordered") {
		opts = append(opts, window.Ordered())
	}
	if rapid.Bool().Draw(t, "lateness") {
		opts = append(opts, window.AllowedLateness(3*time.Minute))
	}
	return opts
}

func runProp(t *rapid.T, flow *runnel.Dataflow, cfg runnel.Config) error {
	return runnel.Run(context.Background(), flow, cfg)
}

func TestPropertyWorkerCount(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents().Draw(t, "events")
		wdr := genWindower(t)
		general := rapid.Bool().Draw(t, "general")
		opts := drawOpts(t)
		var got [2][]string
		for i, w := range []int{1, 3} {
			flow, o := propFlow(runneltest.NewSource(evs, runneltest.BatchSize(3)), wdr, general, opts)
			if err := runProp(t, flow, runneltest.Config(w, time.Hour, "")); err != nil {
				t.Fatal(err)
			}
			got[i] = o.lines()
		}
		if diff := cmp.Diff(got[0], got[1]); diff != "" {
			t.Fatalf("1 and 3 workers differ (-1 +3):\n%s", diff)
		}
	})
}

func TestPropertyCrashResume(t *testing.T) {
	base := t.TempDir()
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents().Draw(t, "events")
		wdr := genWindower(t)
		general := rapid.Bool().Draw(t, "general")
		opts := drawOpts(t)
		failAt := rapid.IntRange(0, len(evs)-1).Draw(t, "fail_at")
		batch := rapid.IntRange(1, 4).Draw(t, "batch")
		w1 := rapid.IntRange(1, 3).Draw(t, "workers_before")
		w2 := rapid.IntRange(1, 3).Draw(t, "workers_after")

		flow, o := propFlow(runneltest.NewSource(evs, runneltest.BatchSize(batch)), wdr, general, opts)
		if err := runProp(t, flow, runneltest.Config(1, time.Hour, "")); err != nil {
			t.Fatal(err)
		}
		want := set(o.lines())

		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		if err := recovery.Init(dir, 1); err != nil {
			t.Fatal(err)
		}
		flow, o1 := propFlow(runneltest.NewSource(evs, runneltest.BatchSize(batch), runneltest.FailAt(failAt),
			runneltest.Pace(300*time.Microsecond)), wdr, general, opts)
		err := runProp(t, flow, runneltest.Config(w1, 2*time.Millisecond, dir))
		if !errors.Is(err, runneltest.ErrCrash) {
			t.Fatalf("first run: err = %v, want the simulated crash", err)
		}
		flow, o2 := propFlow(runneltest.NewSource(evs, runneltest.BatchSize(batch)), wdr, general, opts)
		if err := runProp(t, flow, runneltest.Config(w2, 2*time.Millisecond, dir)); err != nil {
			t.Fatalf("resumed run: %v", err)
		}
		got := set(append(o1.lines(), o2.lines()...))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("crash at %d and resume differ from a run without crash (-want +got):\n%s", failAt, diff)
		}
	})
}

func set(lines []string) []string {
	s := slices.Clone(lines)
	slices.Sort(s)
	return slices.Compact(s)
}
