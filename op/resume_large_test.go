package op_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestResumeManyKeysWithTimersAndDeletes resumes a Stateful step of more
// keys than keyed.Table allocates in one chunk, on another number of
// workers (2 then 3), with keys deleted and added again before the stop
// and notifications pending across it: every key resumes with its own
// state, a deleted-then-added key with its new state, and every pending
// notification runs once, after the resume, before the key's next item if
// it has one.
func TestResumeManyKeysWithTimersAndDeletes(t *testing.T) {
	const keys = 1500
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	flow := func(items []int) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, string]]) {
		flow := runnel.NewDataflow("many")
		s := op.Input("inp", flow, runneltest.NewSource(items, runneltest.Parts(2), runneltest.BatchSize(64)))
		k := op.KeyOn("key", s, func(x int) int { return x % keys })
		out := op.Stateful("count", k,
			func(c *op.Context[int, string], n int, _ bool, _ int) (int, bool) {
				if n == 0 && c.Key()%3 == 0 {
					c.NotifyAt(t0.Add(time.Hour))
				}
				n++
				c.Emit(fmt.Sprint("item ", n))
				if n == 2 && c.Key()%5 == 0 {
					return 0, false // deleted; its next item starts again
				}
				return n, true
			},
			op.OnNotify(func(c *op.Context[int, string], n int) (int, bool) {
				c.Emit(fmt.Sprint("notified ", n))
				return n, true
			}))
		sink := runneltest.NewSink[runnel.KV[int, string]]()
		op.Output("out", out, sink)
		return flow, sink
	}
	// Three items per key, then one more for the even keys: the odd keys'
	// notifications must come from the resumed timer heap, not from an
	// item that finds them due.
	var items []int
	for i := range 4 * keys {
		if i < 3*keys || i%2 == 0 {
			items = append(items, i)
		}
	}
	dir := t.TempDir()
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	first, _ := flow(items[:3*keys])
	if err := runnel.Run(context.Background(), first, runneltest.Config(2, time.Hour, dir), runnel.WithClock(runneltest.NewClock(t0))); err != nil {
		t.Fatal(err)
	}
	second, sink := flow(items)
	if err := runnel.Run(context.Background(), second, runneltest.Config(3, time.Hour, dir), runnel.WithClock(runneltest.NewClock(t0.Add(2*time.Hour)))); err != nil {
		t.Fatal(err)
	}
	got := map[int][]string{}
	for _, kv := range sink.Items() {
		got[kv.Key] = append(got[kv.Key], kv.Value)
	}
	want := map[int][]string{}
	for k := range keys {
		n := 3 // item 1, item 2, item 3
		if k%5 == 0 {
			n = 1 // item 1, item 2 (deleted), item 1
		}
		if k%3 == 0 { // asked on its first item (and again after the delete)
			want[k] = append(want[k], fmt.Sprint("notified ", n))
		}
		if k%2 == 0 {
			want[k] = append(want[k], fmt.Sprint("item ", n+1))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resumed run per key (-want +got):\n%s", diff)
	}
}
