package runnel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/connector/kafka/kafkadev"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// This file ports programs published with Bytewax (its examples/ folder and
// the tutorials of its documentation) to Runnel, as a new user would, and
// checks that each port prints what the Bytewax program prints. The expected
// outputs are derived by hand from Bytewax's documented semantics (and, where
// the tutorial shows its output, agree with it); the inputs are our own
// unless the program's input is a handful of literal events. Each port runs
// on one worker and on three, since a Bytewax user expects -w to change
// nothing but speed.

// portWorkers are the worker counts every port runs with.
var portWorkers = []int{1, 3}

// runPort runs flow with workers and fails the test on an error.
func runPort(t *testing.T, flow *runnel.Dataflow, workers int) {
	t.Helper()
	if err := runneltest.Run(flow, workers); err != nil {
		t.Fatalf("run with %d workers: %v", workers, err)
	}
}

// sortedStrings formats items with %v and sorts them: the order of items
// across keys and workers is not defined in Bytewax either.
func sortedStrings[T any](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprint(it)
	}
	slices.Sort(out)
	return out
}

func checkLines(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", name, got, want)
	}
}

// Bytewax examples/basic.py: branch, map on each branch, merge.
func TestPortBasic(t *testing.T) {
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("basic")
		inp := op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}))
		evens, odds := op.Branch("e_o", inp, func(x int) bool { return x%2 == 0 })
		halved := op.Map("halve", evens, func(x int) int { return x / 2 })
		doubled := op.Map("double", odds, func(x int) int { return x * 2 })
		combo := op.Merge("merge", halved, doubled)
		combo = op.Map("minus_one", combo, func(x int) int { return x - 1 })
		out := op.Map("stringy", combo, func(x int) string { return fmt.Sprintf("<dance>%d</dance>", x) })
		sink := runneltest.NewSink[string]()
		op.Output("out", out, sink)
		runPort(t, flow, w)
		// evens 0,2,4,6,8 halve to 0..4, odds 1,3,5,7,9 double to
		// 2,6,10,14,18; minus one.
		want := []string{"-1", "0", "1", "1", "2", "3", "5", "9", "13", "17"}
		for i, s := range want {
			want[i] = "<dance>" + s + "</dance>"
		}
		slices.Sort(want)
		checkLines(t, fmt.Sprint("workers=", w), sortedStrings(sink.Items()), want)
	}
}

// Bytewax examples/join.py: a join of four streams of one key, emitted
// when every side has a value (Bytewax's default modes).
func TestPortJoin(t *testing.T) {
	type user struct {
		UserID int
		Name   string
		Email  string
		Color  string
		Sound  string
	}
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("join")
		key := func(u user) string { return fmt.Sprint(u.UserID) }
		inp1 := op.Input("inp1", flow, runneltest.NewSource([]user{{UserID: 123, Name: "Bumble"}}))
		name := op.MapValue("name", op.KeyOn("k1", inp1, key), func(u user) string { return u.Name })
		inp2 := op.Input("inp2", flow, runneltest.NewSource([]user{{UserID: 123, Email: "bee@bytewax.com"}}))
		email := op.MapValue("email", op.KeyOn("k2", inp2, key), func(u user) string { return u.Email })
		inp3 := op.Input("inp3", flow, runneltest.NewSource([]user{{UserID: 123, Color: "yellow", Sound: "buzz"}}))
		k3 := op.KeyOn("k3", inp3, key)
		color := op.MapValue("color", k3, func(u user) string { return u.Color })
		sound := op.MapValue("sound", k3, func(u user) string { return u.Sound })
		joined := op.JoinN("j1", []runnel.Stream[runnel.KV[string, string]]{name, email, color, sound}, op.JoinOpts{})
		sink := runneltest.NewSink[runnel.KV[string, []op.Option[string]]]()
		op.Output("out", joined, sink)
		runPort(t, flow, w)
		// Bytewax prints ('123', ('Bumble', 'bee@bytewax.com', 'yellow', 'buzz')).
		checkLines(t, fmt.Sprint("workers=", w), sortedStrings(sink.Items()),
			[]string{"('123', ['Bumble', 'bee@bytewax.com', 'yellow', 'buzz'])"})
	}
}

// clickEvent is one event of the search tutorials: an app opening, a
// search, its results, a click on a result or an app closing.
type clickEvent struct {
	Kind  string // "open", "search", "results", "click", "close"
	User  int
	At    time.Time
	Query string
	Items []string
	Item  string
}

var searchStart = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

func after(s int) time.Time { return searchStart.Add(time.Duration(s) * time.Second) }

