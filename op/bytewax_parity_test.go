package op_test

// The cases of Bytewax's own operator tests (pytests/operators/*.py), run
// on Runnel with the same inputs and expected outputs; each test names the
// Bytewax test it mirrors. Bytewax's run_main is one worker: so is
// runOne. Bytewax tests that check a run-time type error (a key that is not
// a str, a branch predicate that is not a bool, a stateful_map mapper that
// does not return a 2-tuple, flatten of a non-iterable) have no Runnel
// equivalent: those programs do not compile in Go.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// runOne runs flow on one worker with one long epoch (run_main) and returns
// what sink got.
func runOne[T any](t *testing.T, flow *runnel.Dataflow, sink *runneltest.Sink[T]) []T {
	t.Helper()
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	return sink.Items()
}

func output[T any](s runnel.Stream[T]) *runneltest.Sink[T] {
	sink := runneltest.NewSink[T]()
	op.Output("out", s, sink)
	return sink
}

func input[T any](flow *runnel.Dataflow, items []T, opts ...runneltest.SourceOpt) runnel.Stream[T] {
	return op.Input("inp", flow, runneltest.NewSource(items, opts...))
}

func all[X any](s runnel.Stream[X]) runnel.Stream[runnel.KV[string, X]] {
	return op.KeyOn("key", s, func(X) string { return "ALL" })
}

func kv[V any](k string, v V) runnel.KV[string, V] { return runnel.KV[string, V]{Key: k, Value: v} }

func check[T any](t *testing.T, want, got []T) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func isOdd(x int) bool { return x%2 != 0 }

func makeOdd(x int) (int, bool) { return x + 1, x%2 == 0 }

// test_map, test_filter, test_filter_map, test_flat_map,
// test_flat_map_iterable, test_flat_map_batch, test_flatten, test_key_on,
// test_map_value, test_filter_value, test_filter_map_value.
func TestBytewaxStateless(t *testing.T) {
	t.Run("test_map", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.Map("add_one", input(flow, []int{0, 1, 2}), func(x int) int { return x + 1 }))
		check(t, []int{1, 2, 3}, runOne(t, flow, sink))
	})
	t.Run("test_filter", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.Filter("is_odd", input(flow, []int{1, 2, 3}), isOdd))
		check(t, []int{1, 3}, runOne(t, flow, sink))
	})
	t.Run("test_filter_map", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.FilterMap("make_odd", input(flow, []int{0, 1, 2, 3, 4, 5}), makeOdd))
		check(t, []int{1, 3, 5}, runOne(t, flow, sink))
	})
	t.Run("test_flat_map", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.FlatMap("split_into_words", input(flow, []string{"split this"}), strings.Fields))
		check(t, []string{"split", "this"}, runOne(t, flow, sink))
	})
	t.Run("test_flat_map_iterable", func(t *testing.T) {
		type valCount struct {
			Val   string
			Count int
		}
		flow := runnel.NewDataflow("test_df")
		repeat := func(vc valCount) iter.Seq[string] {
			return func(yield func(string) bool) {
				for range vc.Count {
					if !yield(vc.Val) {
						return
					}
				}
			}
		}
		sink := output(op.FlatMapSeq("repeat", input(flow, []valCount{{"a", 2}, {"b", 4}}), repeat))
		check(t, []string{"a", "a", "b", "b", "b", "b"}, runOne(t, flow, sink))
	})
	t.Run("test_flat_map_batch", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		var batches []int
		split := func(sentences []string, out []string) []string {
			batches = append(batches, len(sentences))
			for _, s := range sentences {
				out = append(out, strings.Fields(s)...)
			}
			return out
		}
		sink := output(op.FlatMapBatch("split_into_words", input(flow, []string{"split this", "and this"}, runneltest.BatchSize(10)), split))
		check(t, []string{"split", "this", "and", "this"}, runOne(t, flow, sink))
		check(t, []int{2}, batches) // batch_size=10: one batch of both sentences
	})
	t.Run("test_flat_map_batch_benchmark", func(t *testing.T) {
		// The benchmark's expectation: 100,000 items in batches of 10 come
		// out whole and in order.
		flow := runnel.NewDataflow("flat_map_batch")
		s := op.Input("inp", flow, runneltest.NewSource(ints(100_000), runneltest.BatchSize(10)))
		sink := output(op.FlatMapBatch("flat_map", s, func(xs, out []int) []int { return append(out, xs...) }))
		check(t, ints(100_000), runOne(t, flow, sink))
	})
	t.Run("test_flatten", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.Flatten("flatten", input(flow, [][]int{{1, 2}, {}, {3}})))
		check(t, []int{1, 2, 3}, runOne(t, flow, sink))
	})
	t.Run("test_key_on", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.KeyOn("key", input(flow, []int{1, 2, 3}), func(x int) string { return fmt.Sprint(x) }))
		check(t, []runnel.KV[string, int]{kv("1", 1), kv("2", 2), kv("3", 3)}, runOne(t, flow, sink))
	})
	t.Run("test_map_value", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.MapValue("add_one", all(input(flow, []int{0, 1, 2})), func(x int) int { return x + 1 }))
		check(t, []runnel.KV[string, int]{kv("ALL", 1), kv("ALL", 2), kv("ALL", 3)}, runOne(t, flow, sink))
	})
	t.Run("test_filter_value", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.FilterValue("is_odd", all(input(flow, []int{1, 2, 3})), isOdd))
		check(t, []runnel.KV[string, int]{kv("ALL", 1), kv("ALL", 3)}, runOne(t, flow, sink))
	})
	t.Run("test_filter_map_value", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		inp := []runnel.KV[string, int]{kv("ALL", 0), kv("ALL", 1), kv("ALL", 2), kv("ALL", 3), kv("ALL", 4), kv("ALL", 5)}
		sink := output(op.FilterMapValue("make_odd", input(flow, inp), makeOdd))
		check(t, []runnel.KV[string, int]{kv("ALL", 1), kv("ALL", 3), kv("ALL", 5)}, runOne(t, flow, sink))
	})
	t.Run("key_rm", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.KeyRm("unkey", all(input(flow, []int{1, 2, 3}))))
		check(t, []int{1, 2, 3}, runOne(t, flow, sink))
	})
}

