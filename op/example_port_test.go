package op_test

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// parseInts is an operator of your own, as Bytewax's @operator functions
// are: a function that takes a step id first and its upstream second,
// builds its steps out of other operators and returns their streams (two
// here, where Bytewax would return a dataclass). A step id may not contain
// '.', so it names its inner steps after its own id.
func parseInts(stepID string, up runnel.Stream[string]) (nums runnel.Stream[int], bad runnel.Stream[string]) {
	isInt := func(s string) bool { _, err := strconv.Atoi(s); return err == nil }
	good, bad := op.Branch(stepID+"_check", up, isInt)
	nums = op.Map(stepID+"_atoi", good, func(s string) int { n, _ := strconv.Atoi(s); return n })
	return nums, bad
}

// A custom operator is a plain Go function over operators (see
// parseInts). Its steps appear in the flow's graph under the ids it gave
// them.
func Example_customOperator() {
	flow := runnel.NewDataflow("custom_eg")
	lines := op.Input("lines", flow, runneltest.NewSource([]string{"1", "two", "3"}))
	nums, bad := parseInts("parse", lines)
	op.Inspect("nums", nums, func(n int) { fmt.Println("num", n) })
	op.Inspect("bad", bad, func(s string) { fmt.Println("bad", s) })
	run(flow)
	for _, s := range flow.Graph().Steps {
		fmt.Println(s.Name, s.Kind)
	}
	// Unordered output:
	// num 1
	// bad two
	// num 3
	// lines input
	// parse_check branch
	// parse_atoi map
	// nums inspect
	// bad inspect
}

// A state that holds a slice must not be emitted as it is: the next item
// of the key changes the slice in place (here slices.Delete zeroes its
// tail), and the item already emitted would change with it. Emit a copy.
func ExampleStatefulMap_emitACopy() {
	flow := runnel.NewDataflow("cart_eg")
	type event struct {
		Paid  bool
		Order int
	}
	events := op.Input("events", flow, runneltest.NewSource([]event{{false, 1}, {false, 2}, {true, 1}}))
	keyed := op.KeyOn("user", events, func(event) string { return "alice" })
	unpaid := op.StatefulMap("unpaid", keyed, func(orders []int, _ bool, e event) ([]int, bool, []int) {
		if e.Paid {
			orders = slices.DeleteFunc(orders, func(o int) bool { return o == e.Order })
		} else {
			orders = append(orders, e.Order)
		}
		return orders, true, slices.Clone(orders) // not orders
	})
	sink := runneltest.NewSink[runnel.KV[string, []int]]()
	op.Output("out", unpaid, sink)
	run(flow)
	for _, kv := range sink.Items() {
		fmt.Println(kv.Value)
	}
	// Output:
	// [1]
	// [1 2]
	// [2]
}

// StatefulBatch hands each key's values of a batch to one call, as
// Bytewax's stateful_batch does: here a running total per smoothie, with
// one result per value so that the output does not depend on how the
// input is cut into batches.
func ExampleStatefulBatch() {
	type order struct {
		Smoothie string
		Price    float64
	}
	flow := runnel.NewDataflow("batch_eg")
	orders := op.Input("orders", flow, runneltest.NewSource([]order{
		{"Green Machine", 5.99}, {"Berry Blast", 6.49}, {"Green Machine", 5.99},
	}, runneltest.BatchSize(3)))
	keyed := op.KeyOn("key", orders, func(o order) string { return o.Smoothie })
	totals := op.StatefulBatch("totals", keyed, func(c *op.Context[string, string], total float64, _ bool, batch []order) (float64, bool) {
		for _, o := range batch {
			total += o.Price
			c.Emit(fmt.Sprintf("%.2f", total))
		}
		return total, true
	})
	sink := runneltest.NewSink[runnel.KV[string, string]]()
	op.Output("out", totals, sink)
	runSorted(flow, sink)
	// Output:
	// ('Berry Blast', '6.49')
	// ('Green Machine', '11.98')
	// ('Green Machine', '5.99')
}