// Bytewax examples/search_session.py: user sessions by an event-time
// session window (reduce_window concatenating lists), split into search
// sessions, click-through rate per search.
func TestPortSearchSession(t *testing.T) {
	events := []clickEvent{
		{Kind: "open", User: 1, At: after(0)},
		{Kind: "search", User: 1, Query: "dogs", At: after(1)},
		{Kind: "results", User: 1, Items: []string{"fido", "rover", "buddy"}, At: after(2)},
		{Kind: "click", User: 1, Item: "rover", At: after(3)},
		{Kind: "search", User: 1, Query: "cats", At: after(4)},
		{Kind: "results", User: 1, Items: []string{"fluffy", "burrito", "kathy"}, At: after(5)},
		{Kind: "click", User: 1, Item: "fluffy", At: after(6)},
		{Kind: "open", User: 2, At: after(7)},
		{Kind: "click", User: 1, Item: "kathy", At: after(8)},
		{Kind: "search", User: 2, Query: "fruit", At: after(9)},
		{Kind: "close", User: 1, At: after(10)},
		{Kind: "close", User: 2, At: after(11)},
	}
	isSearch := func(e clickEvent) bool { return e.Kind == "search" }
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("search_session")
		inp := op.Input("inp", flow, runneltest.NewSource(events))
		initial := op.Map("initial_session", inp, func(e clickEvent) []clickEvent { return []clickEvent{e} })
		keyed := op.KeyOn("add_key", initial, func(s []clickEvent) string { return fmt.Sprint(s[0].User) })
		sessions := window.ReduceWindow("sessionizer", keyed,
			window.EventClock(func(s []clickEvent) time.Time { return s[len(s)-1].At }, 10*time.Second),
			window.Session(5*time.Second),
			func(a, b []clickEvent) []clickEvent { return append(a, b...) })
		userSessions := op.Map("remove_key", op.KeyRm("rm", sessions.Down),
			func(r window.Result[[]clickEvent]) []clickEvent { return r.Value })
		searches := op.FlatMap("split_into_searches", userSessions, func(session []clickEvent) [][]clickEvent {
			var out [][]clickEvent
			var cur []clickEvent
			for _, e := range session {
				if isSearch(e) {
					out = append(out, cur)
					cur = nil
				}
				cur = append(cur, e)
			}
			return append(out, cur)
		})
		searches = op.Filter("filter_search", searches, func(s []clickEvent) bool { return slices.ContainsFunc(s, isSearch) })
		ctr := op.Map("calc_ctr", searches, func(s []clickEvent) float64 {
			if slices.ContainsFunc(s, func(e clickEvent) bool { return e.Kind == "click" }) {
				return 1.0
			}
			return 0.0
		})
		sink := runneltest.NewSink[float64]()
		op.Output("out", ctr, sink)
		runPort(t, flow, w)
		// User 1's events are at most 2s apart: one session, holding the
		// searches "dogs" and "cats", each followed by a click. User 2's
		// session has one search, "fruit", without a click.
		got := sink.Items()
		slices.Sort(got)
		if !slices.Equal(got, []float64{0, 1, 1}) {
			t.Errorf("workers=%d: got %v, want [0 1 1]", w, got)
		}
	}
}

// Bytewax's tutorial "Search logs" (docs/tutorials/search-logs): the
// click-through rate of each user's session, from collect_window over
// event-time session windows.
func TestPortSearchLogsCTR(t *testing.T) {
	align := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return align.Add(time.Duration(s) * time.Second) }
	events := []clickEvent{
		{Kind: "search", User: 1, Query: "dogs", At: at(5)},
		{Kind: "results", User: 1, Items: []string{"fido", "rover", "buddy"}, At: at(6)},
		{Kind: "click", User: 1, Item: "rover", At: at(7)},
		{Kind: "search", User: 2, Query: "cats", At: at(5)},
		{Kind: "results", User: 2, Items: []string{"fluffy", "burrito", "kathy"}, At: at(6)},
		{Kind: "click", User: 2, Item: "fluffy", At: at(7)},
		{Kind: "click", User: 2, Item: "kathy", At: at(8)},
	}
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("search_ctr")
		inp := op.Input("inp", flow, runneltest.NewSource(events))
		byUser := op.KeyOn("user_event", inp, func(e clickEvent) string { return fmt.Sprint(e.User) })
		win := window.CollectWindow("windowed_data", byUser,
			window.EventClock(func(e clickEvent) time.Time { return e.At }, time.Second),
			window.Session(10*time.Second))
		ctr := op.MapValue("calc_ctr", win.Down, func(r window.Result[[]clickEvent]) float64 {
			var searches, clicks int
			for _, e := range r.Value {
				switch e.Kind {
				case "search":
					searches++
				case "click":
					clicks++
				}
			}
			if searches == 0 {
				return 0
			}
			return float64(clicks) / float64(searches)
		})
		sink := runneltest.NewSink[runnel.KV[string, float64]]()
		op.Output("out", ctr, sink)
		runPort(t, flow, w)
		// Bytewax prints ('1', 1.0) and ('2', 2.0).
		checkLines(t, fmt.Sprint("workers=", w), sortedStrings(sink.Items()),
			[]string{"('1', 1.0)", "('2', 2.0)"})
	}
}

