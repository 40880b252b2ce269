package op_test

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// runSorted runs flow on one worker and prints what sink collected, one
// item per line, sorted (operators that emit at the end of input emit
// their keys in no particular order).
func runSorted[T any](flow *runnel.Dataflow, sink *runneltest.Sink[T]) {
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
		return
	}
	lines := make([]string, 0, len(sink.Items()))
	for _, x := range sink.Items() {
		lines = append(lines, fmt.Sprint(x))
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
}

func run(flow *runnel.Dataflow) {
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
}

func ExampleBranch() {
	flow := runnel.NewDataflow("branch_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{1, 2, 3, 4, 5}))
	evens, odds := op.Branch("even_odd", nums, func(x int) bool { return x%2 == 0 })
	evens = op.Inspect("evens", evens, func(x int) { fmt.Println("evens:", x) })
	odds = op.Inspect("odds", odds, func(x int) { fmt.Println("odds:", x) })
	op.Output("out", op.Merge("all", evens, odds), runneltest.NewSink[int]())
	run(flow)
	// Output:
	// odds: 1
	// evens: 2
	// odds: 3
	// evens: 4
	// odds: 5
}

func ExampleFlatMapBatch() {
	flow := runnel.NewDataflow("flat_map_batch_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{1, 2, 3}, runneltest.BatchSize(2)))
	// One call per batch: here, emit each batch's sum.
	sums := op.FlatMapBatch("batch_sum", nums, func(batch []int, out []int) []int {
		sum := 0
		for _, x := range batch {
			sum += x
		}
		return append(out, sum)
	})
	op.OutputTo("out", sums, stdio.NewSink)
	run(flow)
	// Output:
	// 3
	// 3
}

func ExampleFlatten() {
	flow := runnel.NewDataflow("flatten_eg")
	groups := op.Input("groups", flow, runneltest.NewSource([][]string{{"a", "b"}, {}, {"c"}}))
	op.OutputTo("out", op.Flatten("flat", groups), stdio.NewSink)
	run(flow)
	// Output:
	// a
	// b
	// c
}

func ExampleFlatMapValue() {
	flow := runnel.NewDataflow("flat_map_value_eg")
	lines := op.Input("lines", flow, runneltest.NewSource([]runnel.KV[string, string]{
		{Key: "doc1", Value: "to be or"}, {Key: "doc2", Value: "not"},
	}))
	words := op.FlatMapValue("split", lines, strings.Fields)
	op.OutputTo("out", words, stdio.NewSink)
	run(flow)
	// Output:
	// ('doc1', 'to')
	// ('doc1', 'be')
	// ('doc1', 'or')
	// ('doc2', 'not')
}

func ExampleFilterValue() {
	flow := runnel.NewDataflow("filter_value_eg")
	temps := op.Input("temps", flow, runneltest.NewSource([]runnel.KV[string, float64]{
		{Key: "oven", Value: 180}, {Key: "fridge", Value: 4}, {Key: "oven", Value: 220},
	}))
	hot := op.FilterValue("hot", temps, func(t float64) bool { return t > 100 })
	op.OutputTo("out", hot, stdio.NewSink)
	run(flow)
	// Output:
	// ('oven', 180.0)
	// ('oven', 220.0)
}

func ExampleFilterMapValue() {
	flow := runnel.NewDataflow("filter_map_value_eg")
	raw := op.Input("raw", flow, runneltest.NewSource([]runnel.KV[string, string]{
		{Key: "a", Value: "12"}, {Key: "b", Value: "oops"}, {Key: "c", Value: "7"},
	}))
	nums := op.FilterMapValue("parse", raw, func(s string) (int, bool) {
		var n int
		_, err := fmt.Sscan(s, &n)
		return n, err == nil
	})
	op.OutputTo("out", nums, stdio.NewSink)
	run(flow)
	// Output:
	// ('a', 12)
	// ('c', 7)
}

func ExampleInspectDebug() {
	flow := runnel.NewDataflow("inspect_debug_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}))
	s = op.InspectDebug("help", s, func(x int, epoch uint64, worker int) {
		fmt.Printf("inspect_debug_eg.help W%d @%d: %d\n", worker, epoch, x)
	})
	op.Output("out", s, runneltest.NewSink[int]())
	run(flow)
	// Output:
	// inspect_debug_eg.help W0 @1: 0
	// inspect_debug_eg.help W0 @1: 1
	// inspect_debug_eg.help W0 @1: 2
}

func ExampleRaises() {
	flow := runnel.NewDataflow("raises_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]string{"1", "2", "x"}))
	good, bad := op.Branch("valid", s, func(s string) bool { return s != "x" })
	op.Raises("invalid", bad)
	op.Output("out", good, runneltest.NewSink[string]())
	run(flow)
	// Output:
	// step raises_eg.invalid (worker 0, input raises_eg.inp partition "list" in the batch ending at position 3): item 'x' reached a Raises step
}

func ExampleStatefulFlatMap() {
	flow := runnel.NewDataflow("stateful_flat_map_eg")
	temps := op.Input("temps", flow, runneltest.NewSource([]runnel.KV[string, int]{
		{Key: "oven", Value: 150}, {Key: "oven", Value: 210}, {Key: "oven", Value: 230}, {Key: "oven", Value: 170},
	}))
	// Emit an alert when the temperature crosses 200, either way.
	alerts := op.StatefulFlatMap("cross_200", temps, func(above bool, _ bool, t int) (bool, bool, []string) {
		now := t > 200
		if now == above {
			return now, true, nil
		}
		if now {
			return now, true, []string{fmt.Sprint("above 200: ", t)}
		}
		return now, true, []string{fmt.Sprint("back below: ", t)}
	})
	op.OutputTo("out", alerts, stdio.NewSink)
	run(flow)
	// Output:
	// ('oven', 'above 200: 210')
	// ('oven', 'back below: 170')
}

func ExampleCollect() {
	flow := runnel.NewDataflow("collect_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3, 4, 5}))
	k := op.KeyOn("key", s, func(x int) string { return "ALL" })
	// Lists of up to 2 items, or what is left at the end of input.
	op.OutputTo("out", op.Collect("pairs", k, time.Minute, 2), stdio.NewSink)
	run(flow)
	// Output:
	// ('ALL', [1, 2])
	// ('ALL', [3, 4])
	// ('ALL', [5])
}

func ExampleFoldFinal() {
	flow := runnel.NewDataflow("fold_final_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]string{"apple", "avocado", "banana"}))
	k := op.KeyOn("first_letter", s, func(w string) string { return w[:1] })
	lens := op.FoldFinal("lengths", k, func() []int { return nil }, func(acc []int, w string) []int {
		return append(acc, len(w))
	})
	sink := runneltest.NewSink[runnel.KV[string, []int]]()
	op.Output("out", lens, sink)
	runSorted(flow, sink)
	// Output:
	// ('a', [5, 7])
	// ('b', [6])
}

func ExampleReduceFinal() {
	flow := runnel.NewDataflow("reduce_final_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{
		{Key: "a", Value: 1}, {Key: "b", Value: 10}, {Key: "a", Value: 2},
	}))
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", op.ReduceFinal("sum", s, func(x, y int) int { return x + y }), sink)
	runSorted(flow, sink)
	// Output:
	// ('a', 3)
	// ('b', 10)
}

func ExampleCountFinal() {
	flow := runnel.NewDataflow("count_final_eg")
	words := op.Input("words", flow, runneltest.NewSource(strings.Fields("to be or not to be")))
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", op.CountFinal("count", words, func(w string) string { return w }), sink)
	runSorted(flow, sink)
	// Output:
	// ('be', 2)
	// ('not', 1)
	// ('or', 1)
	// ('to', 2)
}

func ExampleMaxFinal() {
	flow := runnel.NewDataflow("max_final_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, float64]{
		{Key: "a", Value: 1.5}, {Key: "a", Value: 3}, {Key: "b", Value: -1},
	}))
	sink := runneltest.NewSink[runnel.KV[string, float64]]()
	op.Output("out", op.MaxFinal("max", s), sink)
	runSorted(flow, sink)
	// Output:
	// ('a', 3.0)
	// ('b', -1.0)
}

func ExampleMinFinal() {
	flow := runnel.NewDataflow("min_final_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{
		{Key: "a", Value: 4}, {Key: "a", Value: 2}, {Key: "b", Value: 7},
	}))
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", op.MinFinal("min", s), sink)
	runSorted(flow, sink)
	// Output:
	// ('a', 2)
	// ('b', 7)
}

