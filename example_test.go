package runnel_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// The recovery tutorial, in-process: the second run continues the first.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "db_dir")
	if err := recovery.Init(db, 1); err != nil {
		fmt.Println(err)
		return
	}
	build := func(inp []int) *runnel.Dataflow {
		flow := runnel.NewDataflow("recovery")
		nums := op.Input("inp", flow, runneltest.NewSource(inp))
		keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
		sums := op.StatefulMap("running_count", keyed, func(sum int, _ bool, x int) (int, bool, int) {
			return sum + x, true, sum + x
		})
		op.OutputTo("out", sums, stdio.NewSink)
		return flow
	}
	cfg := runnel.DefaultConfig()
	cfg.RecoveryDir = db
	cfg.SnapshotInterval = 30 * time.Second
	if err := runnel.Run(context.Background(), build([]int{0, 1, 2}), cfg); err != nil {
		fmt.Println(err)
	}
	fmt.Println("-- resumed --")
	if err := runnel.Run(context.Background(), build([]int{0, 1, 2, 3, 4}), cfg); err != nil {
		fmt.Println(err)
	}
	// Output:
	// ('ALL', 0)
	// ('ALL', 1)
	// ('ALL', 3)
	// -- resumed --
	// ('ALL', 6)
	// ('ALL', 10)
}

func ExampleKV_String() {
	fmt.Println(runnel.KV[string, int]{Key: "ALL", Value: 3})
	fmt.Println(runnel.KV[int, string]{Key: 7, Value: "it's"})
	fmt.Println(runnel.KV[string, []float64]{Key: "xs", Value: []float64{1, 2.5}})
	// Output:
	// ('ALL', 3)
	// (7, "it's")
	// ('xs', [1.0, 2.5])
}

// countdown is a partitioned source: one partition per start value, each
// counting down to 1. Its position (the next value) is recovered.
type countdown struct{ starts map[string]int }

func (c countdown) ListParts(context.Context) ([]string, error) {
	parts := make([]string, 0, len(c.starts))
	for p := range c.starts {
		parts = append(parts, p)
	}
	return parts, nil
}

func (c countdown) BuildPart(bc runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[string, int], error) {
	next := c.starts[part]
	if resume != nil {
		next = *resume
	}
	return &countdownPart{name: part, next: next}, nil
}

type countdownPart struct {
	name string
	next int
}

func (p *countdownPart) NextBatch() ([]string, error) {
	if p.next == 0 {
		return nil, io.EOF
	}
	p.next--
	return []string{fmt.Sprintf("%s %d", p.name, p.next+1)}, nil
}
func (p *countdownPart) NextAwake() time.Time   { return time.Time{} }
func (p *countdownPart) Snapshot() (int, error) { return p.next, nil }
func (p *countdownPart) Close() error           { return nil }

// A custom source: implement PartitionedSource and wrap it with
// PartitionedInput.
func ExamplePartitionedInput() {
	flow := runnel.NewDataflow("countdown")
	s := op.Input("inp", flow, runnel.PartitionedInput(countdown{starts: map[string]int{"a": 2}}))
	op.OutputTo("out", s, stdio.NewSink)
	if err := runnel.Run(context.Background(), flow, runnel.DefaultConfig()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// a 2
	// a 1
}

// Build errors are reported by Run with the step id.
func ExampleDataflow_Err() {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1}))
	op.Output("inp", s, runneltest.NewSink[int]())
	fmt.Println(flow.Err())
	// Output:
	// step f.inp: the id is used twice; step ids must be unique
}