// Bytewax examples/anomaly_detector.py: two metric inputs merged, a
// rolling mean and standard deviation of each metric's last 10 values in
// stateful_map, and a z-score test against the previous values. The
// random metric source is replaced by fixed values.
func TestPortAnomalyDetector(t *testing.T) {
	type detector struct {
		Last10    []float64
		Mu, Sigma float64
	}
	type labeled struct {
		Value, Mu, Sigma float64
		Anomalous        bool
	}
	metric := func(name string, vs ...float64) []runnel.KV[string, float64] {
		out := make([]runnel.KV[string, float64], len(vs))
		for i, v := range vs {
			out[i] = runnel.KV[string, float64]{Key: name, Value: v}
		}
		return out
	}
	const thresholdZ = 2.0
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("anomaly_detector")
		v := op.Input("inp_v", flow, runneltest.NewSource(metric("v_metric", 10, 12, 10, 12, 30, 11)))
		hz := op.Input("inp_hz", flow, runneltest.NewSource(metric("hz_metric", 0, 0, 5)))
		metrics := op.Merge("merge", v, hz)
		labeledMetrics := op.StatefulMap("detector", metrics, func(s detector, _ bool, value float64) (detector, bool, labeled) {
			// Python's `if self.mu and self.sigma`: zero (or no value
			// yet) means no test.
			anomalous := s.Mu != 0 && s.Sigma != 0 && math.Abs(value-s.Mu)/s.Sigma > thresholdZ
			s.Last10 = append([]float64{value}, s.Last10...)
			if len(s.Last10) > 10 {
				s.Last10 = s.Last10[:10]
			}
			var sum, sq float64
			for _, x := range s.Last10 {
				sum += x
			}
			s.Mu = sum / float64(len(s.Last10))
			for _, x := range s.Last10 {
				sq += (x - s.Mu) * (x - s.Mu)
			}
			s.Sigma = math.Sqrt(sq / float64(len(s.Last10)))
			// Always keep the state, as the Bytewax program does.
			return s, true, labeled{value, s.Mu, s.Sigma, anomalous}
		})
		lines := op.Map("format", labeledMetrics, func(kv runnel.KV[string, labeled]) string {
			l := kv.Value
			return fmt.Sprintf("%s: value = %.1f, mu = %.2f, sigma = %.2f, %s",
				kv.Key, l.Value, l.Mu, l.Sigma, map[bool]string{true: "True", false: "False"}[l.Anomalous])
		})
		sink := runneltest.NewSink[string]()
		op.Output("output", lines, sink)
		runPort(t, flow, w)
		// Worked out by hand; each metric's lines in input order.
		want := map[string][]string{
			"v_metric": {
				"value = 10.0, mu = 10.00, sigma = 0.00, False",
				"value = 12.0, mu = 11.00, sigma = 1.00, False", // sigma was 0: no test
				"value = 10.0, mu = 10.67, sigma = 0.94, False", // z = 1
				"value = 12.0, mu = 11.00, sigma = 1.00, False", // z = 1.41
				"value = 30.0, mu = 14.80, sigma = 7.65, True",  // z = 19
				"value = 11.0, mu = 14.17, sigma = 7.13, False", // z = 0.50
			},
			"hz_metric": {
				"value = 0.0, mu = 0.00, sigma = 0.00, False",
				"value = 0.0, mu = 0.00, sigma = 0.00, False",
				"value = 5.0, mu = 1.67, sigma = 2.36, False", // mu was 0: no test
			},
		}
		got := map[string][]string{}
		for _, line := range sink.Items() {
			name, rest, _ := strings.Cut(line, ": ")
			got[name] = append(got[name], rest)
		}
		for name := range want {
			checkLines(t, fmt.Sprintf("workers=%d %s", w, name), got[name], want[name])
		}
	}
}

// smoothieOrders is a CSV file shaped like the one of Bytewax's tutorial
// "Introducing windowing" (docs/tutorials/introducing-windowing), with our
// own orders. Times are not RFC 3339, as in the tutorial.
const smoothieOrders = `order_id,time,order_requested,ingredients
1,2024-08-29 08:00:00,Green Machine,spinach;banana
2,2024-08-29 08:04:00,Berry Blast,strawberry;honey
3,2024-08-29 08:12:00,Citrus Zing,orange;lemon
4,2024-08-29 08:14:00,Green Machine,spinach;banana
5,2024-08-29 08:29:59,Mocha Madness,coffee;cocoa
6,2024-08-29 08:30:00,Berry Blast,strawberry;honey
7,2024-08-29 08:41:00,Morning Glow,carrot;apple
8,2024-08-29 09:05:00,Green Machine,spinach;banana
9,2024-08-29 09:08:00,Citrus Zing,orange;lemon
10,2024-08-29 09:59:00,Protein Power,peanut butter;banana
`