func ExampleMaxFinalFunc() {
	type bid struct {
		Who   string
		Price int
	}
	flow := runnel.NewDataflow("max_final_func_eg")
	bids := op.Input("bids", flow, runneltest.NewSource([]bid{{"ann", 5}, {"bob", 7}, {"cid", 7}}))
	k := op.KeyOn("lot", bids, func(bid) string { return "lot1" })
	best := op.MaxFinalFunc("best", k, func(a, b bid) int { return a.Price - b.Price })
	op.OutputTo("out", op.MapValue("who", best, func(b bid) string { return b.Who }), stdio.NewSink)
	run(flow)
	// Output:
	// ('lot1', 'bob')
}

func ExampleMinFinalFunc() {
	flow := runnel.NewDataflow("min_final_func_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, string]{
		{Key: "k", Value: "pear"}, {Key: "k", Value: "fig"}, {Key: "k", Value: "kiwi"},
	}))
	shortest := op.MinFinalFunc("shortest", s, func(a, b string) int { return len(a) - len(b) })
	op.OutputTo("out", shortest, stdio.NewSink)
	run(flow)
	// Output:
	// ('k', 'fig')
}

func ExampleJoin() {
	flow := runnel.NewDataflow("join_eg")
	names := op.Input("names", flow, runneltest.NewSource([]runnel.KV[int, string]{
		{Key: 1, Value: "alice"}, {Key: 2, Value: "bob"},
	}))
	emails := op.Input("emails", flow, runneltest.NewSource([]runnel.KV[int, string]{
		{Key: 1, Value: "alice@example.com"}, {Key: 3, Value: "carol@example.com"},
	}))
	joined := op.Join("join", names, emails, op.JoinOpts{Emit: op.JoinEmitFinal})
	sink := runneltest.NewSink[runnel.KV[int, op.Joined2[string, string]]]()
	op.Output("out", joined, sink)
	runSorted(flow, sink)
	// Output:
	// (1, ('alice', 'alice@example.com'))
	// (2, ('bob', None))
	// (3, (None, 'carol@example.com'))
}

