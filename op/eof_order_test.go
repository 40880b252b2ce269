package op_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestEOFFlushInKeyOrder checks that what the *Final operators and OnEOF
// hooks emit at the end of input comes out sorted by key on each worker
// (so with one worker the whole flush is sorted), not in map order.
func TestEOFFlushInKeyOrder(t *testing.T) {
	words := make([]string, 300)
	for i := range words {
		words[i] = fmt.Sprintf("w%03d", (i*7919)%300)
	}
	nums := make([]int, 300)
	for i := range nums {
		nums[i] = (i*7919)%300 - 150
	}
	type kv = runnel.KV[string, int]
	type ikv = runnel.KV[int, int]
	ops, iops := keys.For[string](), keys.For[int]()
	for _, workers := range []int{1, 3} {
		flow := runnel.NewDataflow("order")
		ws := op.Input("words", flow, runneltest.NewSource(words, runneltest.Parts(2)))
		ns := op.Input("nums", flow, runneltest.NewSource(nums, runneltest.Parts(2)))
		count := runneltest.NewSink[kv]()
		op.Output("count_out", op.CountFinal("count", ws, func(w string) string { return w }), count)
		keyedNums := op.KeyOn("key", ns, func(n int) int { return n })
		fold := runneltest.NewSink[ikv]()
		op.Output("fold_out", op.FoldFinal("fold", keyedNums, func() int { return 0 }, func(s, v int) int { return s + v }), fold)
		eof := runneltest.NewSink[ikv]()
		op.Output("eof_out", op.Stateful("eof", keyedNums,
			func(c *op.Context[int, int], s int, _ bool, v int) (int, bool) { return s + 1, true },
			op.OnEOF(func(c *op.Context[int, int], s int) (int, bool) { c.Emit(s); return s, false })), eof)
		if err := runneltest.Run(flow, workers); err != nil {
			t.Fatal(err)
		}
		checkOrder(t, workers, "CountFinal", count.Items(), func(k string) int { return keyed.Owner(ops.Hash(k), workers) }, 300)
		checkOrder(t, workers, "FoldFinal", fold.Items(), func(k int) int { return keyed.Owner(iops.Hash(k), workers) }, 300)
		checkOrder(t, workers, "OnEOF", eof.Items(), func(k int) int { return keyed.Owner(iops.Hash(k), workers) }, 300)
	}
}

func checkOrder[K runnel.Key, V any](t *testing.T, workers int, name string, items []runnel.KV[K, V], owner func(K) int, want int) {
	t.Helper()
	if len(items) != want {
		t.Errorf("%s on %d workers: %d items, want %d", name, workers, len(items), want)
	}
	byWorker := map[int][]K{}
	for _, kv := range items {
		w := owner(kv.Key)
		byWorker[w] = append(byWorker[w], kv.Key)
	}
	for w, ks := range byWorker {
		if !slices.IsSorted(ks) {
			t.Errorf("%s on %d workers: worker %d flushed keys out of order: %v", name, workers, w, ks)
		}
	}
}