// Bytewax's tutorial "Introducing windowing": orders counted in tumbling
// and sliding event-time windows (count_window), and grouped into session
// windows (collect_window), read from a CSV file.
func TestPortSmoothieWindows(t *testing.T) {
	type row struct {
		OrderID   int    `csv:"order_id"`
		Time      string `csv:"time"` // "2024-08-29 08:00:00", not RFC 3339
		Requested string `csv:"order_requested"`
	}
	type order struct {
		ID        int
		At        time.Time
		Requested string
	}
	path := filepath.Join(t.TempDir(), "smoothie_order_l.csv")
	if err := os.WriteFile(path, []byte(smoothieOrders), 0o644); err != nil {
		t.Fatal(err)
	}
	alignTo := time.Date(2024, 8, 29, 8, 0, 0, 0, time.UTC)
	hhmm := func(t time.Time) string { return t.Format("15:04") }
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("windowing_operators_examples")
		up := op.Input("orders", flow, file.NewCSVSource[row](path))
		parsed := op.TryMap("parse_order", up, func(r row) (order, error) {
			at, err := time.Parse(time.DateTime, r.Time)
			return order{r.OrderID, at, r.Requested}, err
		})
		clock := window.EventClock(func(o order) time.Time { return o.At }, 0)
		total := func(order) string { return "total_orders" }

		tumbling := window.CountWindow("count_orders", parsed, clock, window.Tumbling(30*time.Minute, alignTo), total)
		tumblingLines := op.Map("format_output", tumbling.Down, func(kv runnel.KV[string, window.Result[int]]) string {
			start := alignTo.Add(time.Duration(kv.Value.ID) * 30 * time.Minute)
			return fmt.Sprintf("Window %d (%s - %s): %d orders", kv.Value.ID, hhmm(start), hhmm(start.Add(30*time.Minute)), kv.Value.Value)
		})
		tumblingSink := runneltest.NewSink[string]()
		op.Output("tumbling_out", tumblingLines, tumblingSink)

		sliding := window.CountWindow("count_orders_sliding", parsed, clock, window.Sliding(time.Hour, 15*time.Minute, alignTo), total)
		slidingLines := op.Map("format_output_sliding", sliding.Down, func(kv runnel.KV[string, window.Result[int]]) string {
			start := alignTo.Add(time.Duration(kv.Value.ID) * 15 * time.Minute)
			return fmt.Sprintf("Window %d (%s - %s): %d orders", kv.Value.ID, hhmm(start), hhmm(start.Add(time.Hour)), kv.Value.Value)
		})
		slidingSink := runneltest.NewSink[string]()
		op.Output("sliding_out", slidingLines, slidingSink)

		keyed := op.KeyOn("key_on", parsed, total)
		sessions := window.CollectWindow("collect_sessions", keyed, clock, window.Session(5*time.Minute))
		sessionSink := runneltest.NewSink[runnel.KV[string, window.Result[[]order]]]()
		op.Output("session_out", sessions.Down, sessionSink)

		runPort(t, flow, w)

		byWindowID := func(lines []string) []string {
			slices.SortFunc(lines, func(a, b string) int {
				var x, y int
				fmt.Sscanf(a, "Window %d", &x)
				fmt.Sscanf(b, "Window %d", &y)
				return x - y
			})
			return lines
		}
		// Window n covers [08:00 + n·30m, 08:30 + n·30m).
		checkLines(t, fmt.Sprint("tumbling, workers=", w), byWindowID(tumblingSink.Items()), []string{
			"Window 0 (08:00 - 08:30): 5 orders",
			"Window 1 (08:30 - 09:00): 2 orders",
			"Window 2 (09:00 - 09:30): 2 orders",
			"Window 3 (09:30 - 10:00): 1 orders",
		})
		// Window n covers [08:00 + n·15m, 09:00 + n·15m): the windows
		// that opened before alignTo have negative ids, as in Bytewax.
		checkLines(t, fmt.Sprint("sliding, workers=", w), byWindowID(slidingSink.Items()), []string{
			"Window -3 (07:15 - 08:15): 4 orders",
			"Window -2 (07:30 - 08:30): 5 orders",
			"Window -1 (07:45 - 08:45): 7 orders",
			"Window 0 (08:00 - 09:00): 7 orders",
			"Window 1 (08:15 - 09:15): 5 orders",
			"Window 2 (08:30 - 09:30): 4 orders",
			"Window 3 (08:45 - 09:45): 2 orders",
			"Window 4 (09:00 - 10:00): 3 orders",
			"Window 5 (09:15 - 10:15): 1 orders",
			"Window 6 (09:30 - 10:30): 1 orders",
			"Window 7 (09:45 - 10:45): 1 orders",
		})
		// Bytewax numbers a key's sessions 0, 1, 2...; Runnel's session
		// id is the time of the item that opened it, so number them in
		// id order.
		results := sessionSink.Items()
		slices.SortFunc(results, func(a, b runnel.KV[string, window.Result[[]order]]) int {
			return int(a.Value.ID - b.Value.ID)
		})
		var sessionLines []string
		for i, kv := range results {
			var ids []string
			first, last := kv.Value.Value[0].At, kv.Value.Value[0].At
			for _, o := range kv.Value.Value {
				ids = append(ids, fmt.Sprint(o.ID))
				if o.At.Before(first) {
					first = o.At
				}
				if o.At.After(last) {
					last = o.At
				}
			}
			sessionLines = append(sessionLines, fmt.Sprintf("Session %d (%s - %s): Order ID [%s]",
				i, hhmm(first), hhmm(last), strings.Join(ids, ", ")))
		}
		checkLines(t, fmt.Sprint("sessions, workers=", w), sessionLines, []string{
			"Session 0 (08:00 - 08:04): Order ID [1, 2]",
			"Session 1 (08:12 - 08:14): Order ID [3, 4]",
			"Session 2 (08:29 - 08:30): Order ID [5, 6]",
			"Session 3 (08:41 - 08:41): Order ID [7]",
			"Session 4 (09:05 - 09:08): Order ID [8, 9]",
			"Session 5 (09:59 - 09:59): Order ID [10]",
		})
	}
}