func ExampleJoin3() {
	flow := runnel.NewDataflow("join3_eg")
	a := op.Input("a", flow, runneltest.NewSource([]runnel.KV[string, int]{{Key: "k", Value: 1}}))
	b := op.Input("b", flow, runneltest.NewSource([]runnel.KV[string, string]{{Key: "k", Value: "x"}}))
	c := op.Input("c", flow, runneltest.NewSource([]runnel.KV[string, bool]{{Key: "k", Value: true}}))
	op.OutputTo("out", op.Join3("join", a, b, c, op.JoinOpts{}), stdio.NewSink)
	run(flow)
	// Output:
	// ('k', (1, 'x', True))
}

func ExampleJoinN() {
	flow := runnel.NewDataflow("join_n_eg")
	var sides []runnel.Stream[runnel.KV[string, int]]
	for i, id := range []string{"s0", "s1", "s2"} {
		sides = append(sides, op.Input(id, flow, runneltest.NewSource([]runnel.KV[string, int]{{Key: "k", Value: i * 10}})))
	}
	op.OutputTo("out", op.JoinN("join", sides, op.JoinOpts{}), stdio.NewSink)
	run(flow)
	// Output:
	// ('k', [0, 10, 20])
}

func ExampleEnrichCached() {
	flow := runnel.NewDataflow("enrich_cached_eg")
	events := op.Input("events", flow, runneltest.NewSource([]string{"dog_ico", "cat_ico", "dog_ico"}))
	lookups := 0
	iconURL := func(code string) string { // a slow service in real life
		lookups++
		return "https://icons.invalid/" + strings.TrimSuffix(code, "_ico") + ".png"
	}
	urls := op.EnrichCached("icon_url", events, iconURL, time.Hour, func(cache *op.TTLCache[string, string], code string) string {
		return cache.Get(code)
	})
	op.OutputTo("out", urls, stdio.NewSink)
	run(flow)
	fmt.Println("lookups:", lookups)
	// Output:
	// https://icons.invalid/dog.png
	// https://icons.invalid/cat.png
	// https://icons.invalid/dog.png
	// lookups: 2
}
