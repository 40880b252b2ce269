package demo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/demo"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/internal/recoverytest"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func gen(r *rand.Rand, n int64) string { return fmt.Sprintf("%d:%d", n, r.Uint32()) }

func collect[T any](t *testing.T, src runnel.Source[T], workers int, opts ...runnel.RunOption) ([]T, error) {
	t.Helper()
	flow := runnel.NewDataflow("d")
	sink := runneltest.NewSink[T]()
	op.Output("out", op.Input("inp", flow, src), sink)
	err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, ""), opts...)
	return sink.Items(), err
}

// TestDeterministic: the same seed and count give the same items whatever
// the workers, partitions and batch sizes; another seed gives others.
func TestDeterministic(t *testing.T) {
	var ref []string
	for _, tc := range []struct{ workers, parts, batch int }{{1, 1, 1000}, {3, 1, 7}, {2, 4, 3}, {3, 5, 1}} {
		got, err := collect(t, demo.NewSource(gen, demo.Seed(42), demo.Count(500), demo.Parts(tc.parts), demo.BatchSize(tc.batch)), tc.workers)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if len(got) != 500 {
			t.Fatalf("%+v: %d items, want 500", tc, len(got))
		}
		if ref == nil {
			ref = got
		} else if diff := cmp.Diff(ref, got); diff != "" {
			t.Errorf("%+v: items differ from one worker's (-ref +got):\n%s", tc, diff)
		}
	}
	other, err := collect(t, demo.NewSource(gen, demo.Seed(43), demo.Count(500)), 1)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(other)
	if same := len(slices.DeleteFunc(other, func(s string) bool { _, ok := slices.BinarySearch(ref, s); return !ok })); same > 5 {
		t.Errorf("seeds 42 and 43 share %d of 500 items", same)
	}
}

func TestRandomMetricSource(t *testing.T) {
	clock := runneltest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() { // the run's clock moves 0.7 s per real millisecond
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
				clock.Advance(700 * time.Millisecond)
			}
		}
	}()
	got, err := collect(t, demo.NewRandomMetricSource("cpu", demo.Count(50), demo.Parts(2)), 2, runnel.WithClock(clock))
	close(quit)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("%d items, want 50", len(got))
	}
	seen := map[int]bool{}
	for _, kv := range got {
		if kv.Key != "cpu" || kv.Value < 0 || kv.Value >= 10 {
			t.Fatalf("bad metric %v", kv)
		}
		seen[kv.Value] = true
	}
	if len(seen) < 5 {
		t.Errorf("only %d distinct values in 50 items", len(seen))
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  demo.Opt
		want string
	}{
		{demo.Parts(0), "Parts(0)"},
		{demo.BatchSize(0), "BatchSize(0)"},
		{demo.Interval(-time.Second), "Interval(-1s)"},
		{demo.Count(-5), "Count(-5)"},
	} {
		_, err := collect(t, demo.NewSource(gen, tc.opt), 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to name %s", err, tc.want)
		}
	}
}

// TestPartsChanged refuses to resume with another partition count.
func TestPartsChanged(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 1); err != nil {
		t.Fatal(err)
	}
	run := func(parts int) error {
		flow := runnel.NewDataflow("d")
		op.Output("out", op.Input("inp", flow, demo.NewSource(gen, demo.Count(10), demo.Parts(parts))), runneltest.NewSink[string]())
		return runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, db))
	}
	if err := run(3); err != nil {
		t.Fatal(err)
	}
	if err := run(2); err == nil || !strings.Contains(err.Error(), `"demo-2"`) {
		t.Fatalf("fewer parts: err = %v, want a refusal naming the missing partition demo-2", err)
	}
	if err := run(4); err == nil || !strings.Contains(err.Error(), "recovered with Parts(3), now Parts(4)") || !strings.Contains(err.Error(), "--drop-state d.inp") {
		t.Fatalf("more parts: err = %v, want a refusal naming both counts and --drop-state", err)
	}
}

var errCrash = errors.New("simulated crash")

// TestCrashResumeRescale generates into a three-part directory sink with
// recovery, crashes after two committed epochs, and resumes on another
// number of workers: the output holds exactly an uninterrupted run's items.
func TestCrashResumeRescale(t *testing.T) {
	// The step goes slowly (2 ms an item) until two epochs are committed,
	// then fails: 3000 items take seconds at that pace, so the input
	// cannot end before the crash.
	const count = 3000
	want, err := collect(t, demo.NewSource(gen, demo.Seed(7), demo.Count(count)), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range []struct{ from, to int }{{1, 1}, {2, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("w%d-w%d", rs.from, rs.to), func(t *testing.T) {
			out := t.TempDir()
			db := filepath.Join(t.TempDir(), "db")
			if err := recovery.Init(db, 2); err != nil {
				t.Fatal(err)
			}
			crashed := new(atomic.Bool)
			run := func(workers int, itemsPerEpoch int64) error {
				clock := runneltest.NewClock(time.Unix(1_700_000_000, 0))
				committed := recoverytest.WatchCommitted(db, 3)
				defer committed.Stop()
				var n atomic.Int64
				flow := runnel.NewDataflow("d")
				items := op.Input("inp", flow, demo.NewSource(gen, demo.Seed(7), demo.Count(count), demo.Parts(3), demo.BatchSize(8)))
				checked := op.TryMap("check", items, func(s string) (string, error) {
					if !crashed.Load() {
						if committed.Done() {
							if crashed.CompareAndSwap(false, true) {
								return "", errCrash
							}
						} else {
							time.Sleep(2 * time.Millisecond)
						}
					}
					if n.Add(1)%itemsPerEpoch == 0 {
						clock.Advance(5 * time.Millisecond)
					}
					return s, nil
				})
				op.Output("out", checked, file.NewDirSink(out, 3, nil))
				return runnel.Run(context.Background(), flow, runneltest.Config(workers, 5*time.Millisecond, db), runnel.WithClock(clock))
			}
			if err := run(rs.from, 8); !errors.Is(err, errCrash) {
				t.Fatalf("first run: err = %v, want the simulated crash", err)
			}
			if err := run(rs.to, 500); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			var got []string
			for i := range 3 {
				b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("part-%d.txt", i)))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, strings.Fields(string(b))...)
			}
			slices.Sort(got)
			w := slices.Clone(want)
			slices.Sort(w)
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("output after crash and resume (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStopResume stops a run gracefully mid-way and resumes it on another
// number of workers: nothing is generated twice or skipped.
func TestStopResume(t *testing.T) {
	const count = 300
	want, err := collect(t, demo.NewSource(gen, demo.Seed(9), demo.Count(count)), 1)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 1); err != nil {
		t.Fatal(err)
	}
	run := func(workers int, stopAfter int64) error {
		stop := make(chan struct{})
		var n atomic.Int64
		flow := runnel.NewDataflow("d")
		items := op.Input("inp", flow, demo.NewSource(gen, demo.Seed(9), demo.Count(count), demo.Parts(2), demo.BatchSize(5)))
		seen := op.Map("seen", items, func(s string) string {
			if n.Add(1) == stopAfter {
				close(stop)
			}
			time.Sleep(50 * time.Microsecond)
			return s
		})
		op.Output("out", seen, file.NewDirSink(out, 2, nil))
		return runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Millisecond, db), runnel.WithStop(stop))
	}
	if err := run(2, 100); !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("first run: err = %v, want a graceful stop", err)
	}
	if err := run(1, -1); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	var got []string
	for i := range 2 {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("part-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Fields(string(b))...)
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output after stop and resume (-want +got):\n%s", diff)
	}
}