// Bytewax's tutorial "Recoverable shopping cart"
// (docs/tutorials/recoverable-shopping-cart): JSON lines from a file,
// invalid lines skipped by filter_map, orders and payments joined per user
// in stateful_map. Run with recovery, stopped after a part of the file and
// resumed after the rest was appended: the second run prints only the
// summaries of the new lines, from the state the first run left.
func TestPortShoppingCart(t *testing.T) {
	type event struct {
		UserID  string `json:"user_id"`
		Type    string `json:"type"`
		OrderID int    `json:"order_id"`
	}
	type cart struct {
		Unpaid []int // in order of arrival, like the tutorial's dict
		Paid   []int
	}
	pyList := func(xs []int) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprint(x)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	part1 := `{"user_id": "a", "type": "order", "order_id": 1}
{"user_id": "a", "type": "order", "order_id": 2}
{"user_id": "b", "type": "order", "order_id": 3}
{"user_id": "a", "type": "payment", "order_id": 2}
{"user_id": "b", "type": "order", "order_id": 4}
FAIL HERE
`
	part2 := `{"user_id": "a", "type": "payment", "order_id": 1}
{"user_id": "b", "type": "payment", "order_id": 4}
`
	// Each run pair rescales: the resumed run has another worker count.
	for _, ws := range [][2]int{{1, 3}, {3, 1}} {
		w := ws[0]
		dir := t.TempDir()
		path := filepath.Join(dir, "cart-join.json")
		if err := os.WriteFile(path, []byte(part1), 0o644); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "db")
		if err := recovery.Init(db, 2); err != nil {
			t.Fatal(err)
		}
		run := func(w int) (lines, skipped []string) {
			t.Helper()
			flow := runnel.NewDataflow("shopping-cart-joiner")
			input := op.Input("input", flow, file.NewSource(path))
			skippedSink := runneltest.NewSink[string]()
			events := op.FilterMap("deserialize", input, func(line string) (runnel.KV[string, event], bool) {
				var e event
				if err := json.Unmarshal([]byte(line), &e); err != nil || e.UserID == "" || e.Type == "" {
					return runnel.KV[string, event]{}, false
				}
				return runnel.KV[string, event]{Key: e.UserID, Value: e}, true
			})
			// The tutorial prints "Skipping invalid data: ..." from
			// inside its filter_map; here the invalid lines are a stream.
			invalid := op.Filter("invalid", input, func(line string) bool {
				var e event
				return json.Unmarshal([]byte(line), &e) != nil
			})
			op.Output("skipped", op.Map("skip_msg", invalid, func(l string) string { return "Skipping invalid data: " + l }), skippedSink)
			joined := op.StatefulMap("joiner", events, func(c cart, _ bool, e event) (cart, bool, cart) {
				switch e.Type {
				case "order":
					c.Unpaid = append(c.Unpaid, e.OrderID)
				case "payment":
					if i := slices.Index(c.Unpaid, e.OrderID); i >= 0 {
						c.Unpaid = slices.Delete(c.Unpaid, i, i+1)
						c.Paid = append(c.Paid, e.OrderID)
					}
				}
				// The summary must not share the state's slices: the
				// next item of the user changes them in place.
				return c, true, cart{Unpaid: slices.Clone(c.Unpaid), Paid: slices.Clone(c.Paid)}
			})
			formatted := op.Map("format_output", joined, func(kv runnel.KV[string, cart]) string {
				return fmt.Sprintf("Final summary for user %s: {'paid_order_ids': %s, 'unpaid_order_ids': %s}",
					kv.Key, pyList(kv.Value.Paid), pyList(kv.Value.Unpaid))
			})
			sink := runneltest.NewSink[string]()
			op.Output("output", formatted, sink)
			if err := runnel.Run(context.Background(), flow, runneltest.Config(w, time.Hour, db)); err != nil {
				t.Fatalf("workers=%d: %v", w, err)
			}
			// One user's summaries are in order; users interleave.
			lines = sink.Items()
			slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(a[:24], b[:24]) })
			return lines, skippedSink.Items()
		}
		lines, skipped := run(ws[0])
		checkLines(t, fmt.Sprint("skipped, workers=", w), skipped, []string{"Skipping invalid data: FAIL HERE"})
		checkLines(t, fmt.Sprint("first run, workers=", w), lines, []string{
			"Final summary for user a: {'paid_order_ids': [], 'unpaid_order_ids': [1]}",
			"Final summary for user a: {'paid_order_ids': [], 'unpaid_order_ids': [1, 2]}",
			"Final summary for user a: {'paid_order_ids': [2], 'unpaid_order_ids': [1]}",
			"Final summary for user b: {'paid_order_ids': [], 'unpaid_order_ids': [3]}",
			"Final summary for user b: {'paid_order_ids': [], 'unpaid_order_ids': [3, 4]}",
		})
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(part2); err != nil {
			t.Fatal(err)
		}
		f.Close()
		lines, skipped = run(ws[1])
		checkLines(t, fmt.Sprint("skipped on resume, workers=", ws), skipped, nil)
		checkLines(t, fmt.Sprint("resumed run, workers=", ws), lines, []string{
			"Final summary for user a: {'paid_order_ids': [2, 1], 'unpaid_order_ids': []}",
			"Final summary for user b: {'paid_order_ids': [4], 'unpaid_order_ids': [3]}",
		})
	}
}

