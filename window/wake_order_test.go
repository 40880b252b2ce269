package window_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	keyedstate "github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// TestDueClosesRunBeforeLaterItems: key a's window is due to close at 10ms;
// the worker gets an item of another key only once the clock reads 100ms.
// a's window closes before that item is handled, on 1 and on 3 workers.
func TestDueClosesRunBeforeLaterItems(t *testing.T) {
	ops := keys.For[string]()
	start := time.Unix(1000, 0)
	for _, workers := range []int{1, 3} {
		other := ""
		for _, c := range "bcdefghijklmnopqrstuvwxyz" {
			if keyedstate.Owner(ops.Hash(string(c)), workers) == keyedstate.Owner(ops.Hash("a"), workers) {
				other = string(c)
				break
			}
		}
		clock := runneltest.NewClock(start)
		flow := runnel.NewDataflow("wake")
		var sink *runneltest.Sink[runnel.KV[string, window.Result[string]]]
		s := op.Input("inp", flow, runneltest.NewSource([]string{"a", other}, runneltest.BatchSize(1)))
		s = op.Inspect("tick", s, func(x string) {
			if x != other {
				return
			}
			// The owner may be another worker: let it handle a first.
			for deadline := time.Now().Add(time.Minute); len(sink.Items()) == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			clock.Advance(100 * time.Millisecond)
		})
		k := op.KeyOn("key", s, func(x string) string { return x })
		o := window.Window("w", k, window.SystemClock, window.Tumbling(10*time.Millisecond, start), window.Logic[string, int, string]{
			OnValue: func(e *window.Emitter[string], n int, v string) int { e.Emit("value " + v); return n + 1 },
			OnClose: func(e *window.Emitter[string], n int) { e.Emit(fmt.Sprint("close ", n)) },
		})
		sink = runneltest.NewSink[runnel.KV[string, window.Result[string]]]()
		op.Output("out", o.Down, sink)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, ""), runnel.WithClock(clock)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range sink.Items() {
			got = append(got, kv.Key+": "+kv.Value.Value)
		}
		want := []string{"a: value a", "a: close 1", other + ": value " + other, other + ": close 1"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d workers (-want +got):\n%s", workers, diff)
		}
	}
}
