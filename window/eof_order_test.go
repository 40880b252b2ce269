package window_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	keyedstate "github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// TestEOFFlushInKeyOrder checks that the windows still open at the end of
// input close in key order on each worker (with one worker, the whole
// flush is sorted), and each key's windows in time order.
func TestEOFFlushInKeyOrder(t *testing.T) {
	var rs []reading
	for i := range 400 {
		rs = append(rs, reading{fmt.Sprintf("s%03d", (i*7919)%200), i % 30, i})
	}
	ops := keys.For[string]()
	for _, workers := range []int{1, 3} {
		flow := runnel.NewDataflow("order")
		o := window.CountWindow("count", op.Input("inp", flow, runneltest.NewSource(rs, runneltest.Parts(2))),
			window.EventClock(at, time.Hour), window.Tumbling(10*time.Second, align), func(r reading) string { return r.Sensor })
		down := runneltest.NewSink[runnel.KV[string, window.Result[int]]]()
		meta := runneltest.NewSink[runnel.KV[string, window.Meta]]()
		op.Output("down", o.Down, down)
		op.Output("meta", o.Meta, meta)
		if err := runneltest.Run(flow, workers); err != nil {
			t.Fatal(err)
		}
		type kid struct {
			key string
			id  int64
		}
		byWorker := map[int][]kid{}
		for _, kv := range down.Items() {
			w := keyedstate.Owner(ops.Hash(kv.Key), workers)
			byWorker[w] = append(byWorker[w], kid{kv.Key, kv.Value.ID})
		}
		n := 0
		for w, ks := range byWorker {
			n += len(ks)
			if !slices.IsSortedFunc(ks, func(a, b kid) int {
				if a.key != b.key {
					return cmpString(a.key, b.key)
				}
				return int(a.id - b.id)
			}) {
				t.Errorf("%d workers: worker %d closed windows out of key order: %v", workers, w, ks)
			}
		}
		if n != len(meta.Items()) || n < 200 {
			t.Errorf("%d workers: %d results, %d metas", workers, n, len(meta.Items()))
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