// Bytewax examples/event_time_processing.py with the Kafka output of
// examples/simple_kafka_in_and_out.py: sensor readings as JSON from Kafka
// (read to the end, tail=False), keyed by type, collected in 5-second
// event-time tumbling windows (the clock waiting 10 seconds), averaged,
// and written to another topic, which a second flow reads back. A record
// that is not JSON goes to the decode errors instead of stopping the run
// (the Bytewax program would raise in json.loads).
func TestPortKafkaEventTime(t *testing.T) {
	type reading struct {
		Type  string    `json:"type"`
		Value float64   `json:"value"`
		Time  time.Time `json:"time"` // Python's isoformat() is RFC 3339
	}
	broker, err := kafkadev.Start(kafkadev.Options{Topics: map[string]int32{"sensors": 2, "averages": 1, "averages_resumed": 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	var records []kafkadev.Record
	for _, r := range []struct {
		typ   string
		value float64
		at    int
	}{
		{"temp", 20, 0}, {"temp", 22, 2}, {"hum", 50, 3}, {"temp", 24, 6},
		{"hum", 52, 7}, {"temp", 30, 12}, {"hum", 54, 9},
	} {
		at := start.Add(time.Duration(r.at) * time.Second).Format("2006-01-02T15:04:05.000000-07:00")
		records = append(records, kafkadev.Record{
			Key:   []byte(r.typ),
			Value: fmt.Appendf(nil, `{"type": %q, "value": %v, "time": %q}`, r.typ, r.value, at),
		})
	}
	records = append(records, kafkadev.Record{Key: []byte("temp"), Value: []byte("not json")})
	if err := broker.Produce("sensors", records...); err != nil {
		t.Fatal(err)
	}
	brokers := broker.Addrs()

	// build is the ported flow, writing to topic. With crash set, it
	// fails once at the humidity reading of 7s, as a process would die.
	build := func(topic string, crash *atomic.Bool) (*runnel.Dataflow, *runneltest.Sink[kafka.DecodeError]) {
		flow := runnel.NewDataflow("event_time")
		stream := op.Input("inp", flow, kafka.NewSource(brokers, []string{"sensors"}, kafka.Tail(false)))
		parsed, errs := kafka.Decode("parse_value", stream, kafka.Bytes(), kafka.JSON[reading]())
		badSink := runneltest.NewSink[kafka.DecodeError]()
		op.Output("errors", errs, badSink)
		parsed = op.TryMap("crash", parsed, func(r kafka.Record[[]byte, reading]) (kafka.Record[[]byte, reading], error) {
			if r.Value.Type == "hum" && r.Value.Value == 52 && crash.CompareAndSwap(true, false) {
				return r, runneltest.ErrCrash
			}
			return r, nil
		})
		keyed := op.KeyOn("extract_type", parsed, func(r kafka.Record[[]byte, reading]) string { return r.Value.Type })
		values := op.MapValue("value", keyed, func(r kafka.Record[[]byte, reading]) reading { return r.Value })
		windows := window.CollectWindow("window", values,
			window.EventClock(func(r reading) time.Time { return r.Time }, 10*time.Second),
			window.Tumbling(5*time.Second, start))
		lines := op.Map("format_event", windows.Down, func(kv runnel.KV[string, window.Result[[]reading]]) runnel.KV[string, string] {
			rs := kv.Value.Value
			var sum float64
			first, last := rs[0].Time, rs[0].Time
			for _, r := range rs {
				sum += r.Value
				if r.Time.Before(first) {
					first = r.Time
				}
				if r.Time.After(last) {
					last = r.Time
				}
			}
			const py = "2006-01-02 15:04:05-07:00" // Python's str(datetime)
			return runnel.KV[string, string]{Key: kv.Key, Value: fmt.Sprintf("Average %s: %.2f\tNum events: %d\tFrom %s\tto %s",
				kv.Key, sum/float64(len(rs)), len(rs), first.Format(py), last.Format(py))}
		})
		op.Output("out1", kafka.Encode("encode", lines, topic, kafka.String(), kafka.String()),
			kafka.NewSink(brokers, kafka.ExactlyOnce()))
		return flow, badSink
	}
	// readBack reads topic with a second flow (read_committed).
	readBack := func(topic string) []string {
		flow := runnel.NewDataflow("read_back")
		out := op.Input("inp", flow, kafka.NewSource(brokers, []string{topic}, kafka.Tail(false)))
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Map("value", out, func(m kafka.Message) string { return string(m.Value) }), sink)
		runPort(t, flow, 1)
		return sortedStrings(sink.Items())
	}
	want := []string{
		"Average hum: 50.00\tNum events: 1\tFrom 2023-01-01 00:00:03+00:00\tto 2023-01-01 00:00:03+00:00",
		"Average hum: 53.00\tNum events: 2\tFrom 2023-01-01 00:00:07+00:00\tto 2023-01-01 00:00:09+00:00",
		"Average temp: 21.00\tNum events: 2\tFrom 2023-01-01 00:00:00+00:00\tto 2023-01-01 00:00:02+00:00",
		"Average temp: 24.00\tNum events: 1\tFrom 2023-01-01 00:00:06+00:00\tto 2023-01-01 00:00:06+00:00",
		"Average temp: 30.00\tNum events: 1\tFrom 2023-01-01 00:00:12+00:00\tto 2023-01-01 00:00:12+00:00",
	}

	flow, badSink := build("averages", new(atomic.Bool))
	if err := runnel.Run(context.Background(), flow, runneltest.Config(2, 10*time.Millisecond, "")); err != nil {
		t.Fatal(err)
	}
	checkLines(t, "averages", readBack("averages"), want)
	if bad := badSink.Items(); len(bad) != 1 || string(bad[0].Msg.Value) != "not json" {
		t.Errorf("decode errors: %v, want the one record that is not JSON", bad)
	}

	// With recovery: crash on one worker, resume on three. The output
	// topic has every average exactly once.
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 2); err != nil {
		t.Fatal(err)
	}
	crash := new(atomic.Bool)
	crash.Store(true)
	flow, _ = build("averages_resumed", crash)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Millisecond, db)); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("first run: %v, want the simulated crash", err)
	}
	flow, _ = build("averages_resumed", crash)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(3, time.Millisecond, db)); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	checkLines(t, "averages after a crash and a resume", readBack("averages_resumed"), want)
}