// test_branch (and test_branch_benchmark's expectation: 100,000 items
// split in order).
func TestBytewaxBranch(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	odds, evens := op.Branch("branch", input(flow, []int{1, 2, 3}), isOdd)
	outOdds, outEvens := runneltest.NewSink[int](), runneltest.NewSink[int]()
	op.Output("out_odds", odds, outOdds)
	op.Output("out_evens", evens, outEvens)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	check(t, []int{1, 3}, outOdds.Items())
	check(t, []int{2}, outEvens.Items())

	flow = runnel.NewDataflow("branch")
	ev, od := op.Branch("evens_and_odds", op.Input("inp", flow, runneltest.NewSource(ints(100_000), runneltest.BatchSize(10))),
		func(x int) bool { return x%2 == 0 })
	outOdds, outEvens = runneltest.NewSink[int](), runneltest.NewSink[int]()
	op.Output("out_evens", ev, outEvens)
	op.Output("out_odds", od, outOdds)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	var wantOdds, wantEvens []int
	for i := range 100_000 {
		if i%2 == 0 {
			wantEvens = append(wantEvens, i)
		} else {
			wantOdds = append(wantOdds, i)
		}
	}
	check(t, wantOdds, outOdds.Items())
	check(t, wantEvens, outEvens.Items())
}

// test_merge: Bytewax's one-worker run happens to interleave the three
// inputs item by item ([1, 2, 100, 3, 4, 200, ...]); neither Bytewax nor
// Runnel promises an order between inputs. Runnel keeps each input's
// order, and with one worker reads its inputs in turn, so the same
// interleaving comes out; only the per-input order is a contract.
func TestBytewaxMerge(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	odds := op.Input("inp_odds", flow, runneltest.NewSource([]int{1, 3, 5}))
	evens := op.Input("inp_evens", flow, runneltest.NewSource([]int{2, 4, 6}))
	huge := op.Input("inp_huge", flow, runneltest.NewSource([]int{100, 200, 300}))
	got := runOne(t, flow, output(op.Merge("merge", odds, evens, huge)))
	var o, e, h []int
	for _, x := range got {
		switch {
		case x >= 100:
			h = append(h, x)
		case x%2 == 1:
			o = append(o, x)
		default:
			e = append(e, x)
		}
	}
	check(t, []int{1, 3, 5}, o)
	check(t, []int{2, 4, 6}, e)
	check(t, []int{100, 200, 300}, h)
	if len(got) != 9 {
		t.Errorf("merged %v, want 9 items", got)
	}
}

// test_raises: the first item stops the run, with an error naming the
// step.
func TestBytewaxRaises(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	op.Raises("raises", input(flow, []int{0, 1, 2}))
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "test_df.raises") {
		t.Fatalf("err = %v, want one naming test_df.raises", err)
	}
}

