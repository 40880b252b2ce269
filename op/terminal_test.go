package op_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestInspectIsAnEnd: a flow whose only end is an Inspect, an InspectDebug
// or a Raises step runs (as in Bytewax, where they count as outputs), on
// one and several workers; a flow with none of them and no Output is still
// refused.
func TestInspectIsAnEnd(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprint("inspect/w", workers), func(t *testing.T) {
			flow := runnel.NewDataflow("f")
			var mu sync.Mutex
			var seen []int
			op.Inspect("look", op.Input("inp", flow, runneltest.NewSource(ints(20), runneltest.Parts(3))), func(x int) {
				mu.Lock()
				seen = append(seen, x)
				mu.Unlock()
			})
			if err := runneltest.Run(flow, workers); err != nil {
				t.Fatal(err)
			}
			slices.Sort(seen)
			if !slices.Equal(seen, ints(20)) {
				t.Errorf("inspected %v", seen)
			}
		})
		t.Run(fmt.Sprint("inspect_debug/w", workers), func(t *testing.T) {
			flow := runnel.NewDataflow("f")
			var mu sync.Mutex
			n := 0
			s := op.Input("inp", flow, runneltest.NewSource(ints(20), runneltest.Parts(3)))
			// An Inspect whose stream is used further still counts, as in
			// Bytewax: the Map after it is a dead end, not an output.
			d := op.InspectDebug("dbg", s, func(int, uint64, int) { mu.Lock(); n++; mu.Unlock() })
			op.Map("dead_end", d, func(x int) int { return x })
			if err := runneltest.Run(flow, workers); err != nil {
				t.Fatal(err)
			}
			if n != 20 {
				t.Errorf("inspected %d items, want 20", n)
			}
		})
		t.Run(fmt.Sprint("raises/w", workers), func(t *testing.T) {
			flow := runnel.NewDataflow("f")
			s := op.Input("inp", flow, runneltest.NewSource(ints(20), runneltest.Parts(3)))
			op.Raises("too_big", op.Filter("big", s, func(x int) bool { return x > 100 }))
			if err := runneltest.Run(flow, workers); err != nil {
				t.Fatalf("no item reached Raises, yet: %v", err)
			}
			flow = runnel.NewDataflow("f")
			s = op.Input("inp", flow, runneltest.NewSource(ints(20)))
			op.Raises("too_big", op.Filter("big", s, func(x int) bool { return x > 10 }))
			if err := runneltest.Run(flow, workers); err == nil || !strings.Contains(err.Error(), "f.too_big") {
				t.Errorf("err = %v, want the Raises step's error", err)
			}
		})
	}
	flow := runnel.NewDataflow("f")
	op.Map("m", op.Input("inp", flow, runneltest.NewSource(ints(3))), func(x int) int { return x })
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "no output step") || !strings.Contains(err.Error(), "op.Inspect") {
		t.Errorf("err = %v, want a missing output refused, naming op.Output and op.Inspect", err)
	}
	if errors.Is(err, runnel.ErrInterrupted) {
		t.Error("wrong error")
	}
}
