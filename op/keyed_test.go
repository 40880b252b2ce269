package op_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/pubapi"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func kvCompare[K runnel.Key, V any](a, b runnel.KV[K, V]) int {
	return strings.Compare(a.String(), b.String())
}

func TestBranchOnWorkers(t *testing.T) {
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[string] {
		s := op.Input("inp", flow, src(300))
		evens, odds := op.Branch("even", s, func(x int) bool { return x%2 == 0 })
		e := op.Map("tag_e", evens, func(x int) string { return fmt.Sprint("e", x) })
		o := op.Map("tag_o", odds, func(x int) string { return fmt.Sprint("o", x) })
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Merge("both", e, o), sink)
		return sink
	})
	if len(one) != 300 {
		t.Fatalf("got %d items, want 300", len(one))
	}
	for _, s := range one {
		var n int
		fmt.Sscan(s[1:], &n)
		if (s[0] == 'e') != (n%2 == 0) {
			t.Fatalf("%s went to the wrong branch", s)
		}
	}
	sameMultiset(t, one, four, strings.Compare)
}

func TestBranchUnusedOutput(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource(ints(10)))
	small, _ := op.Branch("small", s, func(x int) bool { return x < 3 })
	sink := runneltest.NewSink[int]()
	op.Output("out", small, sink)
	if err := runneltest.Run(flow, 2); err != nil {
		t.Fatal(err)
	}
	got := sink.Items()
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("got %v", got)
	}
}

func TestStatelessVariantsOnWorkers(t *testing.T) {
	type kv = runnel.KV[int, string]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, src(400))
		s = op.Redistribute("spread", s)
		// Pairs via a batch function that reuses its buffer.
		pairs := op.FlatMapBatch("pairs", s, func(batch []int, out [][]int) [][]int {
			for _, x := range batch {
				out = append(out, []int{x, x + 1000})
			}
			return out
		})
		flat := op.Flatten("flat", pairs)
		var seen atomic.Int64
		flat = op.InspectDebug("debug", flat, func(_ int, epoch uint64, worker int) {
			if epoch == 0 || worker < 0 || worker > 3 {
				panic(fmt.Sprintf("epoch %d worker %d", epoch, worker))
			}
			seen.Add(1)
		})
		k := op.KeyOn("key", flat, func(x int) int { return x % 9 })
		k = op.FilterValue("no_sevens", k, func(x int) bool { return x%10 != 7 })
		k2 := op.FlatMapValue("digits", k, func(x int) []int { return []int{x, -x} })
		v := op.FilterMapValue("positive", k2, func(x int) (string, bool) { return fmt.Sprint(x), x >= 0 })
		var calls atomic.Int64
		v = op.EnrichCached("enrich", v, func(k int) string {
			calls.Add(1)
			return fmt.Sprint("k", k)
		}, 0, func(c *op.TTLCache[int, string], kv kv) kv {
			return kv2(kv.Key, c.Get(kv.Key)+":"+kv.Value)
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", v, sink)
		return sink
	})
	if len(one) != 721 { // 800 values, minus the 80 ending in 7, plus -0
		t.Fatalf("got %d items, want 721", len(one))
	}
	sameMultiset(t, one, four, kvCompare)
}

func kv2[K runnel.Key, V any](k K, v V) runnel.KV[K, V] { return runnel.KV[K, V]{Key: k, Value: v} }

func TestRaisesNamesStepAndItem(t *testing.T) {
	for _, w := range []int{1, 3} {
		flow := runnel.NewDataflow("f")
		s := op.Input("inp", flow, runneltest.NewSource([]string{"1", "2", "x", "4"}, runneltest.Parts(2)))
		good, bad := op.Branch("parses", s, func(s string) bool { return s != "x" })
		op.Raises("bad_input", op.KeyOn("key", bad, func(string) string { return "k" }))
		op.Output("out", good, runneltest.NewSink[string]())
		err := runneltest.Run(flow, w)
		if err == nil || !strings.Contains(err.Error(), "step f.bad_input") || !strings.Contains(err.Error(), "('k', 'x')") {
			t.Errorf("%d workers: err = %v, want it to name f.bad_input and show ('k', 'x')", w, err)
		}
	}
	// No item, no error.
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2}))
	_, bad := op.Branch("neg", s, func(x int) bool { return x >= 0 })
	op.Raises("bad", bad)
	op.Output("out", s, runneltest.NewSink[int]())
	if err := runneltest.Run(flow, 2); err != nil {
		t.Errorf("err = %v", err)
	}
}