// test_count_final: keys come out in key order at EOF (as in Bytewax's
// expected list).
func TestBytewaxCountFinal(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	sink := output(op.CountFinal("count", input(flow, []string{"a", "a", "b", "c", "b", "a"}), func(x string) string { return x }))
	check(t, []runnel.KV[string, int]{kv("a", 3), kv("b", 2), kv("c", 1)}, runOne(t, flow, sink))
}

// test_fold_final, test_reduce_final
func TestBytewaxFoldReduceFinal(t *testing.T) {
	inp := []int{1, 4, 2, 9, 4, 3}
	t.Run("test_fold_final", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.FoldFinal("keep_max", all(input(flow, inp)), func() int { return 0 }, func(a, b int) int { return max(a, b) }))
		check(t, []runnel.KV[string, int]{kv("ALL", 9)}, runOne(t, flow, sink))
	})
	t.Run("test_reduce_final", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.ReduceFinal("keep_max", all(input(flow, inp)), func(a, b int) int { return max(a, b) }))
		check(t, []runnel.KV[string, int]{kv("ALL", 9)}, runOne(t, flow, sink))
	})
	t.Run("empty input emits nothing", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.FoldFinal("keep_max", all(input(flow, []int{})), func() int { return 0 }, func(a, b int) int { return max(a, b) }))
		check(t, nil, runOne(t, flow, sink))
	})
}

type userVal struct {
	User string
	Val  int
}

// test_max_final, test_min_final (with by=): MaxFinalFunc/MinFinalFunc.
func TestBytewaxMaxMinFinal(t *testing.T) {
	inp := []userVal{{"a", 1}, {"a", 9}, {"a", 3}}
	byVal := func(a, b userVal) int { return a.Val - b.Val }
	keyed := func(flow *runnel.Dataflow) runnel.Stream[runnel.KV[string, userVal]] {
		return op.KeyOn("key_on_user", input(flow, inp), func(e userVal) string { return e.User })
	}
	t.Run("test_max_final", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.MaxFinalFunc("max", keyed(flow), byVal))
		check(t, []runnel.KV[string, userVal]{kv("a", userVal{"a", 9})}, runOne(t, flow, sink))
	})
	t.Run("test_min_final", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(op.MinFinalFunc("min", keyed(flow), byVal))
		check(t, []runnel.KV[string, userVal]{kv("a", userVal{"a", 1})}, runOne(t, flow, sink))
	})
}

// test_collect: batches of max_size, the rest flushed at EOF; the timeout
// is long enough never to fire.
func TestBytewaxCollect(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	sink := output(op.Collect("collect", all(input(flow, ints(10))), 10*time.Second, 3))
	check(t, []runnel.KV[string, []int]{kv("ALL", []int{0, 1, 2}), kv("ALL", []int{3, 4, 5}), kv("ALL", []int{6, 7, 8}), kv("ALL", []int{9})},
		runOne(t, flow, sink))
}

// test_collect_logic_snapshot: the state after one item is the list and a
// deadline of the item's time plus the timeout; observed here as the
// timeout firing exactly then (and not a tick before) on a manual clock.
func TestBytewaxCollectTimeout(t *testing.T) {
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := runneltest.NewClock(start)
	flow := runnel.NewDataflow("test_df")
	src := op.Input("inp", flow, runneltest.NewSource([]int{1, 2}, runneltest.Pace(time.Minute)))
	read := make(chan int, 2)
	src = op.Inspect("read", src, func(x int) { read <- x })
	got := runneltest.NewSink[runnel.KV[string, []int]]()
	seenAt := make(chan time.Time, 4)
	s := op.Collect("collect", all(src), 10*time.Second, 3)
	s = op.Inspect("seen", s, func(runnel.KV[string, []int]) { seenAt <- clk.Now() })
	op.Output("out", s, got)
	done := make(chan error, 1)
	go func() {
		done <- runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clk))
	}()
	// Item 1 comes at start. Its slice is due at start+10s.
	<-read
	clk.Advance(10*time.Second - time.Nanosecond)
	select {
	case at := <-seenAt:
		t.Fatalf("emitted at %v, before the timeout", at)
	case <-time.After(50 * time.Millisecond):
	}
	clk.Advance(time.Nanosecond)
	if at := <-seenAt; !at.Equal(start.Add(10 * time.Second)) {
		t.Errorf("emitted at %v, want start+10s", at)
	}
	// Item 2 comes a minute after item 1, then the end of input (the
	// paced source reports it a minute later again).
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		case <-time.After(10 * time.Millisecond):
			clk.Advance(time.Minute)
		}
	}
	check(t, []runnel.KV[string, []int]{kv("ALL", []int{1}), kv("ALL", []int{2})}, got.Items())
}

