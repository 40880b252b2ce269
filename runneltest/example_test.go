package runneltest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Test a flow with a list source and a collecting sink, on two workers.
// FailAt makes the source fail once at an item, to test crash and resume.
func Example() {
	build := func(opts ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[int]) {
		flow := runnel.NewDataflow("double")
		nums := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3}, opts...))
		sink := runneltest.NewSink[int]()
		op.Output("out", op.Map("x2", nums, func(x int) int { return 2 * x }), sink)
		return flow, sink
	}
	flow, sink := build()
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	fmt.Println(len(sink.Items()), "items")

	flow, _ = build(runneltest.FailAt(1))
	err := runneltest.Run(flow, 1)
	fmt.Println("crashed:", errors.Is(err, runneltest.ErrCrash))
	// Output:
	// 3 items
	// crashed: true
}

// Config is a run configuration for runnel.Run in tests: here two workers,
// one epoch per 10ms and recovery in a directory made by recovery.Init
// (pass "" for none). runneltest.Run is runnel.Run with Config(workers,
// time.Hour, "").
func ExampleConfig() {
	flow := runnel.NewDataflow("sum")
	nums := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3, 4}))
	total := op.ReduceFinal("total", op.KeyOn("all", nums, func(int) string { return "all" }),
		func(a, b int) int { return a + b })
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", total, sink)
	err := runnel.Run(context.Background(), flow, runneltest.Config(2, 10*time.Millisecond, ""))
	fmt.Println(err, sink.Items())
	// Output:
	// <nil> [('all', 10)]
}
