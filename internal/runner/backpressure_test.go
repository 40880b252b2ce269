package runner_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/runner"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

type sums struct{ Count, Sum int }

func sumFlow(n int) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, sums]]) {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	flow := runnel.NewDataflow("bp")
	in := op.Input("inp", flow, runneltest.NewSource(items, runneltest.Parts(2), runneltest.BatchSize(50), runneltest.Pace(time.Second)))
	keyed := op.KeyOn("key", in, func(x int) int { return x % 37 })
	out := op.StatefulMap("sum", keyed, func(s sums, _ bool, x int) (sums, bool, sums) {
		s.Count++
		s.Sum += x
		return s, true, s
	})
	sink := runneltest.NewSink[runnel.KV[int, sums]]()
	op.Output("out", out, sink)
	return flow, sink
}

// drive advances clock by a second every millisecond of wall time until
// done closes, calling each(i) after advance i.
func drive(clock *runneltest.Clock, done <-chan error, each func(i int)) error {
	for i := 0; ; i++ {
		select {
		case err := <-done:
			return err
		case <-time.After(time.Millisecond):
			clock.Advance(time.Second)
			each(i)
		}
	}
}

// TestCommitterBackpressure: while the recovery store is stuck, workers
// close at most MaxUncommitted epochs and then stop reading, instead of
// closing an epoch every interval and piling their snapshot rows up in
// memory; once the store moves on, the epochs that queued up are written
// together, and a run stopped and resumed afterwards ends in the right
// state.
func TestCommitterBackpressure(t *testing.T) {
	const n, maxUncommitted = 3000, 3
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	cfg := runneltest.Config(2, time.Second, dir)

	var mu sync.Mutex
	var writes []int
	stuck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer runner.SetBeforeWrite(func(epochs int) {
		mu.Lock()
		writes = append(writes, epochs)
		mu.Unlock()
		once.Do(func() { close(stuck); <-release }) // the first write hangs until released
	})()

	flow, _ := sumFlow(n)
	clock := runneltest.NewClock(time.Unix(0, 0))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runnel.Run(context.Background(), flow, cfg, runnel.WithClock(clock),
			runnel.WithStop(stop), runnel.WithMaxUncommittedEpochs(maxUncommitted))
	}()
	stuckAt := -1
	err := drive(clock, done, func(i int) {
		select {
		case <-stuck:
			if stuckAt < 0 {
				stuckAt = i
			}
		default:
		}
		switch {
		case stuckAt >= 0 && i == stuckAt+20: // 20 epoch intervals with the store stuck
			close(release)
		case stuckAt >= 0 && i == stuckAt+25:
			close(stop)
		}
	})
	if _, ok := err.(*runnel.InterruptedError); !ok {
		t.Fatalf("first run: %v, want a graceful stop", err)
	}
	mu.Lock()
	for _, w := range writes {
		if w > maxUncommitted {
			t.Errorf("the committer wrote %d epochs at once, more than the %d uncommitted epochs allowed: workers kept closing epochs while the store was stuck (writes %v)", w, maxUncommitted, writes)
		}
	}
	t.Logf("epochs per write: %v", writes)
	mu.Unlock()

	flow, sink := sumFlow(n)
	clock = runneltest.NewClock(time.Unix(0, 0))
	go func() { done <- runnel.Run(context.Background(), flow, cfg, runnel.WithClock(clock)) }()
	if err := drive(clock, done, func(int) {}); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	want := map[int]sums{}
	for x := range n {
		s := want[x%37]
		s.Count++
		s.Sum += x
		want[x%37] = s
	}
	got := map[int]sums{}
	for _, kv := range sink.Items() {
		got[kv.Key] = kv.Value
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("key %d: %+v after the stop and resume, want %+v", k, got[k], w)
		}
	}
}