// test_enrich_cached, and TTLCache's get/cached/expire cases.
func TestBytewaxEnrichCached(t *testing.T) {
	t.Run("test_enrich_cached", func(t *testing.T) {
		lookup := map[string]int{"a": 1, "b": 2}
		flow := runnel.NewDataflow("test_df")
		s := op.EnrichCached("enrich", input(flow, []string{"a", "b", "a"}),
			func(k string) int { return lookup[k] }, time.Minute,
			func(c *op.TTLCache[string, int], item string) int { return c.Get(item) })
		check(t, []int{1, 2, 1}, runOne(t, flow, output(s)))
	})
	// test_cache_get_cached: the getter pops the value, so a second get
	// must come from the cache; test_cache_get_expire: after the TTL the
	// getter is asked again and sees the new value.
	t.Run("test_cache_get_cached_and_expire", func(t *testing.T) {
		clk := runneltest.NewClock(time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC))
		lookup := map[string]int{"a": 1, "b": 2}
		type step struct {
			Key     string
			Advance time.Duration
			Set     int
		}
		steps := []step{{"a", 0, 0}, {"a", 0, 0}, {"a", 2 * time.Minute, 3}}
		flow := runnel.NewDataflow("test_df")
		src := op.Inspect("time", input(flow, steps), func(s step) {
			clk.Advance(s.Advance)
			if s.Set != 0 {
				lookup[s.Key] = s.Set
			}
		})
		getter := func(k string) int { v := lookup[k]; delete(lookup, k); return v }
		s := op.EnrichCached("enrich", src, getter, time.Minute,
			func(c *op.TTLCache[string, int], s step) int { return c.Get(s.Key) })
		sink := output(s)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clk)); err != nil {
			t.Fatal(err)
		}
		check(t, []int{1, 1, 3}, sink.Items())
	})
}

type stepItem struct {
	Step string
	Item string
}

// test_inspect, test_inspect_chain, test_inspect_debug. Runnel's Inspect
// callback gets the item only (the step id is known where the callback is
// written); InspectDebug reports epoch 1 and worker 0, as Bytewax does.
func TestBytewaxInspect(t *testing.T) {
	t.Run("test_inspect", func(t *testing.T) {
		var seen []string
		flow := runnel.NewDataflow("test_df")
		op.Inspect("insp", input(flow, []string{"a"}), func(x string) { seen = append(seen, x) })
		if err := runneltest.Run(flow, 1); err != nil {
			t.Fatal(err)
		}
		check(t, []string{"a"}, seen)
	})
	t.Run("test_inspect_chain", func(t *testing.T) {
		var seen []string
		flow := runnel.NewDataflow("test_df")
		s := op.Inspect("insp", input(flow, []string{"a"}), func(x string) { seen = append(seen, x) })
		check(t, []string{"a"}, runOne(t, flow, output(s)))
		check(t, []string{"a"}, seen)
	})
	t.Run("test_inspect_debug", func(t *testing.T) {
		type seenAt struct {
			Item   string
			Epoch  uint64
			Worker int
		}
		var seen []seenAt
		flow := runnel.NewDataflow("test_df")
		op.InspectDebug("insp", input(flow, []string{"a"}), func(x string, epoch uint64, worker int) {
			seen = append(seen, seenAt{x, epoch, worker})
		})
		if err := runneltest.Run(flow, 1); err != nil {
			t.Fatal(err)
		}
		check(t, []seenAt{{"a", 1, 0}}, seen)
	})
}

// test_stateful_map: a running mean of the last three values. (Bytewax's
// mapper keeps last_3[:-3] once it holds four; the expected output shows
// that: 2, 3.5, 5, then 2 = mean of [2], then 2.5 = mean of [2, 3].)
func TestBytewaxStatefulMap(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	mean := func(last3 []int, _ bool, v int) ([]int, bool, float64) {
		last3 = append(last3, v)
		if len(last3) > 3 {
			last3 = last3[:len(last3)-3]
		}
		sum := 0
		for _, x := range last3 {
			sum += x
		}
		return last3, true, float64(sum) / float64(len(last3))
	}
	sink := output(op.StatefulMap("running_mean", all(input(flow, []int{2, 5, 8, 1, 3})), mean))
	check(t, []runnel.KV[string, float64]{kv("ALL", 2.0), kv("ALL", 3.5), kv("ALL", 5.0), kv("ALL", 2.0), kv("ALL", 2.5)}, runOne(t, flow, sink))
}

