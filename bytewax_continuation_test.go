package runnel_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// TestBytewaxFinalContinuation pins the continuation difference listed in
// docs/operators.md ("Differences from Bytewax"): a fold_final and a
// window closed by the end of input, continued with more input and then
// with none. Bytewax snapshots after its end-of-input logic: its second
// run folds the new items only (3+4 = 7; the window holds [4]) and its
// third run emits nothing. Runnel resumes from the last barrier before
// the end: the second run's results cover every run (1+2+3+4 = 10; the
// window holds [1 2 3 4]) and the third run emits them again, unchanged
// (at least once through a sink that keeps no position).
func TestBytewaxFinalContinuation(t *testing.T) {
	dir := initDir(t, 1)
	align := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	build := func(items []int) (*runnel.Dataflow, *runneltest.Sink[int], *runneltest.Sink[[]int]) {
		flow := runnel.NewDataflow("test_df")
		k := op.KeyOn("key", op.Input("inp", flow, runneltest.NewSource(items)), func(int) string { return "ALL" })
		sums := runneltest.NewSink[int]()
		op.Output("sums", op.KeyRm("unkey", op.FoldFinal("sum", k, func() int { return 0 }, func(s, x int) int { return s + x })), sums)
		wins := runneltest.NewSink[[]int]()
		w := window.CollectWindow("collect", k, window.EventClock(func(x int) time.Time { return align.Add(time.Duration(x) * time.Second) }, 0),
			window.Tumbling(time.Minute, align))
		op.Output("windows", op.Map("values", op.KeyRm("unkey_w", w.Down), func(r window.Result[[]int]) []int { return r.Value }), wins)
		return flow, sums, wins
	}
	for i, tc := range []struct {
		items []int
		sums  []int
		wins  [][]int
	}{
		{[]int{1, 2, 3}, []int{6}, [][]int{{1, 2, 3}}},
		{[]int{1, 2, 3, 4}, []int{10}, [][]int{{1, 2, 3, 4}}}, // Bytewax: [7], [[4]]
		{[]int{1, 2, 3, 4}, []int{10}, [][]int{{1, 2, 3, 4}}}, // Bytewax: nothing
	} {
		flow, sums, wins := build(tc.items)
		if err := run(t, flow, runneltest.Config(1, time.Hour, dir)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.sums, sums.Items()); diff != "" {
			t.Errorf("run %d: fold_final (-want +got):\n%s", i+1, diff)
		}
		if diff := cmp.Diff(tc.wins, wins.Items()); diff != "" {
			t.Errorf("run %d: window (-want +got):\n%s", i+1, diff)
		}
	}
}