func TestInspectDebugSeesEpochs(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource(ints(40), runneltest.BatchSize(2), runneltest.Pace(time.Millisecond)))
	var maxEpoch atomic.Uint64
	s = op.InspectDebug("dbg", s, func(_ int, e uint64, w int) {
		for {
			m := maxEpoch.Load()
			if e <= m || maxEpoch.CompareAndSwap(m, e) {
				break
			}
		}
	})
	op.Output("out", s, runneltest.NewSink[int]())
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, 2*time.Millisecond, "")); err != nil {
		t.Fatal(err)
	}
	if maxEpoch.Load() < 2 {
		t.Errorf("all items seen in epoch %d; want several epochs", maxEpoch.Load())
	}
}

func TestStatefulFlatMapPerKeyOrder(t *testing.T) {
	type kv = runnel.KV[string, int]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(600), runneltest.BatchSize(11)))
		k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint("k", x%7) })
		out := op.StatefulFlatMap("sum", k, func(sum int, _ bool, x int) (int, bool, []int) {
			sum += x
			if x%3 == 0 {
				return 0, false, nil // discard: start over, emit nothing
			}
			return sum, true, []int{sum, -x}
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", out, sink)
		return sink
	})
	if diff := gocmp.Diff(perKey(one), perKey(four)); diff != "" {
		t.Errorf("per-key output differs (-1 +4):\n%s", diff)
	}
	// k1: 1 -> [1 -1], 8 -> [9 -8], 15 (x%3==0) -> discard, 22 -> [22 -22]
	if got := perKey(one)["k1"][:6]; !slices.Equal(got, []int{1, -1, 9, -8, 22, -22}) {
		t.Errorf("k1 starts %v", got)
	}
}

func TestCollectOnWorkers(t *testing.T) {
	type kv = runnel.KV[int, []int]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(500), runneltest.BatchSize(9)))
		k := op.KeyOn("key", s, func(x int) int { return x % 6 })
		sink := runneltest.NewSink[kv]()
		op.Output("out", op.Collect("collect", k, 0, 7), sink)
		return sink
	})
	if diff := gocmp.Diff(perKey(one), perKey(four)); diff != "" {
		t.Errorf("per-key output differs (-1 +4):\n%s", diff)
	}
	for k, lists := range perKey(one) {
		var all []int
		for i, l := range lists {
			if len(l) != 7 && i != len(lists)-1 {
				t.Errorf("key %d: list %d has %d items", k, i, len(l))
			}
			all = append(all, l...)
		}
		for i, x := range all {
			if x != k+6*i {
				t.Fatalf("key %d: item %d is %d, want %d", k, i, x, k+6*i)
			}
		}
	}
}