// test_stateful_flat_map, and test_stateful_map_logic_discard_on_none:
// returning keep=false (Bytewax: a None state) discards the key's state,
// so the next item of the key starts with none.
func TestBytewaxStatefulFlatMap(t *testing.T) {
	t.Run("test_stateful_flat_map", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		filterSmaller := func(last int, ok bool, v int) (int, bool, []int) {
			if !ok || v > last {
				return v, true, []int{v}
			}
			return v, true, nil
		}
		sink := output(op.StatefulFlatMap("filter_smaller", all(input(flow, []int{2, 5, 8, 1, 3})), filterSmaller))
		check(t, []runnel.KV[string, int]{kv("ALL", 2), kv("ALL", 5), kv("ALL", 8), kv("ALL", 3)}, runOne(t, flow, sink))
	})
	t.Run("test_stateful_map_logic_discard_on_none", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		// Discard after every item: each item sees no state.
		hadState := func(_ int, ok bool, v int) (int, bool, []bool) { return v, false, []bool{ok} }
		sink := output(op.StatefulFlatMap("discard", all(input(flow, []int{1, 2, 3})), hadState))
		check(t, []runnel.KV[string, bool]{kv("ALL", false), kv("ALL", false), kv("ALL", false)}, runOne(t, flow, sink))
	})
}

// transition is what Bytewax's BaseTestLogic emits: (old state, new state).
type transition struct{ From, To string }

func (tr transition) String() string { return "(" + tr.From + ", " + tr.To + ")" }

// baseLogic is Bytewax's BaseTestLogic: every event emits its state
// transition; keepItem/keepNotify/keepEOF say whether to retain the state
// after it (StatefulLogic.RETAIN) or discard it; notify makes each item ask
// for a notification at once.
func baseLogic(flow *runnel.Dataflow, src runnel.Stream[int], keepItem, keepNotify, keepEOF, notify bool) runnel.Stream[runnel.KV[string, transition]] {
	from := func(s string, ok bool) string {
		if !ok {
			return "NEW"
		}
		return s
	}
	onItem := func(c *op.Context[string, transition], s string, ok bool, _ int) (string, bool) {
		if notify {
			c.NotifyAt(c.Now())
		}
		c.Emit(transition{from(s, ok), "ITEM"})
		return "ITEM", keepItem
	}
	return op.Stateful("stateful", all(src), onItem,
		op.OnNotify(func(c *op.Context[string, transition], s string) (string, bool) {
			c.Emit(transition{s, "NOTIFY"})
			return "NOTIFY", keepNotify
		}),
		op.OnEOF(func(c *op.Context[string, transition], s string) (string, bool) {
			c.Emit(transition{s, "EOF"})
			return "EOF", keepEOF
		}))
}

func transitions(items []runnel.KV[string, transition]) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Value.String())
	}
	return out
}

// test_stateful_on_item_discard/retain, test_stateful_on_notify_discard/
// retain: items 1 and 2, then an abort (FailAt(len): the run fails instead
// of ending, so no on_eof). A notification asked for "now" runs before the
// key's next item, as in Bytewax. The wake-up that item 2 asks for is due
// when the source fails: Bytewax runs it first, Runnel polls the source
// first, so it is lost with the crashed run (nothing after the last
// committed epoch counts; a resumed run replays from there). The same
// flow ending normally (no OnEOF) runs it, as the "ends" cases show.
func TestBytewaxStatefulDiscardRetain(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		keepItem, keepNotify bool
		notify               bool
		want                 []string
	}{
		{"test_stateful_on_item_discard", false, true, false, []string{"(NEW, ITEM)", "(NEW, ITEM)"}},
		{"test_stateful_on_item_retain", true, true, false, []string{"(NEW, ITEM)", "(ITEM, ITEM)"}},
		{"test_stateful_on_notify_discard", true, false, true, []string{"(NEW, ITEM)", "(ITEM, NOTIFY)", "(NEW, ITEM)"}},
		{"test_stateful_on_notify_retain", true, true, true, []string{"(NEW, ITEM)", "(ITEM, NOTIFY)", "(NOTIFY, ITEM)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := runnel.NewDataflow("test_df")
			sink := output(baseLogic(flow, input(flow, []int{1, 2}, runneltest.FailAt(2)), tc.keepItem, tc.keepNotify, true, tc.notify))
			err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
			if !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("err = %v, want the simulated abort", err)
			}
			check(t, tc.want, transitions(sink.Items()))
		})
	}
	for _, tc := range []struct {
		name       string
		keepNotify bool
		want       []string
	}{
		{"test_stateful_on_notify_discard (ends)", false, []string{"(NEW, ITEM)", "(ITEM, NOTIFY)", "(NEW, ITEM)", "(ITEM, NOTIFY)"}},
		{"test_stateful_on_notify_retain (ends)", true, []string{"(NEW, ITEM)", "(ITEM, NOTIFY)", "(NOTIFY, ITEM)", "(ITEM, NOTIFY)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := runnel.NewDataflow("test_df")
			onItem := func(c *op.Context[string, transition], s string, ok bool, _ int) (string, bool) {
				c.NotifyAt(c.Now())
				from := s
				if !ok {
					from = "NEW"
				}
				c.Emit(transition{from, "ITEM"})
				return "ITEM", true
			}
			s := op.Stateful("stateful", all(input(flow, []int{1, 2})), onItem,
				op.OnNotify(func(c *op.Context[string, transition], s string) (string, bool) {
					c.Emit(transition{s, "NOTIFY"})
					return "NOTIFY", tc.keepNotify
				}))
			check(t, tc.want, transitions(runOne(t, flow, output(s))))
		})
	}
}

