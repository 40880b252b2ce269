package runnel_test

import (
	"errors"
	"strconv"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// A flow program: Main parses the flags (-w, -r, -s, -b, ...; --help shows
// them with the usage and examples given here), runs the flow and exits
// with its status. (Main exits, so this example is compiled, not run.)
func ExampleMain() {
	flow := runnel.NewDataflow("tutorial")
	nums := op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}))
	keyed := op.KeyOn("key", nums, func(int) string { return "ALL" })
	sums := op.StatefulMap("sum", keyed, func(sum int, _ bool, x int) (int, bool, int) { return sum + x, true, sum + x })
	op.OutputTo("out", sums, stdio.NewSink)
	runnel.Main(flow,
		runnel.WithUsage("", "Prints a running sum of 0 1 2."),
		runnel.WithExample("Run on two workers.", "tutorial -w 2"))
}

// A flow built from the positional arguments left after the flags: here
// the input numbers. An error from the build function exits 2, as a usage
// error. (MainFunc exits, so this example is compiled, not run.)
func ExampleMainFunc() {
	runnel.MainFunc(func(args []string) (*runnel.Dataflow, error) {
		if len(args) == 0 {
			return nil, errors.New("want at least one number")
		}
		var inp []int
		for _, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil {
				return nil, err
			}
			inp = append(inp, n)
		}
		flow := runnel.NewDataflow("sum")
		nums := op.Input("inp", flow, runneltest.NewSource(inp))
		op.OutputTo("out", nums, stdio.NewSink)
		return flow, nil
	}, runnel.WithUsage("N...", "Prints the numbers N."))
}
