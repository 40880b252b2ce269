package window_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	keyedstate "github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

type tev struct {
	Key string
	Sec int
}

// freedFlow counts tev items per key in 10s event-time windows (no wait);
// an item with key "tick" moves the clock a minute on, which closes the
// windows of the keys seen so far and frees their state.
func freedFlow(evs []tev, clock *runneltest.Clock) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, window.Result[int]]], *runneltest.Sink[runnel.KV[string, window.Late[tev]]]) {
	flow := runnel.NewDataflow("freed")
	s := op.Input("inp", flow, runneltest.NewSource(evs, runneltest.BatchSize(1)))
	s = op.Inspect("tick", s, func(e tev) {
		if e.Key == "tick" {
			clock.Advance(time.Minute)
		}
	})
	o := window.CountWindow("count", s, window.EventClock(func(e tev) time.Time { return align.Add(time.Duration(e.Sec) * time.Second) }, 0),
		window.Tumbling(10*time.Second, align), func(e tev) string { return e.Key })
	down := runneltest.NewSink[runnel.KV[string, window.Result[int]]]()
	late := runneltest.NewSink[runnel.KV[string, window.Late[tev]]]()
	op.Output("down", o.Down, down)
	op.Output("late", o.Late, late)
	return flow, down, late
}

// keyOn0 is a key that worker 0 (the one that reads the only source
// partition) owns among workers, so that its items are handled in order
// with the clock moves.
func keyOn0(workers int) string {
	ops := keys.For[string]()
	for i := 0; ; i++ {
		k := fmt.Sprint("k", i)
		if keyedstate.Owner(ops.Hash(k), workers) == 0 {
			return k
		}
	}
}

func forKey[V any](items []runnel.KV[string, V], key string) []string {
	var out []string
	for _, kv := range items {
		if kv.Key == key {
			out = append(out, fmt.Sprint(kv.Value))
		}
	}
	return out
}

// TestLateItemForFreedKey: once a key's only window closed and its state
// was freed, a late item for that key goes to the late stream; it used to
// open the closed window again and emit it a second time.
func TestLateItemForFreedKey(t *testing.T) {
	for _, workers := range []int{1, 3} {
		k := keyOn0(workers)
		clock := runneltest.NewClock(time.Unix(1000, 0))
		// The pad item gives the worker a step in which the wake-up frees
		// the key before the late item comes.
		flow, down, late := freedFlow([]tev{{k, 5}, {"tick", 0}, {"pad", 0}, {k, 7}}, clock)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, ""), runnel.WithClock(clock)); err != nil {
			t.Fatal(err)
		}
		if got := forKey(down.Items(), k); len(got) != 1 || got[0] != "(0, 1)" {
			t.Errorf("%d workers: results of %s = %v, want window 0 once, with 1 item", workers, k, got)
		}
		if got := forKey(late.Items(), k); len(got) != 1 || !strings.HasPrefix(got[0], "Late(0, ") {
			t.Errorf("%d workers: late items of %s = %v, want the item at 7s", workers, k, got)
		}
	}
}

// TestLateItemForFreedKeyAfterResume: the freed key's clock is in the
// snapshot, so a continuation on another worker count still sends the
// late item to the late stream.
func TestLateItemForFreedKeyAfterResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	k := keyOn0(1)
	evs := []tev{{k, 5}, {"tick", 0}}
	clock := runneltest.NewClock(time.Unix(1000, 0))
	flow, down, _ := freedFlow(evs, clock)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, dir), runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	if got := forKey(down.Items(), k); len(got) != 1 {
		t.Fatalf("first run: results of %s = %v", k, got)
	}
	clock = runneltest.NewClock(time.Unix(1000, 0).Add(2 * time.Minute))
	flow, down, late := freedFlow(append(evs, tev{k, 7}), clock)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(3, time.Hour, dir), runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	if got := forKey(down.Items(), k); len(got) != 0 {
		t.Errorf("resumed run: results of %s = %v, want none (window 0 was emitted before)", k, got)
	}
	if got := forKey(late.Items(), k); len(got) != 1 || !strings.HasPrefix(got[0], "Late(0, ") {
		t.Errorf("resumed run: late items of %s = %v, want the item at 7s", k, got)
	}
}