// epochPerItem runs flow over a recovery directory so that every item is
// in an epoch of its own (Bytewax's epoch_interval=0, which Runnel refuses:
// -s must be positive): a manual clock advances by the snapshot interval
// after each item has passed the step under test (advancing, placed
// there), and at most one epoch may wait for its commit, so every closed
// epoch is committed before the next item is read (and before a FailAt
// fires).
func epochPerItem(t *testing.T, flow *runnel.Dataflow, clk *runneltest.Clock, dir string) error {
	t.Helper()
	return runnel.Run(context.Background(), flow, runneltest.Config(1, time.Second, dir),
		runnel.WithClock(clk), runnel.WithMaxUncommittedEpochs(1))
}

func advancing[T any](clk *runneltest.Clock, s runnel.Stream[T]) runnel.Stream[T] {
	return op.Inspect("advance", s, func(T) { clk.Advance(time.Second) })
}

func recoveryDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := recovery.Init(dir, 1); err != nil {
		t.Fatal(err)
	}
	return dir
}

// test_stateful_on_eof_discard and test_stateful_on_eof_retain: item 1,
// EOF, then (a continuation) item 2. The first run is Bytewax's.
//
// DOCUMENTED DIFFERENCE: Bytewax snapshots the state its on_eof returned,
// so its continuation sees "EOF" (retain) or no state (discard). Runnel
// resumes from the last barrier before the end of input, so the
// continuation sees the state as the items left it, "ITEM", whatever OnEOF
// did (docs/recovery.md, "Continuation"; op.OnEOF).
func TestBytewaxStatefulOnEOF(t *testing.T) {
	for _, tc := range []struct {
		name          string
		keepEOF       bool
		bytewaxSecond string
	}{
		{"test_stateful_on_eof_discard", false, "(NEW, ITEM)"},
		{"test_stateful_on_eof_retain", true, "(EOF, ITEM)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := recoveryDir(t)
			clk := runneltest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
			flow := runnel.NewDataflow("test_df")
			sink := output(advancing(clk, baseLogic(flow, input(flow, []int{1}), true, true, tc.keepEOF, false)))
			if err := epochPerItem(t, flow, clk, dir); err != nil {
				t.Fatal(err)
			}
			check(t, []string{"(NEW, ITEM)", "(ITEM, EOF)"}, transitions(sink.Items()))

			flow = runnel.NewDataflow("test_df")
			sink = output(advancing(clk, baseLogic(flow, input(flow, []int{1, 2}, runneltest.FailAt(2)), true, true, tc.keepEOF, false)))
			if err := epochPerItem(t, flow, clk, dir); !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("err = %v, want the simulated abort", err)
			}
			got := transitions(sink.Items())
			check(t, []string{"(ITEM, ITEM)"}, got)
			if len(got) == 1 && got[0] == tc.bytewaxSecond {
				t.Errorf("Runnel now resumes after OnEOF as Bytewax does (%s): update the docs' difference", got[0])
			}
		})
	}
}

// keepLast is Bytewax's KeepLastLogic: emit (previous, new), keep the
// new value as state, discard it when the value is "DISCARD".
func keepLast(flow *runnel.Dataflow, src runnel.Stream[runnel.KV[string, string]]) runnel.Stream[runnel.KV[string, string]] {
	return op.StatefulMap("stateful", src, func(last string, ok bool, v string) (string, bool, string) {
		prev := "None"
		if ok {
			prev = last
		}
		return v, v != "DISCARD", "(" + prev + ", " + v + ")"
	})
}

func pairs(kvs ...string) []runnel.KV[string, string] {
	var out []runnel.KV[string, string]
	for i := 0; i < len(kvs); i += 2 {
		out = append(out, kv(kvs[i], kvs[i+1]))
	}
	return out
}

