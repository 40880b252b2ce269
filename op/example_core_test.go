package op_test

import (
	"fmt"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func ExampleInput() {
	flow := runnel.NewDataflow("input_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{10, 20, 30}))
	op.OutputTo("out", nums, stdio.NewSink)
	run(flow)
	// Output:
	// 10
	// 20
	// 30
}

func ExampleOutput() {
	flow := runnel.NewDataflow("output_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{1, 2}))
	sink := runneltest.NewSink[int]() // collects into a slice, for tests
	op.Output("out", nums, sink)
	run(flow)
	fmt.Println(sink.Items())
	// Output:
	// [1 2]
}

func ExampleMap() {
	flow := runnel.NewDataflow("map_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{0, 1, 2}))
	op.OutputTo("out", op.Map("double", nums, func(x int) int { return x * 2 }), stdio.NewSink)
	run(flow)
	// Output:
	// 0
	// 2
	// 4
}

func ExampleFilter() {
	flow := runnel.NewDataflow("filter_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{0, 1, 2, 3}))
	op.OutputTo("out", op.Filter("odd", nums, func(x int) bool { return x%2 != 0 }), stdio.NewSink)
	run(flow)
	// Output:
	// 1
	// 3
}

func ExampleFlatMap() {
	flow := runnel.NewDataflow("flat_map_eg")
	lines := op.Input("lines", flow, runneltest.NewSource([]string{"hello world"}))
	op.OutputTo("out", op.FlatMap("split", lines, strings.Fields), stdio.NewSink)
	run(flow)
	// Output:
	// hello
	// world
}

func ExampleFilterMap() {
	flow := runnel.NewDataflow("filter_map_eg")
	raw := op.Input("raw", flow, runneltest.NewSource([]string{"a=1", "junk", "b=2"}))
	pairs := op.FilterMap("parse", raw, func(s string) (runnel.KV[string, string], bool) {
		k, v, ok := strings.Cut(s, "=")
		return runnel.KV[string, string]{Key: k, Value: v}, ok
	})
	op.OutputTo("out", pairs, stdio.NewSink)
	run(flow)
	// Output:
	// ('a', '1')
	// ('b', '2')
}

func ExampleInspect() {
	flow := runnel.NewDataflow("inspect_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{0, 1, 2}))
	nums = op.Inspect("help", nums, func(x int) { fmt.Println("inspect_eg.help:", x) })
	op.Output("out", nums, runneltest.NewSink[int]())
	run(flow)
	// Output:
	// inspect_eg.help: 0
	// inspect_eg.help: 1
	// inspect_eg.help: 2
}

func ExampleKeyOn() {
	flow := runnel.NewDataflow("key_on_eg")
	users := op.Input("users", flow, runneltest.NewSource([]string{"alice", "bob"}))
	keyed := op.KeyOn("by_initial", users, func(u string) string { return u[:1] })
	op.OutputTo("out", keyed, stdio.NewSink)
	run(flow)
	// Output:
	// ('a', 'alice')
	// ('b', 'bob')
}

func ExampleKeyRm() {
	flow := runnel.NewDataflow("key_rm_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{{Key: "a", Value: 1}, {Key: "b", Value: 2}}))
	op.OutputTo("out", op.KeyRm("unkey", s), stdio.NewSink)
	run(flow)
	// Output:
	// 1
	// 2
}

func ExampleMapValue() {
	flow := runnel.NewDataflow("map_value_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]runnel.KV[string, int]{{Key: "a", Value: 1}, {Key: "b", Value: 2}}))
	op.OutputTo("out", op.MapValue("tenfold", s, func(x int) int { return x * 10 }), stdio.NewSink)
	run(flow)
	// Output:
	// ('a', 10)
	// ('b', 20)
}

func ExampleMerge() {
	flow := runnel.NewDataflow("merge_eg")
	a := op.Input("a", flow, runneltest.NewSource([]int{1, 2}))
	b := op.Input("b", flow, runneltest.NewSource([]int{3}))
	sink := runneltest.NewSink[int]()
	op.Output("out", op.Merge("both", a, b), sink)
	runSorted(flow, sink) // order between inputs is not defined
	// Output:
	// 1
	// 2
	// 3
}

func ExampleRedistribute() {
	flow := runnel.NewDataflow("redistribute_eg")
	// One partition: worker 0 reads everything; Redistribute spreads the
	// (expensive) next step over all workers.
	s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3, 4}))
	s = op.Redistribute("spread", s)
	sq := op.Map("square", s, func(x int) int { return x * x })
	sink := runneltest.NewSink[int]()
	op.Output("out", sq, sink)
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	fmt.Println(len(sink.Items()), "items")
	// Output:
	// 4 items
}

func ExampleStatefulMap() {
	flow := runnel.NewDataflow("stateful_map_eg")
	nums := op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}))
	keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
	sums := op.StatefulMap("running_sum", keyed, func(sum int, _ bool, x int) (int, bool, int) {
		return sum + x, true, sum + x
	})
	op.OutputTo("out", sums, stdio.NewSink)
	run(flow)
	// Output:
	// ('ALL', 0)
	// ('ALL', 1)
	// ('ALL', 3)
}

func ExampleStateful() {
	flow := runnel.NewDataflow("stateful_eg")
	s := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "a"}))
	k := op.KeyOn("key", s, func(x string) string { return x })
	// Count per key; emit the count at the end of input and discard it.
	counts := op.Stateful("count", k,
		func(c *op.Context[string, int], n int, _ bool, _ string) (int, bool) { return n + 1, true },
		op.OnEOF(func(c *op.Context[string, int], n int) (int, bool) {
			c.Emit(n)
			return 0, false
		}))
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", counts, sink)
	runSorted(flow, sink)
	// Output:
	// ('a', 2)
	// ('b', 1)
}

func ExampleOutputTo() {
	flow := runnel.NewDataflow("output_to_eg")
	words := op.Input("words", flow, runneltest.NewSource([]string{"a", "b", "a"}))
	counts := op.CountFinal("count", words, func(w string) string { return w })
	// stdio.NewSink's item type, runnel.KV[string, int], is inferred.
	op.OutputTo("out", counts, stdio.NewSink)
	run(flow)
	// Output:
	// ('a', 2)
	// ('b', 1)
}
