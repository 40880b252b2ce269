package window_test

// The cases of Bytewax's own windowing tests (pytests/operators/windowing/),
// run on Runnel with the same inputs and expected outputs. Each test names
// the Bytewax test it mirrors. Where Runnel differs on purpose (session
// window ids), the test says so and pins Runnel's behaviour;
// docs/operators.md ("Differences from Bytewax") explains each.

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// bwAlign is the align_to of Bytewax's windowing tests.
var bwAlign = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// forever is Bytewax's wait_for_system_duration=timedelta.max: the
// watermark never moves before the end of input.
const forever = time.Duration(math.MaxInt64)

type bwEvent struct {
	At    time.Time
	Value string
}

func ev(sec int, v string) bwEvent {
	return bwEvent{bwAlign.Add(time.Duration(sec) * time.Second), v}
}

func evAt(e bwEvent) time.Time { return e.At }

// runOne runs flow on one worker (Bytewax's run_main) and returns what sink
// got, in arrival order.
func runOne[T any](t *testing.T, flow *runnel.Dataflow, sink *runneltest.Sink[T]) []T {
	t.Helper()
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	return sink.Items()
}

// unkeyed is Bytewax's key_rm on a window's down stream: (window id, value).
type unkeyed[W any] struct {
	ID    int64
	Value W
}

func keyRm[K runnel.Key, W any](flow *runnel.Dataflow, down runnel.Stream[runnel.KV[K, window.Result[W]]]) *runneltest.Sink[unkeyed[W]] {
	s := op.Map("unkey", op.KeyRm("key_rm", down), func(r window.Result[W]) unkeyed[W] { return unkeyed[W]{r.ID, r.Value} })
	sink := runneltest.NewSink[unkeyed[W]]()
	op.Output("out", s, sink)
	return sink
}

func allKey[V any](flow *runnel.Dataflow, items []V) runnel.Stream[runnel.KV[string, V]] {
	return op.KeyOn("key", op.Input("inp", flow, runneltest.NewSource(items)), func(V) string { return "ALL" })
}