// test_stateful_keeps_logic_per_key, test_stateful_snapshots_logic_per_key,
// test_stateful_snapshots_discard_per_key: per-key state, resumed per key
// after an abort, and a key discarded before the abort resumes with none.
func TestBytewaxStatefulPerKey(t *testing.T) {
	t.Run("test_stateful_keeps_logic_per_key", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		sink := output(keepLast(flow, input(flow, pairs("a", "a1", "b", "b1", "a", "a2", "b", "b2"))))
		check(t, pairs("a", "(None, a1)", "b", "(None, b1)", "a", "(a1, a2)", "b", "(b1, b2)"), runOne(t, flow, sink))
	})
	for _, tc := range []struct {
		name          string
		inp           []runnel.KV[string, string]
		abortAt       int
		first, second []runnel.KV[string, string]
	}{
		{"test_stateful_snapshots_logic_per_key", pairs("a", "a1", "b", "b1", "a", "a2", "b", "b2"), 2,
			pairs("a", "(None, a1)", "b", "(None, b1)"),
			pairs("a", "(a1, a2)", "b", "(b1, b2)")},
		{"test_stateful_snapshots_discard_per_key", pairs("a", "a1", "b", "b1", "a", "DISCARD", "b", "b2", "a", "a3", "b", "b3"), 4,
			pairs("a", "(None, a1)", "b", "(None, b1)", "a", "(a1, DISCARD)", "b", "(b1, b2)"),
			pairs("a", "(None, a3)", "b", "(b2, b3)")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := recoveryDir(t)
			clk := runneltest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
			flow := runnel.NewDataflow("test_df")
			sink := output(advancing(clk, keepLast(flow, input(flow, tc.inp, runneltest.FailAt(tc.abortAt)))))
			if err := epochPerItem(t, flow, clk, dir); !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("err = %v, want the simulated abort", err)
			}
			check(t, tc.first, sink.Items())
			flow = runnel.NewDataflow("test_df")
			sink = output(advancing(clk, keepLast(flow, input(flow, tc.inp))))
			if err := epochPerItem(t, flow, clk, dir); err != nil {
				t.Fatal(err)
			}
			check(t, tc.second, sink.Items())
		})
	}
}

// test_join_state_astuples and test_join_*: a join's rows are the product
// of the kept values, first side slowest, missing sides None.
func TestBytewaxJoin(t *testing.T) {
	join := func(t *testing.T, left, right []int, opts op.JoinOpts) []string {
		flow := runnel.NewDataflow("test_df")
		l := op.KeyOn("key_l", op.Input("inp_l", flow, runneltest.NewSource(left)), func(int) string { return "ALL" })
		r := op.KeyOn("key_r", op.Input("inp_r", flow, runneltest.NewSource(right)), func(int) string { return "ALL" })
		rows := op.Map("str", op.KeyRm("unkey", op.Join("join", l, r, opts)), func(j op.Joined2[int, int]) string { return j.String() })
		return runOne(t, flow, output(rows))
	}
	for _, tc := range []struct {
		name        string
		left, right []int
		opts        op.JoinOpts
		want        []string
	}{
		{"test_join_last_complete", []int{1}, []int{2}, op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitComplete}, []string{"(1, 2)"}},
		{"test_join_default_is_last_complete", []int{1}, []int{2}, op.JoinOpts{}, []string{"(1, 2)"}},
		{"test_join_first_final", []int{1}, []int{2, 3}, op.JoinOpts{Insert: op.JoinInsertFirst, Emit: op.JoinEmitFinal}, []string{"(1, 2)"}},
		{"test_join_last_final", []int{1}, []int{2, 3}, op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal}, []string{"(1, 3)"}},
		{"test_join_product_final", []int{1, 2}, []int{3, 4}, op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal}, []string{"(1, 3)", "(1, 4)", "(2, 3)", "(2, 4)"}},
		{"final with a missing side", []int{1}, nil, op.JoinOpts{Emit: op.JoinEmitFinal}, []string{"(1, None)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, tc.want, join(t, tc.left, tc.right, tc.opts))
		})
	}
	// test_join_last_running: Bytewax's one-worker run reads the left item
	// first. Across inputs the order is not defined (in either), so the
	// rows are checked as running rows: each right value paired with the
	// left once the left is there, and the left alone if it came first.
	t.Run("test_join_last_running", func(t *testing.T) {
		got := join(t, []int{1}, []int{2, 3}, op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitRunning})
		want := map[string][]string{
			"(1, None)": {"(1, None)", "(1, 2)", "(1, 3)"},
			"(None, 2)": {"(None, 2)", "(1, 2)", "(1, 3)"},
			"(None, 3)": {"(None, 2)", "(None, 3)", "(1, 3)"},
		}
		if len(got) == 0 || !cmp.Equal(want[got[0]], got) {
			t.Errorf("running rows %v, want one of %v", got, want)
		}
	})
	// test_join_state_astuples: three sides, the middle one empty, two
	// values each on the others; the final emit is their product.
	t.Run("test_join_state_astuples", func(t *testing.T) {
		flow := runnel.NewDataflow("test_df")
		side := func(id string, xs []int) runnel.Stream[runnel.KV[string, int]] {
			return op.KeyOn("key_"+id, op.Input("inp_"+id, flow, runneltest.NewSource(xs)), func(int) string { return "ALL" })
		}
		joined := op.JoinN("join", []runnel.Stream[runnel.KV[string, int]]{side("a", []int{1, 2}), side("b", nil), side("c", []int{3, 4})},
			op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal})
		rows := op.Map("str", op.KeyRm("unkey", joined), func(r []op.Option[int]) string { return fmt.Sprint(r) })
		check(t, []string{"[1 None 3]", "[1 None 4]", "[2 None 3]", "[2 None 4]"}, runOne(t, flow, output(rows)))
	})
}

