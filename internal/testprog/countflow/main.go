// Command countflow is a flow for Runnel's own crash and stop tests: a
// running count and sum per key over the integers [0, N), printed one line
// per item as "key count sum". Its size and pace come from the environment
// so tests can make it run long enough to be killed mid-way:
//
//	COUNTFLOW_N      number of items (default 1000)
//	COUNTFLOW_KEYS   number of keys, item mod KEYS (default 7)
//	COUNTFLOW_PARTS  input partitions (default 1)
//	COUNTFLOW_PACE   pause between batches of 10 items (default 0)
//	COUNTFLOW_FAIL   index at which the source fails once (default none)
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
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

// Counts is the state per key.
type Counts struct {
	Count int
	Sum   int
}

func main() {
	n := envInt("COUNTFLOW_N", 1000)
	keys := envInt("COUNTFLOW_KEYS", 7)
	parts := envInt("COUNTFLOW_PARTS", 1)
	pace := time.Duration(envInt("COUNTFLOW_PACE", 0)) * time.Microsecond
	opts := []runneltest.SourceOpt{runneltest.BatchSize(10), runneltest.Parts(parts), runneltest.Pace(pace)}
	if f := envInt("COUNTFLOW_FAIL", -1); f >= 0 {
		opts = append(opts, runneltest.FailAt(f))
	}
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	flow := runnel.NewDataflow("countflow")
	s := op.Input("inp", flow, runneltest.NewSource(items, opts...))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(st Counts, _ bool, x int) (Counts, bool, Counts) {
		st.Count++
		st.Sum += x
		return st, true, st
	})
	lines := op.Map("fmt", c, func(kv runnel.KV[int, Counts]) string {
		return fmt.Sprintf("%d %d %d", kv.Key, kv.Value.Count, kv.Value.Sum)
	})
	op.Output("out", lines, stdio.NewSink[string]())
	runnel.Main(flow)
}
