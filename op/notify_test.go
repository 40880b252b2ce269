package op_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// notifyFlow keys the input by its first letter and runs a Stateful step
// whose items ask for a notification wait after the clock's now; it emits
// "item x" per item and "notify" per notification. Before the step, an
// Inspect calls tick with each item (on the worker that reads it). The
// source delivers batch items at a time.
func notifyFlow(items []string, batch int, wait time.Duration, tick func(x string)) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, string]]) {
	flow := runnel.NewDataflow("notify")
	s := op.Input("inp", flow, runneltest.NewSource(items, runneltest.BatchSize(batch)))
	if tick != nil {
		s = op.Inspect("tick", s, tick)
	}
	k := op.KeyOn("key", s, func(x string) string { return x[:1] })
	out := op.Stateful("st", k,
		func(c *op.Context[string, string], n int, _ bool, v string) (int, bool) {
			c.Emit("item " + v)
			c.NotifyAt(c.Now().Add(wait))
			return n + 1, true
		},
		op.OnNotify(func(c *op.Context[string, string], n int) (int, bool) {
			c.Emit("notify")
			return n, true
		}))
	sink := runneltest.NewSink[runnel.KV[string, string]]()
	op.Output("out", out, sink)
	return flow, sink
}

// TestDueNotificationRunsBeforeNextItem: items of one key arrive back to
// back in one batch and each asks for a notification now. Each
// notification is due when the key's next item comes, so it runs before
// that item (Bytewax's order); before, each item replaced the pending
// notification and OnNotify never ran.
func TestDueNotificationRunsBeforeNextItem(t *testing.T) {
	for _, workers := range []int{1, 3} {
		clock := runneltest.NewClock(time.Unix(1000, 0))
		flow, sink := notifyFlow([]string{"a1", "a2", "a3", "a4"}, 4, 0, nil)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, ""), runnel.WithClock(clock)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range sink.Items() {
			got = append(got, kv.Value)
		}
		want := []string{"item a1", "notify", "item a2", "notify", "item a3", "notify", "item a4"}
		if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("%d workers: got %q, want it to start with %q", workers, got, want)
		}
	}
}

// TestDueNotificationsRunInTimeOrder: key a asks for a notification 20ms
// ahead; the worker then gets an item of another key only once the clock
// reads 100ms. The notification, due at 20ms, runs before that item.
func TestDueNotificationsRunInTimeOrder(t *testing.T) {
	ops := keys.For[string]()
	for _, workers := range []int{1, 3} {
		// Two keys owned by the same worker, so their order is defined.
		other := ""
		for _, c := range "bcdefghijklmnopqrstuvwxyz" {
			if keyed.Owner(ops.Hash(string(c)), workers) == keyed.Owner(ops.Hash("a"), workers) {
				other = string(c)
				break
			}
		}
		clock := runneltest.NewClock(time.Unix(1000, 0))
		var sink *runneltest.Sink[runnel.KV[string, string]]
		var flow *runnel.Dataflow
		flow, sink = notifyFlow([]string{"a1", other + "1"}, 1, 20*time.Millisecond, func(x string) {
			if x != other+"1" {
				return
			}
			// The owner may be another worker: let it handle a1 (at the
			// start time) before the clock moves on.
			for deadline := time.Now().Add(time.Minute); len(sink.Items()) == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			clock.Advance(100 * time.Millisecond)
		})
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, ""), runnel.WithClock(clock)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range sink.Items() {
			got = append(got, fmt.Sprintf("%s: %s", kv.Key, kv.Value))
		}
		want := []string{"a: item a1", "a: notify", fmt.Sprintf("%s: item %s1", other, other)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d workers (-want +got):\n%s", workers, diff)
		}
	}
}
