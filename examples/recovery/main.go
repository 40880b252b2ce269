// Command recovery is the recovery tutorial's dataflow: a running sum of
// its input numbers under the single key "ALL", with state that survives
// restarts.
//
// Positional arguments after the flags are the input numbers (default
// 0 1 2). Run it twice over one recovery directory, the second time with
// more input, and the second run continues the sum instead of starting
// over:
//
//	$ go run ./cmd/runnel recovery init db_dir/ 1
//	$ go run ./examples/recovery -r db_dir/ -s 30 -b 0
//	('ALL', 0)
//	('ALL', 1)
//	('ALL', 3)
//	$ go run ./examples/recovery -r db_dir/ -s 30 -b 0 0 1 2 3 4
//	('ALL', 6)
//	('ALL', 10)
package main

import (
	"fmt"
	"strconv"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func main() {
	runnel.MainFunc(build,
		runnel.WithUsage("[N...]", "Prints a running sum of the numbers N (default 0 1 2) under the key\n"+
			"\"ALL\", with state that survives restarts: the recovery tutorial."),
		runnel.WithExample("Continue the sum of an earlier run with -r db_dir/ over more input.",
			"recovery -r db_dir/ -s 30 -b 0 0 1 2 3 4"),
		runnel.WithExample("Negative numbers go after \"--\".", "recovery -s 0.05 -- -1 -2"))
}

func build(args []string) (*runnel.Dataflow, error) {
	inp := []int{0, 1, 2}
	if len(args) > 0 {
		inp = inp[:0]
		for _, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil {
				return nil, fmt.Errorf("input %q is not an integer", a)
			}
			inp = append(inp, n)
		}
	}
	flow := runnel.NewDataflow("recovery")
	nums := op.Input("inp", flow, runneltest.NewSource(inp))
	// Stateful operators need a keyed stream; the static key "ALL" sends
	// every item to the same state.
	keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
	sums := op.StatefulMap("running_count", keyed, func(sum int, _ bool, x int) (int, bool, int) {
		sum += x
		return sum, true, sum
	})
	op.OutputTo("out", sums, stdio.NewSink)
	return flow, nil
}
