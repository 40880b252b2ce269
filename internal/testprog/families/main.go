// Command families runs internal/testflow's families flow (one step of
// every stateful operator family) for Runnel's own stop and crash tests,
// printing one line per output item: "step key value". Its size and pace
// come from the environment so that tests can stop it mid-way:
//
//	FAMILIES_N      number of items, the integers [0, N) (default 1000)
//	FAMILIES_PARTS  input partitions (default 1)
//	FAMILIES_KEYS   keys per partition; a key is item mod (PARTS*KEYS) (default 3)
//	FAMILIES_PACE   pause between batches of 10 items, in µs (default 0)
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/internal/testflow"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(2)
		}
		return n
	}
	return def
}

func main() {
	n := envInt("FAMILIES_N", 1000)
	parts := envInt("FAMILIES_PARTS", 1)
	keys := parts * envInt("FAMILIES_KEYS", 3)
	pace := time.Duration(envInt("FAMILIES_PACE", 0)) * time.Microsecond
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	src := runneltest.NewSource(items, runneltest.BatchSize(10), runneltest.Parts(parts), runneltest.Pace(pace))
	flow := testflow.Families(src, keys, func(s runnel.Stream[testflow.Rec]) {
		lines := op.Map("fmt", s, testflow.Rec.String)
		op.Output("out", lines, stdio.NewSink[string]())
	})
	runnel.Main(flow)
}
