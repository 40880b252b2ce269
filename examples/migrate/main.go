// Command migrate is the recovery tutorial's dataflow, version 2: the
// running sum's state changed from an int (the sum) to a struct that also
// counts the items, and a state migration converts what version 1 stored.
// Run the tutorial first (examples/recovery), then this over more input:
// the sum continues from the converted state.
//
//	$ go run ./cmd/runnel recovery init db_dir/ 1
//	$ go run ./examples/recovery -r db_dir/ -s 30 -b 0 0 1 2 3 4
//	…
//	$ go run ./examples/migrate -r db_dir/ -s 30 -b 0 --recovery-plan 0 1 2 3 4 5
//	recovery directory db_dir/: the next run resumes at epoch 3
//	resume   recovery.inp (position int)
//	migrate  recovery.running_count: stored key string, state int, now key string, state main.Running: 1 key converted
//	$ go run ./examples/migrate -r db_dir/ -s 30 -b 0 0 1 2 3 4 5
//	('ALL', Running{Sum: 15, Items: 1})
package main

import (
	"fmt"
	"strconv"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Running is version 2's state: the sum, and how many items were added
// since the state was created or migrated.
type Running struct {
	Sum   int `cbor:"sum"`
	Items int `cbor:"items"`
}

// String prints a Running in the output.
func (r Running) String() string { return fmt.Sprintf("Running{Sum: %d, Items: %d}", r.Sum, r.Items) }

func main() {
	runnel.MainFunc(build,
		runnel.WithUsage("[N...]", "Prints a running sum of the numbers N (default 0 1 2) under the key\n"+
			"\"ALL\", with the count of items added: the recovery tutorial's flow, version 2,\n"+
			"which converts the int state of version 1 (examples/recovery)."),
		runnel.WithExample("Show the migration a run on the tutorial's directory would make.",
			"migrate -r db_dir/ -s 30 -b 0 --recovery-plan 0 1 2 3 4 5"))
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
	keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
	sums := op.StatefulMap("running_count", keyed, func(r Running, _ bool, x int) (Running, bool, Running) {
		r.Sum += x
		r.Items++
		return r, true, r
	},
		// Version 1 kept the sum in an int; it did not count items.
		op.MigrateState(func(sum int) (Running, error) { return Running{Sum: sum}, nil }))
	op.OutputTo("out", sums, stdio.NewSink)
	return flow, nil
}
