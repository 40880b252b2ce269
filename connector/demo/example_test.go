package demo_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/demo"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Generate orders from a seed: every run with the same seed makes the same
// orders, which is what a resumed run needs to continue the sequence.
func ExampleNewSource() {
	type order struct {
		ID    int64
		Item  string
		Count int
	}
	items := []string{"apple", "pear", "plum"}
	src := demo.NewSource(func(r *rand.Rand, n int64) order {
		return order{ID: n, Item: items[r.IntN(len(items))], Count: 1 + r.IntN(5)}
	}, demo.Seed(1), demo.Count(3))

	flow := runnel.NewDataflow("orders")
	sink := runneltest.NewSink[order]()
	op.Output("out", op.Input("inp", flow, src), sink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	for _, o := range sink.Items() {
		fmt.Printf("%+v\n", o)
	}
	// Output:
	// {ID:0 Item:plum Count:4}
	// {ID:1 Item:plum Count:2}
	// {ID:2 Item:apple Count:2}
}

// Random metrics, one every 0.7 s of the run's clock by default; here
// unpaced (Interval(0)), and ended after five.
func ExampleNewRandomMetricSource() {
	flow := runnel.NewDataflow("metrics")
	metrics := op.Input("inp", flow, demo.NewRandomMetricSource("cpu", demo.Interval(0), demo.Count(5), demo.Seed(3)))
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", metrics, sink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sink.Items())
	// Output:
	// [('cpu', 6) ('cpu', 6) ('cpu', 5) ('cpu', 0) ('cpu', 7)]
}
