package runneltest_test

import (
	"errors"
	"fmt"

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