// Bytewax's getting-started guide "Collecting and windowing": collect by
// size (the timeout does not fire), then collect_window over event-time
// tumbling windows, printed as StdOutSink prints them.
func TestPortCollectingAndWindowing(t *testing.T) {
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("collect")
		stream := op.Input("input", flow, runneltest.NewSource([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}))
		keyed := op.KeyOn("key", stream, func(int) string { return "ALL" })
		collected := op.Collect("collect", keyed, 10*time.Second, 3)
		sink := runneltest.NewSink[runnel.KV[string, []int]]()
		op.Output("out", collected, sink)
		runPort(t, flow, w)
		// One key: its lists come out in order.
		checkLines(t, fmt.Sprint("collect, workers=", w), sortedStrings(sink.Items()), []string{
			"('ALL', [0, 1, 2])", "('ALL', [3, 4, 5])", "('ALL', [6, 7, 8])", "('ALL', [9])",
		})
	}

	type event struct {
		Time time.Time
		User string
		Val  int
	}
	alignTo := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return alignTo.Add(time.Duration(s) * time.Second) }
	inp := []event{
		{at(0), "a", 1}, {at(4), "a", 1}, {at(5), "b", 1}, {at(8), "a", 1},
		{at(12), "a", 1}, {at(13), "a", 1}, {at(14), "b", 1},
	}
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("windowing")
		stream := op.Input("input", flow, runneltest.NewSource(inp))
		keyed := op.KeyOn("key_on_user", stream, func(e event) string { return e.User })
		clock := window.EventClock(func(e event) time.Time { return e.Time }, 0)
		out := window.CollectWindow("add", keyed, clock, window.Tumbling(10*time.Second, alignTo))
		// Print each item's second instead of Bytewax's dict repr.
		secs := op.MapValue("secs", out.Down, func(r window.Result[[]event]) window.Result[[]int] {
			s := make([]int, len(r.Value))
			for i, e := range r.Value {
				s[i] = int(e.Time.Sub(alignTo) / time.Second)
			}
			return window.Result[[]int]{ID: r.ID, Value: s}
		})
		sink := runneltest.NewSink[runnel.KV[string, window.Result[[]int]]]()
		op.Output("out", secs, sink)
		runPort(t, flow, w)
		checkLines(t, fmt.Sprint("collect_window, workers=", w), sortedStrings(sink.Items()), []string{
			"('a', (0, [0, 4, 8]))", "('a', (1, [12, 13]))", "('b', (0, [5]))", "('b', (1, [14]))",
		})
	}
}

// Bytewax's guide "Dataflow programming": enrich_cached looking icon URLs
// up through a cache, and stateful_map keeping a running mean of each
// user's last three amounts.
func TestPortDataflowProgramming(t *testing.T) {
	type msg struct {
		UserID  string
		IconURL string
		Code    string
	}
	iconToURL := map[string]string{
		"dog_ico":    "http://domain.invalid/static/dog_v1.png",
		"cat_ico":    "http://domain.invalid/static/cat_v2.png",
		"rabbit_ico": "http://domain.invalid/static/rabbit_v1.png",
	}
	for _, w := range portWorkers {
		var mu sync.Mutex
		var queries []string
		flow := runnel.NewDataflow("param_eg")
		inp := op.Input("inp", flow, runneltest.NewSource([]msg{
			{UserID: "1", Code: "dog_ico"}, {UserID: "3", Code: "rabbit_ico"}, {UserID: "2", Code: "dog_ico"},
		}))
		withURLs := op.EnrichCached("with_url", inp, func(code string) string {
			mu.Lock()
			queries = append(queries, code)
			mu.Unlock()
			return iconToURL[code]
		}, 0, func(cache *op.TTLCache[string, string], m msg) msg {
			m.IconURL = cache.Get(m.Code)
			m.Code = ""
			return m
		})
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Map("fmt", withURLs, func(m msg) string { return m.UserID + " " + m.IconURL }), sink)
		runPort(t, flow, w)
		checkLines(t, fmt.Sprint("enrich_cached, workers=", w), sortedStrings(sink.Items()), []string{
			"1 http://domain.invalid/static/dog_v1.png",
			"2 http://domain.invalid/static/dog_v1.png",
			"3 http://domain.invalid/static/rabbit_v1.png",
		})
		// The list source is one partition, read on one worker, whose
		// cache answers the second dog_ico.
		if slices.Sort(queries); !slices.Equal(queries, []string{"dog_ico", "rabbit_ico"}) {
			t.Errorf("workers=%d: getter called for %q, want once per code", w, queries)
		}
	}

	type txn struct {
		UserID    int
		TxnAmount float64
	}
	src := []txn{{1, 100}, {1, 17}, {2, 30}, {2, 5}, {1, 120}, {2, 45}, {1, 99}}
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("stateful_map_eg")
		inp := op.Input("inp", flow, runneltest.NewSource(src))
		keyed := op.KeyOn("key", inp, func(m txn) string { return fmt.Sprint(m.UserID) })
		amounts := op.MapValue("pick_amount", keyed, func(m txn) float64 { return m.TxnAmount })
		means := op.StatefulMap("running_mean", amounts, func(values []float64, _ bool, v float64) ([]float64, bool, float64) {
			values = append(values, v)
			for len(values) > 3 {
				values = values[1:]
			}
			var sum float64
			for _, x := range values {
				sum += x
			}
			return values, true, sum / float64(len(values))
		})
		sink := runneltest.NewSink[runnel.KV[string, float64]]()
		op.Output("out", means, sink)
		runPort(t, flow, w)
		// Each user's means in order, as Bytewax prints them.
		got := map[string][]string{}
		for _, kv := range sink.Items() {
			got[kv.Key] = append(got[kv.Key], fmt.Sprint(kv))
		}
		checkLines(t, fmt.Sprint("running mean 1, workers=", w), got["1"], []string{
			"('1', 100.0)", "('1', 58.5)", "('1', 79.0)", "('1', 78.66666666666667)",
		})
		checkLines(t, fmt.Sprint("running mean 2, workers=", w), got["2"], []string{
			"('2', 30.0)", "('2', 17.5)", "('2', 26.666666666666668)",
		})
	}
}