func TestCollectTable(t *testing.T) {
	type kv = runnel.KV[string, int]
	it := func(k string, v int) scriptStep[kv] { return item(kv2(k, v)) }
	adv := advance[kv]
	tests := []struct {
		name    string
		timeout time.Duration
		maxSize int
		script  []scriptStep[kv]
		want    map[string][][]int
		order   []string // expected emit order of keys, when defined
	}{
		{"size", 0, 2, []scriptStep[kv]{it("a", 1), it("a", 2), it("a", 3), it("b", 1)},
			map[string][][]int{"a": {{1, 2}, {3}}, "b": {{1}}}, nil},
		{"size one", 0, 1, []scriptStep[kv]{it("a", 1), it("a", 2)},
			map[string][][]int{"a": {{1}, {2}}}, []string{"a", "a"}},
		{"eof", time.Hour, 10, []scriptStep[kv]{it("a", 1), it("b", 1), it("a", 2)},
			map[string][][]int{"a": {{1, 2}}, "b": {{1}}}, nil},
		{"timeout", 10 * time.Second, 10, []scriptStep[kv]{it("a", 1), adv(5 * time.Second), it("a", 2), adv(11 * time.Second), it("a", 3)},
			map[string][][]int{"a": {{1, 2}, {3}}}, nil},
		// An inactivity timeout: every value moves the deadline, so values
		// less than the timeout apart stay in one slice.
		{"timeout restarts at each value", 10 * time.Second, 10, []scriptStep[kv]{it("a", 1), adv(9 * time.Second), it("a", 2), adv(9 * time.Second), it("a", 3)},
			map[string][][]int{"a": {{1, 2, 3}}}, nil},
		{"timeout not reached", 10 * time.Second, 10, []scriptStep[kv]{it("a", 1), adv(9 * time.Second), it("a", 2)},
			map[string][][]int{"a": {{1, 2}}}, nil},
		{"timeout per key", 10 * time.Second, 10, []scriptStep[kv]{it("a", 1), adv(5 * time.Second), it("b", 1), adv(6 * time.Second), it("b", 2), adv(11 * time.Second), it("a", 2)},
			map[string][][]int{"a": {{1}, {2}}, "b": {{1, 2}}}, []string{"a", "b", "a"}},
		{"size before timeout", 10 * time.Second, 2, []scriptStep[kv]{it("a", 1), it("a", 2), adv(20 * time.Second), it("a", 3)},
			map[string][][]int{"a": {{1, 2}, {3}}}, []string{"a", "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newManualClock()
			flow := runnel.NewDataflow("f")
			s := op.Input("inp", flow, runnel.DynamicInput[kv](&scriptSource[kv]{clock: clock, script: tc.script}))
			sink := runneltest.NewSink[runnel.KV[string, []int]]()
			op.Output("out", op.Collect("collect", s, tc.timeout, tc.maxSize), sink)
			err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tc.want, perKey(sink.Items())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tc.order != nil {
				var keys []string
				for _, kv := range sink.Items() {
					keys = append(keys, kv.Key)
				}
				if !slices.Equal(keys, tc.order) {
					t.Errorf("emit order %v, want %v", keys, tc.order)
				}
			}
		})
	}
}

func TestCollectBadSize(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{kv2("a", 1)}))
	op.Output("out", op.Collect("c", s, 0, 0), runneltest.NewSink[runnel.KV[string, []int]]())
	if err := runneltest.Run(flow, 1); err == nil || !strings.Contains(err.Error(), "f.c: maxSize 0") {
		t.Errorf("err = %v", err)
	}
}