// A notification due when the input ends runs before the end (before the
// OnEOF hooks), on any number of workers: Bytewax's BaseTestLogic sees the
// NOTIFY of the last item. (Runnel ran the OnEOF hooks at once and never
// the due notification.)
func TestBytewaxDueNotificationBeforeEOF(t *testing.T) {
	for _, workers := range []int{1, 3} {
		flow := runnel.NewDataflow("test_df")
		keyed := op.KeyOn("key", input(flow, ints(300), runneltest.Parts(3), runneltest.BatchSize(7)), func(x int) int { return x % 17 })
		s := op.Stateful("stateful", keyed,
			func(c *op.Context[int, string], n int, _ bool, _ int) (int, bool) {
				c.NotifyAt(c.Now())
				return n + 1, true
			},
			op.OnNotify(func(c *op.Context[int, string], n int) (int, bool) {
				c.Emit(fmt.Sprintf("notify %d", n))
				return n, true
			}),
			op.OnEOF(func(c *op.Context[int, string], n int) (int, bool) {
				c.Emit("eof")
				return n, false
			}))
		sink := output(s)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, "")); err != nil {
			t.Fatal(err)
		}
		last := map[int]string{}
		total := map[int]int{}
		for _, it := range sink.Items() {
			if it.Value == "eof" && !strings.HasPrefix(last[it.Key], "notify") {
				t.Errorf("%d workers: key %d: eof after %q, want after a notify", workers, it.Key, last[it.Key])
			}
			if n := 0; strings.HasPrefix(it.Value, "notify") {
				fmt.Sscanf(it.Value, "notify %d", &n)
				total[it.Key] = n
			}
			last[it.Key] = it.Value
		}
		for k := range 17 {
			want := 300 / 17
			if k < 300%17 {
				want++
			}
			if total[k] != want || last[k] != "eof" {
				t.Errorf("%d workers: key %d: last notify saw %d items, want %d; last output %q", workers, k, total[k], want, last[k])
			}
		}
	}
}

// The notification the last item asks for just before the source fails
// (TestBytewaxStatefulDiscardRetain's abort cases) is not lost with
// recovery. Here the worker waits for each epoch's commit before it reads
// on, and runs the due notification meanwhile, so the failing run shows
// Bytewax's four transitions; the notification ran after the last
// committed barrier, so the resumed run (from the snapshot holding the
// key's wake-up) runs it again before the end of input: at least once.
func TestBytewaxDueNotificationAfterAbortResumes(t *testing.T) {
	dir := recoveryDir(t)
	clk := runneltest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	build := func(opts ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, transition]]) {
		flow := runnel.NewDataflow("test_df")
		src := advancing(clk, input(flow, []int{1, 2}, opts...))
		return flow, output(baseLogic(flow, src, true, true, true, true))
	}
	flow, sink := build(runneltest.FailAt(2))
	if err := epochPerItem(t, flow, clk, dir); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("err = %v, want the simulated abort", err)
	}
	check(t, []string{"(NEW, ITEM)", "(ITEM, NOTIFY)", "(NOTIFY, ITEM)", "(ITEM, NOTIFY)"}, transitions(sink.Items()))
	flow, sink = build()
	if err := epochPerItem(t, flow, clk, dir); err != nil {
		t.Fatal(err)
	}
	check(t, []string{"(ITEM, NOTIFY)", "(NOTIFY, EOF)"}, transitions(sink.Items()))
}
