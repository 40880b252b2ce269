package runner_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/config"
	"github.com/runnel-dev/runnel/internal/pubapi"
	"github.com/runnel-dev/runnel/internal/runner"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// Unit tests of the stop protocol (runner.Options.Stop): pause every
// worker, pick the highest open epoch, close it everywhere, commit it, and
// end without end-of-input processing.

// stopFlow counts items per key (x mod 7) on the given source; it records
// the epoch of every item that reaches the end, and closes stop once
// stopAfter items have (never, if stopAfter < 0).
type stopFlow struct {
	flow     *runnel.Dataflow
	stop     chan struct{}
	once     sync.Once
	seen     atomic.Int64
	maxEpoch atomic.Uint64
	finals   atomic.Int64
}

func newStopFlow(src runnel.Source[int], stopAfter int64) *stopFlow {
	f := &stopFlow{flow: runnel.NewDataflow("f"), stop: make(chan struct{})}
	k := op.KeyOn("key", op.Input("inp", f.flow, src), func(x int) int { return x % 7 })
	c := op.StatefulMap("count", k, func(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 })
	total := op.CountFinal("total", k, func(kv runnel.KV[int, int]) int { return kv.Key })
	op.Inspect("finals", total, func(runnel.KV[int, int]) { f.finals.Add(1) })
	op.InspectDebug("end", c, func(_ runnel.KV[int, int], e uint64, _ int) {
		for {
			m := f.maxEpoch.Load()
			if e <= m || f.maxEpoch.CompareAndSwap(m, e) {
				break
			}
		}
		if n := f.seen.Add(1); stopAfter >= 0 && n >= stopAfter {
			f.once.Do(func() { close(f.stop) })
		}
	})
	return f
}

func ints(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func recoveryDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	return dir
}

func resumeEpoch(t *testing.T, dir string) uint64 {
	t.Helper()
	s, err := recovery.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Report()
	if err != nil {
		t.Fatal(err)
	}
	return rep.ResumeEpoch
}

// checkStopped checks what a graceful stop promises: an InterruptedError
// whose resume epoch is the store's, nothing emitted past the stop epoch,
// and no end-of-input output.
func checkStopped(t *testing.T, f *stopFlow, err error, dir string) {
	t.Helper()
	var stopped *runner.InterruptedError
	if !errors.As(err, &stopped) || !errors.Is(err, runner.ErrInterrupted) {
		t.Fatalf("err = %v, want an InterruptedError", err)
	}
	if dir == "" {
		if stopped.Resume != 0 {
			t.Errorf("resume epoch %d without recovery, want 0", stopped.Resume)
		}
		return
	}
	if got := resumeEpoch(t, dir); got != stopped.Resume {
		t.Errorf("the error says the next run resumes at %d, the store at %d", stopped.Resume, got)
	}
	if m := f.maxEpoch.Load(); m >= stopped.Resume {
		t.Errorf("an item of epoch %d was emitted; the stop epoch is %d", m, stopped.Resume-1)
	}
	if n := f.finals.Load(); n > 0 {
		t.Errorf("%d end-of-input results were emitted at the stop", n)
	}
}

func cfg(workers int, epoch time.Duration, dir string) config.Config {
	return config.Config(runneltest.Config(workers, epoch, dir))
}

// TestStopBeforeInput: a stop requested before the run starts ends it
// during set-up (issue 8 item 12): nothing is read, nothing emitted, no
// end-of-input output, and the next run starts where this one would have.
func TestStopBeforeInput(t *testing.T) {
	for _, dir := range []string{"", "recovery"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			if dir != "" {
				dir = recoveryDir(t)
			}
			f := newStopFlow(runneltest.NewSource(ints(20000)), -1)
			close(f.stop)
			err := runner.Run(context.Background(), pubapi.Flow(f.flow), cfg(2, time.Hour, dir), runner.Options{Stop: f.stop})
			checkStopped(t, f, err, dir)
			if n := f.seen.Load(); n != 0 {
				t.Errorf("%d items were read after a stop that came before the run started", n)
			}
			if dir == "" {
				return
			}
			if got := resumeEpoch(t, dir); got != 1 {
				t.Errorf("resumes at %d, want 1", got)
			}
		})
	}
}