func TestFinalsOnWorkers(t *testing.T) {
	type res = map[string]string
	run := func(w int) res {
		flow := runnel.NewDataflow("f")
		s := op.Input("inp", flow, runneltest.NewSource(ints(1000), runneltest.BatchSize(17)))
		k := op.KeyOn("key", s, func(x int) int { return x % 13 })
		str := func(name string, up runnel.Stream[runnel.KV[int, int]]) runnel.Stream[string] {
			return op.Map(name+"_str", up, func(kv runnel.KV[int, int]) string { return name + kv.String() })
		}
		fold := op.FoldFinal("fold", k, func() []int { return nil }, func(acc []int, x int) []int { return append(acc, x) })
		folds := op.Map("fold_str", fold, func(kv runnel.KV[int, []int]) string { return "fold" + kv.String() })
		sum := op.ReduceFinal("sum", k, func(a, b int) int { return a + b })
		count := op.CountFinal("count", s, func(x int) string { return fmt.Sprint(x % 5) })
		counts := op.Map("count_str", count, func(kv runnel.KV[string, int]) string { return "count" + kv.String() })
		mx := op.MaxFinal("max", k)
		mn := op.MinFinal("min", k)
		sink := runneltest.NewSink[string]()
		op.Output("out", op.Merge("all", folds, counts, str("sum", sum), str("max", mx), str("min", mn)), sink)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(w, 3*time.Millisecond, "")); err != nil {
			t.Fatalf("%d workers: %v", w, err)
		}
		out := res{}
		for _, s := range sink.Items() {
			if _, dup := out[s]; dup {
				t.Errorf("%d workers: %s emitted twice", w, s)
			}
			out[s] = ""
		}
		return out
	}
	one, four := run(1), run(4)
	if diff := gocmp.Diff(one, four); diff != "" {
		t.Errorf("1 and 4 workers differ (-1 +4):\n%s", diff)
	}
	for _, want := range []string{"sum(3, 38269)", "max(3, 991)", "min(3, 3)", "count('0', 200)"} {
		if _, ok := one[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	if len(one) != 13*4+5 {
		t.Errorf("got %d results, want %d", len(one), 13*4+5)
	}
}

func TestMaxMinTiesKeepEarlier(t *testing.T) {
	type rec struct {
		N   int
		Tag string
	}
	in := []runnel.KV[string, rec]{
		kv2("a", rec{1, "low"}), kv2("a", rec{3, "first max"}), kv2("a", rec{0, "first min"}),
		kv2("a", rec{3, "second max"}), kv2("a", rec{0, "second min"}), kv2("a", rec{2, "mid"}),
		kv2("b", rec{5, "only"}),
	}
	byN := func(x, y rec) int { return cmp.Compare(x.N, y.N) }
	for _, batch := range []int{1, 3, 100} {
		for _, w := range []int{1, 4} {
			flow := runnel.NewDataflow("f")
			s := op.Input("inp", flow, runneltest.NewSource(in, runneltest.BatchSize(batch)))
			mx := op.MaxFinalFunc("max", s, byN)
			mn := op.MinFinalFunc("min", s, byN)
			sink := runneltest.NewSink[runnel.KV[string, rec]]()
			op.Output("out", op.Merge("m", mx, mn), sink)
			if err := runneltest.Run(flow, w); err != nil {
				t.Fatal(err)
			}
			got := perKey(sink.Items())
			tags := []string{got["a"][0].Tag, got["a"][1].Tag}
			slices.Sort(tags)
			if !slices.Equal(tags, []string{"first max", "first min"}) || len(got["b"]) != 2 || got["b"][0].Tag != "only" {
				t.Errorf("batch %d, %d workers: got %v", batch, w, got)
			}
		}
	}
}

func TestCompositeIDs(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{kv2("a", 1)}))
	r := op.ReduceFinal("a.b", s, func(a, b int) int { return a + b })
	op.Output("out", r, runneltest.NewSink[runnel.KV[string, int]]())
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "f.a.b") || !strings.Contains(err.Error(), "contains '.'") {
		t.Errorf("err = %v", err)
	}

	flow = runnel.NewDataflow("f")
	s = op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{kv2("a", 1)}))
	r = op.ReduceFinal("sum", s, func(a, b int) int { return a + b })
	op.Output("out", r, runneltest.NewSink[runnel.KV[string, int]]())
	var ids []string
	for _, st := range pubapi.Flow(flow).Steps() {
		ids = append(ids, st.ID)
	}
	if want := []string{"f.inp", "f.sum.combine", "f.sum.reduce", "f.out"}; !slices.Equal(ids, want) {
		t.Errorf("step ids %v, want %v", ids, want)
	}

	// A composite's own id is taken like any step's.
	op.Map("sum", r, func(kv runnel.KV[string, int]) int { return kv.Value })
	if err := flow.Err(); err == nil || !strings.Contains(err.Error(), "f.sum: the id is used twice") {
		t.Errorf("err = %v, want the reused composite id reported", err)
	}
}

func TestEnrichCachedTTL(t *testing.T) {
	clock := newManualClock()
	type kv = runnel.KV[string, string]
	script := []scriptStep[string]{
		item("a"), item("a"), advance[string](5 * time.Second), item("a"), item("b"),
		advance[string](6 * time.Second), item("a"), item("b"),
	}
	version := map[string]int{}
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runnel.DynamicInput[string](&scriptSource[string]{clock: clock, script: script}))
	e := op.EnrichCached("enrich", s, func(k string) int {
		version[k]++ // one worker: no race
		return version[k]
	}, 10*time.Second, func(c *op.TTLCache[string, int], x string) kv {
		return kv2(x, fmt.Sprint(c.Get(x)))
	})
	sink := runneltest.NewSink[kv]()
	op.Output("out", e, sink)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""), runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	// a fetched at 0s, still fresh at 5s, stale at 11s; b fetched at 5s,
	// fresh at 11s.
	want := map[string][]string{"a": {"1", "1", "1", "2"}, "b": {"1", "1"}}
	if diff := gocmp.Diff(want, perKey(sink.Items())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
