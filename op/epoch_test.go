package op_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestEpochAtEOF: Context.Epoch inside OnEOF is runnel.EOFEpoch (the
// largest epoch), after every epoch of the input, not 0. Items have the
// epoch of the interval that read them (one long epoch: 1).
func TestEpochAtEOF(t *testing.T) {
	if runnel.EOFEpoch != math.MaxUint64 {
		t.Fatalf("EOFEpoch = %d", runnel.EOFEpoch)
	}
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("w", workers), func(t *testing.T) {
			flow := runnel.NewDataflow("f")
			s := op.KeyOn("key", op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3})), func(x int) string { return "k" })
			e := op.Stateful("epochs", s,
				func(c *op.Context[string, string], n int, _ bool, x int) (int, bool) {
					c.Emit(fmt.Sprint("item ", c.Epoch()))
					return n + 1, true
				},
				op.OnEOF(func(c *op.Context[string, string], n int) (int, bool) {
					c.Emit(fmt.Sprint("eof ", c.Epoch()))
					return n, false
				}))
			sink := runneltest.NewSink[runnel.KV[string, string]]()
			op.Output("out", e, sink)
			if err := runneltest.Run(flow, workers); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range sink.Items() {
				got = append(got, kv.Value)
			}
			want := []string{"item 1", "item 1", "item 1", fmt.Sprint("eof ", uint64(math.MaxUint64))}
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("epochs seen (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInspectDebugEpochs: InspectDebug reports the epoch each item was
// read in, counting from 1, and never EOFEpoch for an item.
func TestInspectDebugEpochs(t *testing.T) {
	flow := runnel.NewDataflow("f")
	var epochs []uint64
	s := op.InspectDebug("dbg", op.Input("inp", flow, runneltest.NewSource([]int{1, 2})), func(_ int, e uint64, _ int) {
		epochs = append(epochs, e)
	})
	op.Output("out", s, runneltest.NewSink[int]())
	if err := runnel.Run(t.Context(), flow, runneltest.Config(1, time.Hour, "")); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]uint64{1, 1}, epochs); diff != "" {
		t.Errorf("epochs (-want +got):\n%s", diff)
	}
}
