package poll_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/connector/poll"
	"github.com/runnel-dev/runnel/internal/recoverytest"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// drive advances clock by step every millisecond of real time until the
// returned stop is called, so that a run on a manual clock makes progress.
func drive(clock *runneltest.Clock, step time.Duration) (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
				clock.Advance(step)
			}
		}
	}()
	return func() { close(quit); <-exited }
}

// TestSourceRunClock polls on the run's manual clock: the calls see its
// time, an interval apart at least, on one worker of three.
func TestSourceRunClock(t *testing.T) {
	clock := runneltest.NewClock(start)
	var mu sync.Mutex
	var at []time.Time
	src := poll.NewSource(time.Minute, func() ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, clock.Now())
		n := len(at)
		if n == 5 {
			return []string{"last"}, fmt.Errorf("done: %w", io.EOF)
		}
		return []string{"tick " + strconv.Itoa(n)}, nil
	})
	flow := runnel.NewDataflow("f")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("inp", flow, src), sink)
	stop := drive(clock, 10*time.Second)
	err := runnel.Run(context.Background(), flow, runneltest.Config(3, time.Hour, ""), runnel.WithClock(clock))
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"tick 1", "tick 2", "tick 3", "tick 4", "last"}, sink.Items()); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	for i, a := range at {
		if a.Year() != 2030 {
			t.Fatalf("call %d saw %v: not the run's clock", i, a)
		}
		if i > 0 && a.Sub(at[i-1]) < time.Minute {
			t.Errorf("calls %d and %d only %v apart", i-1, i, a.Sub(at[i-1]))
		}
	}
}

func TestSourceErrorNamesStep(t *testing.T) {
	flow := runnel.NewDataflow("f")
	src := poll.NewSource(time.Millisecond, func() ([]int, error) { return nil, errors.New("endpoint down") })
	op.Output("out", op.Input("inp", flow, src), runneltest.NewSink[int]())
	err := runneltest.Run(flow, 2)
	if err == nil || !strings.Contains(err.Error(), "f.inp") || !strings.Contains(err.Error(), "endpoint down") {
		t.Fatalf("err = %v, want the cause and the step f.inp", err)
	}
	flow = runnel.NewDataflow("f")
	src = poll.NewSource(0, func() ([]int, error) { return nil, nil })
	op.Output("out", op.Input("inp", flow, src), runneltest.NewSink[int]())
	if err := runneltest.Run(flow, 1); err == nil || !strings.Contains(err.Error(), "interval 0s must be above zero") {
		t.Fatalf("err = %v, want an interval error", err)
	}
}

type cursor struct{ Next int }

// TestResumableCrashResumeRescale polls pages of numbers with a resumable
// cursor into a file sink, crashes after two committed epochs, and resumes
// on another number of workers: the file holds every number once, in
// order.
func TestResumableCrashResumeRescale(t *testing.T) {
	// The step goes slowly (2 ms an item) until two epochs are committed,
	// then fails: 3000 items take seconds at that pace, so the input
	// cannot end before the crash.
	const total = 3000
	for _, rs := range []struct{ from, to int }{{1, 1}, {2, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("w%d-w%d", rs.from, rs.to), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.txt")
			db := filepath.Join(dir, "db")
			if err := recovery.Init(db, 2); err != nil {
				t.Fatal(err)
			}
			crashed := new(atomic.Bool)
			var firstCall []int // the cursor each run's first call got
			run := func(workers int) error {
				clock := runneltest.NewClock(start)
				committed := recoverytest.WatchCommitted(db, 3)
				defer committed.Stop()
				first := true
				src := poll.NewResumableSource(time.Second, func(c cursor) ([]int, cursor, error) {
					if first {
						firstCall, first = append(firstCall, c.Next), false
					}
					var page []int
					for i := c.Next; i < min(c.Next+30, total); i++ {
						page = append(page, i)
					}
					c.Next += len(page)
					if c.Next == total {
						return page, c, io.EOF
					}
					return page, c, nil
				})
				flow := runnel.NewDataflow("p")
				nums := op.Input("inp", flow, src)
				lines := op.TryMap("fmt", nums, func(n int) (string, error) {
					if !crashed.Load() {
						if committed.Done() {
							if crashed.CompareAndSwap(false, true) {
								return "", errCrash
							}
						} else {
							time.Sleep(2 * time.Millisecond)
						}
					}
					return strconv.Itoa(n), nil
				})
				op.Output("out", lines, file.NewSink(out))
				stop := drive(clock, 500*time.Millisecond)
				defer stop()
				return runnel.Run(context.Background(), flow, runneltest.Config(workers, 2*time.Second, db), runnel.WithClock(clock))
			}
			if err := run(rs.from); !errors.Is(err, errCrash) {
				t.Fatalf("first run: err = %v, want the simulated crash", err)
			}
			if err := run(rs.to); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if len(firstCall) != 2 || firstCall[0] != 0 || firstCall[1] == 0 {
				t.Errorf("first calls of the runs got cursors %v, want 0 then a committed position", firstCall)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range total {
				want = append(want, strconv.Itoa(i))
			}
			if diff := cmp.Diff(want, strings.Fields(string(b))); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

var errCrash = errors.New("simulated crash")

// TestSourceWithRecoveryRescale: NewSource keeps no position, so runs with
// recovery on 1, 3 and 2 workers each poll afresh.
func TestSourceWithRecoveryRescale(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 1); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 3, 2} {
		calls := 0
		src := poll.NewSource(time.Millisecond, func() ([]int, error) {
			calls++
			if calls == 3 {
				return []int{calls}, io.EOF
			}
			return []int{calls}, nil
		})
		flow := runnel.NewDataflow("f")
		sink := runneltest.NewSink[int]()
		op.Output("out", op.Input("inp", flow, src), sink)
		if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Millisecond, db)); err != nil {
			t.Fatalf("%d workers: %v", workers, err)
		}
		if diff := cmp.Diff([]int{1, 2, 3}, sink.Items()); diff != "" {
			t.Errorf("%d workers (-want +got):\n%s", workers, diff)
		}
	}
}

// TestResumableStopResume stops a run gracefully mid-way and resumes it on
// another number of workers: the cursor continues exactly.
func TestResumableStopResume(t *testing.T) {
	const total = 200
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	db := filepath.Join(dir, "db")
	if err := recovery.Init(db, 1); err != nil {
		t.Fatal(err)
	}
	run := func(workers, stopAt int) error {
		stop := make(chan struct{})
		src := poll.NewResumableSource(time.Millisecond, func(c cursor) ([]int, cursor, error) {
			if c.Next == stopAt {
				close(stop)
			}
			if c.Next >= total { // a run resumed after the end asks again
				return nil, c, io.EOF
			}
			page := []int{c.Next, c.Next + 1}
			c.Next += 2
			if c.Next >= total {
				return page, c, io.EOF
			}
			return page, c, nil
		})
		flow := runnel.NewDataflow("p")
		lines := op.Map("fmt", op.Input("inp", flow, src), strconv.Itoa)
		op.Output("out", lines, file.NewSink(out))
		return runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Millisecond, db), runnel.WithStop(stop))
	}
	if err := run(3, 60); !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("first run: err = %v, want a graceful stop", err)
	}
	if err := run(2, -1); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range total {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, strings.Fields(string(b))); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}