// Bytewax examples/orderbook.py: a level-2 order book per product in
// stateful_map (a snapshot, then changes), summarised as the best bid and
// ask and the spread. The websocket feed is replaced by fixed messages.
// The Python state is a dict keyed by float price; a Go state map cannot
// have float keys (the run is refused, saying so), so prices are kept in
// integer cents, as a Go programmer would for money anyway.
func TestPortOrderBook(t *testing.T) {
	type feedMsg struct {
		Bids, Asks [][2]string // [price, size]
		Changes    [][3]string // [side, price, size]
	}
	type book struct {
		Bids, Asks map[int64]float64 // price in cents → size
	}
	type summary struct {
		BidPrice, BidSize, AskPrice, AskSize, Spread float64
	}
	cents := func(price string) int64 {
		f, err := strconv.ParseFloat(price, 64)
		if err != nil {
			panic(err)
		}
		return int64(math.Round(f * 100))
	}
	size := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			panic(err)
		}
		return f
	}
	best := func(side map[int64]float64, better func(a, b int64) bool) int64 {
		first, p := true, int64(0)
		for q := range side {
			if first || better(q, p) {
				first, p = false, q
			}
		}
		return p
	}
	feed := []runnel.KV[string, feedMsg]{
		{Key: "BTC-USD", Value: feedMsg{Bids: [][2]string{{"100.00", "1.5"}, {"99.50", "2"}}, Asks: [][2]string{{"100.50", "1"}, {"101.00", "3"}}}},
		{Key: "ETH-USD", Value: feedMsg{Bids: [][2]string{{"20.10", "4"}}, Asks: [][2]string{{"20.30", "5"}}}},
		{Key: "BTC-USD", Value: feedMsg{Changes: [][3]string{{"buy", "100.25", "0.5"}}}},
		{Key: "BTC-USD", Value: feedMsg{Changes: [][3]string{{"sell", "100.50", "0"}}}},
		{Key: "ETH-USD", Value: feedMsg{Changes: [][3]string{{"sell", "20.20", "1"}}}},
		{Key: "BTC-USD", Value: feedMsg{Changes: [][3]string{{"buy", "100.25", "0"}, {"sell", "100.75", "2"}}}},
	}
	for _, w := range portWorkers {
		flow := runnel.NewDataflow("orderbook")
		inp := op.Input("input", flow, runneltest.NewSource(feed))
		stats := op.StatefulMap("orderbook", inp, func(b book, _ bool, m feedMsg) (book, bool, summary) {
			if len(b.Bids) == 0 {
				b.Bids = map[int64]float64{}
				for _, l := range m.Bids {
					b.Bids[cents(l[0])] = size(l[1])
				}
			}
			if len(b.Asks) == 0 {
				b.Asks = map[int64]float64{}
				for _, l := range m.Asks {
					b.Asks[cents(l[0])] = size(l[1])
				}
			}
			for _, c := range m.Changes {
				target := b.Bids
				if c[0] == "sell" {
					target = b.Asks
				}
				if s := size(c[2]); s == 0 {
					delete(target, cents(c[1]))
				} else {
					target[cents(c[1])] = s
				}
			}
			bid := best(b.Bids, func(a, b int64) bool { return a > b })
			ask := best(b.Asks, func(a, b int64) bool { return a < b })
			return b, true, summary{float64(bid) / 100, b.Bids[bid], float64(ask) / 100, b.Asks[ask], float64(ask-bid) / 100}
		})
		sink := runneltest.NewSink[runnel.KV[string, summary]]()
		op.Output("out", stats, sink)
		runPort(t, flow, w)
		got := map[string][]string{}
		for _, kv := range sink.Items() {
			s := kv.Value
			got[kv.Key] = append(got[kv.Key], fmt.Sprintf("(%v, %v, %v, %v, %v)", s.BidPrice, s.BidSize, s.AskPrice, s.AskSize, s.Spread))
		}
		checkLines(t, fmt.Sprint("BTC-USD, workers=", w), got["BTC-USD"], []string{
			"(100, 1.5, 100.5, 1, 0.5)",
			"(100.25, 0.5, 100.5, 1, 0.25)", // a better bid
			"(100.25, 0.5, 101, 3, 0.75)",   // the best ask removed
			"(100, 1.5, 100.75, 2, 0.75)",   // the best bid removed, a better ask
		})
		checkLines(t, fmt.Sprint("ETH-USD, workers=", w), got["ETH-USD"], []string{
			"(20.1, 4, 20.3, 5, 0.2)",
			"(20.1, 4, 20.2, 1, 0.1)",
		})
	}
}