// TestStopMidRun stops runs on 1 to 4 workers with short epochs, so that
// workers are in different epochs when the stop comes; every worker closes
// the same epoch, which is committed, and nothing after it is emitted.
// With one partition, the workers that read nothing have already ended
// their inputs when the stop comes.
func TestStopMidRun(t *testing.T) {
	for _, parts := range []int{1, 4} {
		for workers := 1; workers <= 4; workers++ {
			t.Run(fmt.Sprintf("parts%d/w%d", parts, workers), func(t *testing.T) {
				dir := recoveryDir(t)
				src := runneltest.NewSource(ints(20000), runneltest.Parts(parts), runneltest.BatchSize(5), runneltest.Pace(200*time.Microsecond))
				f := newStopFlow(src, 300)
				err := runner.Run(context.Background(), pubapi.Flow(f.flow), cfg(workers, 2*time.Millisecond, dir), runner.Options{Stop: f.stop})
				checkStopped(t, f, err, dir)
				if n := f.seen.Load(); n >= 20000 {
					t.Errorf("the run read all %d items", n)
				}
			})
		}
	}
}

// TestStopUnderFlowControl: a stop completes while workers are held by
// flow control (at most one item in flight), since paused workers still
// handle messages.
func TestStopUnderFlowControl(t *testing.T) {
	dir := recoveryDir(t)
	src := runneltest.NewSource(ints(20000), runneltest.Parts(3), runneltest.BatchSize(50))
	f := newStopFlow(src, 2000)
	err := runner.Run(context.Background(), pubapi.Flow(f.flow), cfg(3, time.Millisecond, dir), runner.Options{Stop: f.stop, MaxOutstanding: 1})
	checkStopped(t, f, err, dir)
}

// TestStopRacingEnd: a stop that comes as the input ends either stops the
// run (no end-of-input output, an InterruptedError) or comes too late (the
// run completed: every end-of-input result, no error); never a run that
// completed but reports an interruption.
func TestStopRacingEnd(t *testing.T) {
	for i := range 30 {
		dir := recoveryDir(t)
		f := newStopFlow(runneltest.NewSource(ints(14), runneltest.BatchSize(7)), -1)
		close(f.stop)
		err := runner.Run(context.Background(), pubapi.Flow(f.flow), cfg(1+i%2, time.Hour, dir), runner.Options{Stop: f.stop})
		if err == nil {
			if n := f.finals.Load(); n != 7 {
				t.Fatalf("run %d completed with %d end-of-input results, want 7", i, n)
			}
			continue
		}
		checkStopped(t, f, err, dir)
	}
}

// TestStopAfterEnd: a stop that comes after the input ended changes
// nothing: the run ends normally.
func TestStopAfterEnd(t *testing.T) {
	f := newStopFlow(runneltest.NewSource(ints(50)), -1)
	if err := runner.Run(context.Background(), pubapi.Flow(f.flow), cfg(2, time.Hour, ""), runner.Options{Stop: f.stop}); err != nil {
		t.Fatal(err)
	}
	close(f.stop)
	if f.finals.Load() != 7 {
		t.Errorf("%d end-of-input results, want 7", f.finals.Load())
	}
}

// TestAbortDuringStop: cancelling the context (a second signal) while a
// stop waits aborts the run instead: nothing more is committed.
func TestAbortDuringStop(t *testing.T) {
	dir := recoveryDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f := newStopFlow(runneltest.NewSource(ints(100)), -1)
	flow := f.flow
	// A sink that blocks the worker holding the stop back, until the abort.
	op.Output("block", op.Inspect("slow", op.Input("inp2", flow, runneltest.NewSource([]int{1})), func(int) {
		close(f.stop)
		<-ctx.Done()
	}), runneltest.NewSink[int]())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel(errors.New("second signal"))
	}()
	err := runner.Run(ctx, pubapi.Flow(flow), cfg(1, time.Hour, dir), runner.Options{Stop: f.stop})
	if err == nil || errors.Is(err, runner.ErrInterrupted) {
		t.Fatalf("err = %v, want an abort", err)
	}
	if got := resumeEpoch(t, dir); got != 1 {
		t.Errorf("an aborted run committed: resumes at %d, want 1", got)
	}
}