// test_collect_window: collect_window is ordered by default, in Bytewax
// and in Runnel, so the out-of-order items come out sorted by time;
// window.Unordered() (Bytewax's ordered=False) keeps arrival order.
func TestBytewaxCollectWindow(t *testing.T) {
	inp := []bwEvent{ev(0, "1"), ev(8, "3"), ev(4, "2"), ev(13, "5"), ev(12, "4")}
	for _, tc := range []struct {
		name string
		opts []window.Option
		want []unkeyed[[]string]
	}{
		{"default (ordered)", nil, []unkeyed[[]string]{{0, []string{"1", "2", "3"}}, {1, []string{"4", "5"}}}},
		{"Ordered", []window.Option{window.Ordered()}, []unkeyed[[]string]{{0, []string{"1", "2", "3"}}, {1, []string{"4", "5"}}}},
		{"Unordered", []window.Option{window.Unordered()}, []unkeyed[[]string]{{0, []string{"1", "3", "2"}}, {1, []string{"5", "4"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := runnel.NewDataflow("test_df")
			vals := op.MapValue("value", allKey(flow, inp), func(e bwEvent) bwEvent { return e })
			out := window.CollectWindow("collect_window", vals, window.EventClock(evAt, forever),
				window.Tumbling(10*time.Second, bwAlign), tc.opts...)
			got := runOne(t, flow, keyRm(flow, out.Down))
			var clean []unkeyed[[]string]
			for _, g := range got {
				var vs []string
				for _, e := range g.Value {
					vs = append(vs, e.Value)
				}
				clean = append(clean, unkeyed[[]string]{g.ID, vs})
			}
			if diff := cmp.Diff(tc.want, clean); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

type userEvent struct {
	Time time.Time
	User string
	Val  int
}

func userEvents(users string, secs []int, vals []int) []userEvent {
	var out []userEvent
	for i, s := range secs {
		out = append(out, userEvent{bwAlign.Add(time.Duration(s) * time.Second), string(users[i]), vals[i]})
	}
	return out
}

func userAt(e userEvent) time.Time { return e.Time }

// test_count_window
func TestBytewaxCountWindow(t *testing.T) {
	inp := userEvents("aabaa", []int{0, 4, 8, 12, 13}, []int{1, 1, 1, 1, 1})
	flow := runnel.NewDataflow("test_df")
	s := op.Input("inp", flow, runneltest.NewSource(inp))
	out := window.CountWindow("add", s, window.EventClock(userAt, 0), window.Tumbling(10*time.Second, bwAlign),
		func(e userEvent) string { return e.User })
	sink := runneltest.NewSink[runnel.KV[string, window.Result[int]]]()
	op.Output("out", out.Down, sink)
	want := []runnel.KV[string, window.Result[int]]{
		{Key: "a", Value: window.Result[int]{ID: 0, Value: 2}},
		{Key: "a", Value: window.Result[int]{ID: 1, Value: 2}},
		{Key: "b", Value: window.Result[int]{ID: 0, Value: 1}},
	}
	if diff := cmp.Diff(want, runOne(t, flow, sink)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// test_fold_window_tumbling
func TestBytewaxFoldWindowTumbling(t *testing.T) {
	inp := []bwEvent{ev(0, "login"), ev(4, "post"), ev(8, "post"), ev(16, "post")}
	flow := runnel.NewDataflow("test_df")
	out := window.FoldWindow("count", allKey(flow, inp), window.EventClock(evAt, 0),
		window.Tumbling(10*time.Second, bwAlign),
		func() map[string]int { return map[string]int{} },
		func(counts map[string]int, e bwEvent) map[string]int { counts[e.Value]++; return counts },
		func(a, b map[string]int) map[string]int {
			for k, v := range b {
				a[k] += v
			}
			return a
		})
	want := []unkeyed[map[string]int]{{0, map[string]int{"login": 1, "post": 2}}, {1, map[string]int{"post": 1}}}
	if diff := cmp.Diff(want, runOne(t, flow, keyRm(flow, out.Down))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func appendValue(acc []string, e bwEvent) []string { return append(acc, e.Value) }
func concat(a, b []string) []string                { return append(a, b...) }

// test_fold_window_session: the same sessions, values and late item as
// Bytewax. Bytewax numbers a key's sessions 0, 1, 2 from a counter it keeps
// for the key forever; Runnel frees a key's state once its windows close,
// so a session's id is the Unix-nanosecond time of the item that opened it
// (documented difference). The late item goes to Late (Bytewax's late
// stream too; its session id there is -1 in both).
func TestBytewaxFoldWindowSession(t *testing.T) {
	inp := []bwEvent{
		ev(1, "a"), ev(5, "b"), // session 1
		ev(11, "c"), ev(12, "d"), ev(13, "e"), ev(14, "f"), // session 2
		ev(20, "g"), // session 3
		ev(1, "h"),  // late
	}
	flow := runnel.NewDataflow("test_df")
	out := window.FoldWindow("sum", allKey(flow, inp), window.EventClock(evAt, 0), window.Session(5*time.Second),
		func() []string { return nil }, appendValue, concat)
	late := runneltest.NewSink[runnel.KV[string, window.Late[bwEvent]]]()
	op.Output("late", out.Late, late)
	id := func(sec int) int64 { return ev(sec, "").At.UnixNano() }
	want := []unkeyed[[]string]{
		{id(1), []string{"a", "b"}},
		{id(11), []string{"c", "d", "e", "f"}},
		{id(20), []string{"g"}},
	}
	if diff := cmp.Diff(want, runOne(t, flow, keyRm(flow, out.Down))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	lates := late.Items()
	if len(lates) != 1 || lates[0].Value.Value != ev(1, "h") || lates[0].Value.ID != -1 {
		t.Errorf("late = %v, want h, late for session -1", lates)
	}
}

// test_fold_window_sliding: window ids before align_to are negative, as
// in Bytewax; the late "h" is late for both windows it belongs to (-1 and 0).
func TestBytewaxFoldWindowSliding(t *testing.T) {
	inp := []bwEvent{
		ev(1, "a"), ev(4, "b"), ev(8, "c"), ev(12, "d"), ev(13, "e"), ev(14, "f"), ev(16, "g"),
		ev(1, "h"), // late
	}
	flow := runnel.NewDataflow("test_df")
	out := window.FoldWindow("sum", allKey(flow, inp), window.EventClock(evAt, 0),
		window.Sliding(10*time.Second, 5*time.Second, bwAlign),
		func() []string { return nil }, appendValue, concat)
	late := runneltest.NewSink[runnel.KV[string, window.Late[bwEvent]]]()
	op.Output("late", out.Late, late)
	want := []unkeyed[[]string]{
		{-1, []string{"a", "b"}},
		{0, []string{"a", "b", "c"}},
		{1, []string{"c", "d", "e", "f"}},
		{2, []string{"d", "e", "f", "g"}},
		{3, []string{"g"}},
	}
	if diff := cmp.Diff(want, runOne(t, flow, keyRm(flow, out.Down))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var lateIDs []int64
	for _, l := range late.Items() {
		lateIDs = append(lateIDs, l.Value.ID)
	}
	if diff := cmp.Diff([]int64{-1, 0}, lateIDs); diff != "" {
		t.Errorf("late window ids (-want +got):\n%s", diff)
	}
}

// test_fold_window_benchmark's expectation (not its timing): 100,000
// one-second events in one-minute tumbling windows make windows 0..1666.
func TestBytewaxFoldWindowManyWindows(t *testing.T) {
	align := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var inp []time.Time
	for i := range 100_000 {
		inp = append(inp, align.Add(time.Duration(i)*time.Second))
	}
	flow := runnel.NewDataflow("bench")
	s := op.Input("in", flow, runneltest.NewSource(inp, runneltest.BatchSize(10)))
	k := op.KeyOn("key", s, func(time.Time) string { return "ALL" })
	out := window.FoldWindow("fold_window", k, window.EventClock(func(t time.Time) time.Time { return t }, 0),
		window.Tumbling(time.Minute, align),
		func() struct{} { return struct{}{} },
		func(s struct{}, _ time.Time) struct{} { return s },
		func(s, _ struct{}) struct{} { return s })
	got := runOne(t, flow, keyRm(flow, out.Down))
	if len(got) != 1667 {
		t.Fatalf("%d windows, want 1667", len(got))
	}
	for i, g := range got {
		if g.ID != int64(i) {
			t.Fatalf("window %d has id %d", i, g.ID)
		}
	}
}

type sideEvent struct {
	At    time.Time
	Value int
}

func sev(sec, v int) sideEvent {
	return sideEvent{time.Date(2024, 1, 1, 0, 0, sec, 0, time.UTC), v}
}

type pair struct{ L, R *int }

func (p pair) String() string {
	f := func(x *int) string {
		if x == nil {
			return "None"
		}
		return fmt.Sprint(*x)
	}
	return "(" + f(p.L) + ", " + f(p.R) + ")"
}

// joinWindowFlow is Bytewax's _build_join_window_dataflow: session windows
// with a 10s gap, an event clock that waits forever, key "ALL".
func joinWindowFlow(t *testing.T, left, right []sideEvent, opts ...window.Option) []string {
	t.Helper()
	flow := runnel.NewDataflow("test_df")
	l := op.KeyOn("key_l", op.Input("inp_l", flow, runneltest.NewSource(left)), func(sideEvent) string { return "ALL" })
	r := op.KeyOn("key_r", op.Input("inp_r", flow, runneltest.NewSource(right)), func(sideEvent) string { return "ALL" })
	clock := window.EventClock(func(e window.Either[sideEvent, sideEvent]) time.Time {
		if e.IsRight {
			return e.Right.At
		}
		return e.Left.At
	}, forever)
	out := window.JoinWindow("join", l, r, clock, window.Session(10*time.Second), opts...)
	rows := op.Map("clean", op.KeyRm("unkey", out.Down), func(res window.Result[window.Joined[sideEvent, sideEvent]]) string {
		var p pair
		if res.Value.HasLeft {
			p.L = &res.Value.Left.Value
		}
		if res.Value.HasRight {
			p.R = &res.Value.Right.Value
		}
		return p.String()
	})
	sink := runneltest.NewSink[string]()
	op.Output("out", rows, sink)
	return runOne(t, flow, sink)
}

// test_join_window_*: every mode of Bytewax's join_window tests. Window
// joins apply items in timestamp order by default (Bytewax's
// ordered=True), which is what makes first/complete pick the earlier
// right value and running rows come in time order.
func TestBytewaxJoinWindow(t *testing.T) {
	modes := func(ins op.JoinInsert, emit op.JoinEmit) []window.Option {
		return []window.Option{window.JoinModes(op.JoinOpts{Insert: ins, Emit: emit})}
	}
	for _, tc := range []struct {
		name        string
		left, right []sideEvent
		opts        []window.Option
		want        []string
	}{
		{"test_join_window_first_complete", []sideEvent{sev(0, 1)}, []sideEvent{sev(2, 3), sev(1, 2)},
			modes(op.JoinInsertFirst, op.JoinEmitComplete), []string{"(1, 2)"}},
		{"test_join_window_last_complete", []sideEvent{sev(0, 1)}, []sideEvent{sev(1, 2)},
			modes(op.JoinInsertLast, op.JoinEmitComplete), []string{"(1, 2)"}},
		{"test_join_window_last_final", []sideEvent{sev(0, 1)}, []sideEvent{sev(1, 2), sev(2, 3)},
			modes(op.JoinInsertLast, op.JoinEmitFinal), []string{"(1, 3)"}},
		{"test_join_window_default_mode_is_last_final", []sideEvent{sev(0, 1)}, []sideEvent{sev(1, 2), sev(2, 3)},
			nil, []string{"(1, 3)"}},
		{"test_join_window_last_running", []sideEvent{sev(0, 1)}, []sideEvent{sev(1, 2), sev(2, 3)},
			modes(op.JoinInsertLast, op.JoinEmitRunning), []string{"(1, None)", "(1, 2)", "(1, 3)"}},
		{"test_join_window_product_final", []sideEvent{sev(0, 1), sev(1, 2)}, []sideEvent{sev(1, 3), sev(2, 4)},
			modes(op.JoinInsertProduct, op.JoinEmitFinal), []string{"(1, 3)", "(1, 4)", "(2, 3)", "(2, 4)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, joinWindowFlow(t, tc.left, tc.right, tc.opts...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func maxMinInput() []userEvent {
	return userEvents("aaaaa", []int{0, 4, 8, 12, 13}, []int{1, 9, 3, 10, 4})
}

// test_max_window and test_min_window (max_window/min_window with by=).
func TestBytewaxMaxMinWindow(t *testing.T) {
	byVal := func(a, b userEvent) int { return a.Val - b.Val }
	for _, tc := range []struct {
		name string
		fn   func(runnel.Stream[runnel.KV[string, userEvent]], window.Clock[userEvent], window.Windower) window.Out[string, userEvent, userEvent]
		want []int // seconds of the chosen events
	}{
		{"test_max_window", func(s runnel.Stream[runnel.KV[string, userEvent]], c window.Clock[userEvent], w window.Windower) window.Out[string, userEvent, userEvent] {
			return window.MaxWindowFunc("add", s, c, w, byVal)
		}, []int{4, 12}},
		{"test_min_window", func(s runnel.Stream[runnel.KV[string, userEvent]], c window.Clock[userEvent], w window.Windower) window.Out[string, userEvent, userEvent] {
			return window.MinWindowFunc("min", s, c, w, byVal)
		}, []int{0, 13}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := runnel.NewDataflow("test_df")
			s := op.KeyOn("key_on_user", op.Input("inp", flow, runneltest.NewSource(maxMinInput())), func(e userEvent) string { return e.User })
			out := tc.fn(s, window.EventClock(userAt, 0), window.Tumbling(10*time.Second, bwAlign))
			sink := runneltest.NewSink[runnel.KV[string, window.Result[userEvent]]]()
			op.Output("out", out.Down, sink)
			var want []runnel.KV[string, window.Result[userEvent]]
			for i, sec := range tc.want {
				for _, e := range maxMinInput() {
					if e.Time.Equal(bwAlign.Add(time.Duration(sec) * time.Second)) {
						want = append(want, runnel.KV[string, window.Result[userEvent]]{Key: "a", Value: window.Result[userEvent]{ID: int64(i), Value: e}})
					}
				}
			}
			if diff := cmp.Diff(want, runOne(t, flow, sink)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// test_reduce_window
func TestBytewaxReduceWindow(t *testing.T) {
	inp := userEvents("aaaaa", []int{0, 4, 8, 12, 13}, []int{1, 1, 1, 1, 1})
	flow := runnel.NewDataflow("test_df")
	s := op.KeyOn("key_on_user", op.Input("inp", flow, runneltest.NewSource(inp)), func(e userEvent) string { return e.User })
	out := window.ReduceWindow("add", s, window.EventClock(userAt, 0), window.Tumbling(10*time.Second, bwAlign),
		func(acc, x userEvent) userEvent { acc.Val += x.Val; return acc })
	vals := op.MapValue("extract_val", out.Down, func(r window.Result[userEvent]) window.Result[int] {
		return window.Result[int]{ID: r.ID, Value: r.Value.Val}
	})
	sink := runneltest.NewSink[runnel.KV[string, window.Result[int]]]()
	op.Output("out", vals, sink)
	want := []runnel.KV[string, window.Result[int]]{
		{Key: "a", Value: window.Result[int]{ID: 0, Value: 3}},
		{Key: "a", Value: window.Result[int]{ID: 1, Value: 2}},
	}
	if diff := cmp.Diff(want, runOne(t, flow, sink)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// test_session_with_system_clock: ten items processed at once fall in one
// session; at the end of input it closes with all of them. (Its id is the
// system time of the first item: see TestBytewaxFoldWindowSession.)
func TestBytewaxSessionWithSystemClock(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	k := op.KeyOn("key", op.Input("input", flow, runneltest.NewSource(ints(10))), func(int) string { return "ALL" })
	before := time.Now()
	out := window.FoldWindow("collect_records", k, window.SystemClock, window.Session(10*time.Second),
		func() []int { return nil }, func(s []int, v int) []int { return append(s, v) },
		func(a, b []int) []int { return append(a, b...) })
	got := runOne(t, flow, keyRm(flow, out.Down))
	if len(got) != 1 || !cmp.Equal(got[0].Value, ints(10)) {
		t.Fatalf("got %v, want one session of 0..9", got)
	}
	if id := got[0].ID; id < before.UnixNano() || id > time.Now().UnixNano() {
		t.Errorf("session id %d is not the time of its first item", id)
	}
}

func ints(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// sessionMetas runs items (seconds after 09:00) through 10s session
// windows that wait forever, and returns each closed session's
// (open, close, merged opens) in seconds.
func sessionMetas(t *testing.T, secs ...int) []string {
	t.Helper()
	base := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	flow := runnel.NewDataflow("test_df")
	k := op.KeyOn("key", op.Input("inp", flow, runneltest.NewSource(secs)), func(int) string { return "ALL" })
	out := window.CountWindow("count", k, window.EventClock(func(kv runnel.KV[string, int]) time.Time {
		return base.Add(time.Duration(kv.Value) * time.Second)
	}, forever), window.Session(10*time.Second), func(kv runnel.KV[string, int]) string { return kv.Key })
	sec := func(t time.Time) int { return int(t.Sub(base) / time.Second) }
	metas := op.Map("meta", op.KeyRm("unkey", out.Meta), func(m window.Meta) string {
		var merged []int
		for _, id := range m.Merged {
			merged = append(merged, sec(time.Unix(0, id)))
		}
		return fmt.Sprintf("[%d, %d] merged %v", sec(m.Open), sec(m.Close), merged)
	})
	sink := runneltest.NewSink[string]()
	op.Output("out", metas, sink)
	return runOne(t, flow, sink)
}

// test_session_windower.py: the session windower's cases (initial session,
// extending forward and backward within and at exactly the gap, merging,
// an item within an existing session, _session_find_merges), observed
// through the Meta stream of a flow. Session ids are opening times here
// (see TestBytewaxFoldWindowSession), so "merged {1}" reads "merged the
// session opened at 20s".
func TestBytewaxSessionWindower(t *testing.T) {
	for _, tc := range []struct {
		name string
		secs []int
		want []string
	}{
		{"test_initial_session", []int{0}, []string{"[0, 0] merged []"}},
		{"test_extend_forward_within_gap", []int{0, 5}, []string{"[0, 5] merged []"}},
		{"test_extend_forward_exact_gap", []int{0, 10}, []string{"[0, 10] merged []"}},
		{"test_extend_backward_within_gap", []int{0, -5}, []string{"[-5, 0] merged []"}},
		{"test_extend_backward_exact_gap", []int{0, -10}, []string{"[-10, 0] merged []"}},
		{"test_extend_merge", []int{0, 20, 10}, []string{"[0, 20] merged [20]"}},
		{"test_within_existing", []int{0, 10, 5}, []string{"[0, 10] merged []"}},
		{"test_find_merges_none", []int{0, 20}, []string{"[0, 0] merged []", "[20, 20] merged []"}},
		{"test_find_merges_no_yes_no", []int{0, 20, 25, 40}, []string{"[0, 0] merged []", "[20, 25] merged []", "[40, 40] merged []"}},
		{"just over the gap", []int{0, 11}, []string{"[0, 0] merged []", "[11, 11] merged []"}},
		{"test_find_merges_multi (late bridges)", []int{0, 20, 40, 10, 30}, []string{"[0, 40] merged [20 40]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, sessionMetas(t, tc.secs...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// watermarkOf runs items (seconds after midnight) through an event clock
// with the given wait, advancing the manual system clock by adv[i] seconds
// before item i, then sends a probe item at the start of time (after
// advancing probeAdv), which is late: its Late record carries the key's
// watermark at that moment.
func watermarkOf(t *testing.T, wait time.Duration, secs []int, adv []int, probeAdv int) (time.Time, bool) {
	t.Helper()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := runneltest.NewClock(base)
	type item struct{ Sec, Adv int }
	var items []item
	for i, s := range secs {
		items = append(items, item{s, adv[i]})
	}
	items = append(items, item{math.MinInt32, probeAdv})
	flow := runnel.NewDataflow("test_df")
	src := op.Input("inp", flow, runneltest.NewSource(items))
	src = op.Inspect("advance", src, func(it item) { clk.Advance(time.Duration(it.Adv) * time.Second) })
	k := op.KeyOn("key", src, func(item) string { return "ALL" })
	out := window.CountWindow("count", k, window.EventClock(func(kv runnel.KV[string, item]) time.Time {
		return base.Add(time.Duration(kv.Value.Sec) * time.Second)
	}, wait), window.Tumbling(time.Hour, base), func(kv runnel.KV[string, item]) string { return kv.Key })
	late := runneltest.NewSink[runnel.KV[string, window.Late[runnel.KV[string, item]]]]()
	op.Output("late", out.Late, late)
	cfg := runneltest.Config(1, time.Hour, "")
	if err := runnel.Run(t.Context(), flow, cfg, runnel.WithClock(clk)); err != nil {
		t.Fatal(err)
	}
	got := late.Items()
	if len(got) > 1 {
		t.Fatalf("late items %v, want the probe only", got)
	}
	if len(got) == 0 {
		return time.Time{}, false
	}
	return got[0].Value.Watermark, true
}

// test_event_clock.py: the watermark is the largest item time minus the
// wait, moves forward with system time, never goes back, and a wait of
// "forever" does not overflow.
func TestBytewaxEventClockWatermark(t *testing.T) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	for _, tc := range []struct {
		name string
		wait time.Duration
		secs []int
		adv  []int
		prb  int
		want time.Time
	}{
		{"test_watermark_is_item_timestamp_minus_wait", 5 * time.Second, []int{7}, []int{0}, 0, s(2)},
		{"test_watermark_forwards_by_system_time", 5 * time.Second, []int{7}, []int{0}, 2, s(4)},
		{"test_watermark_advances_in_batch", 5 * time.Second, []int{7, 10}, []int{0, 0}, 0, s(5)},
		{"test_watermark_does_not_reverse_in_batch", 5 * time.Second, []int{7, 3}, []int{0, 0}, 0, s(2)},
		{"test_watermark_does_not_reverse_and_forwards_by_system_time_next_batch", 5 * time.Second, []int{7, 3}, []int{0, 2}, 0, s(4)},
		{"test_watermark_does_not_reverse_advancing_item_is_slower_than_system_time_gap", 5 * time.Second, []int{7, 8}, []int{0, 2}, 0, s(4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, late := watermarkOf(t, tc.wait, tc.secs, tc.adv, tc.prb); !late || !got.Equal(tc.want) {
				t.Errorf("watermark %v (probe late: %v), want %v", got, late, tc.want)
			}
		})
	}
	// test_allows_max_wait_for_system_duration_*: with a wait of forever
	// the watermark stays at the start of time (plus elapsed system time),
	// and nothing overflows: even an item from 1956 is not late.
	t.Run("test_allows_max_wait_for_system_duration", func(t *testing.T) {
		if got, late := watermarkOf(t, forever, []int{7, 10}, []int{0, 2}, 0); late {
			t.Errorf("probe late at watermark %v with an infinite wait", got)
		}
	})
}

// Lateness. Bytewax calls an item late when its time is before the key's
// watermark, whatever its window; Runnel (as Flink) when the watermark
// has passed the end of the item's window (plus AllowedLateness), so an
// item behind the watermark whose window is still open counts. Sessions
// are the same in both (late when before the watermark). Here, with a
// wait of 5s, item 7s moves the watermark to 2s: item 1s is behind it but
// window [0s, 10s) is open, so Runnel counts it where Bytewax would send
// it to the late stream (documented difference).
func TestBytewaxLatenessDifference(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	inp := []bwEvent{ev(7, "a"), ev(1, "b"), ev(12, "c")}
	out := window.CollectWindow("collect", allKey(flow, inp), window.EventClock(evAt, 5*time.Second),
		window.Tumbling(10*time.Second, bwAlign), window.Unordered())
	late := runneltest.NewSink[runnel.KV[string, window.Late[bwEvent]]]()
	op.Output("late", out.Late, late)
	got := runOne(t, flow, keyRm(flow, out.Down))
	want := []unkeyed[[]bwEvent]{{0, []bwEvent{ev(7, "a"), ev(1, "b")}}, {1, []bwEvent{ev(12, "c")}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if l := late.Items(); len(l) != 0 {
		t.Errorf("late %v, want none", l)
	}
}
