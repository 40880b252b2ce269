package runnel_test

// The cases of Bytewax's recovery and execution tests
// (pytests/test_recovery.py, pytests/test_testing.py' runs,
// pytests/test_execution.py), run on Runnel with the same inputs and
// expected outputs; each test names the Bytewax test it mirrors.
//
// Bytewax's TestingSource.EOF() ends a run's input: here a run reads a
// prefix of the items and the next run (a continuation) a longer one.
// TestingSource.ABORT() is runneltest.FailAt. Bytewax's epoch_interval=0
// (a snapshot after every batch) is refused by Runnel (-s must be
// positive): epochPerBatch gets the same effect with a manual clock.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// passFlow is Bytewax's input → output flow over a TestingSource.
func passFlow(clk *runneltest.Clock, items []int, opts ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[int]) {
	flow := runnel.NewDataflow("test_df")
	s := op.Input("inp", flow, runneltest.NewSource(items, opts...))
	if clk != nil {
		s = advanceEach(clk, s)
	}
	sink := runneltest.NewSink[int]()
	op.Output("out", s, sink)
	return flow, sink
}

// advanceEach moves the manual clock by one snapshot interval after each
// item: the worker closes the epoch before it reads the next batch.
func advanceEach[T any](clk *runneltest.Clock, s runnel.Stream[T]) runnel.Stream[T] {
	return op.Inspect("advance", s, func(T) { clk.Advance(time.Second) })
}

// epochPerBatch runs flow with a snapshot after every batch, as Bytewax's
// epoch_interval=0: a one-second interval on a manual clock that the flow
// advances (advanceEach), and at most one uncommitted epoch, so that every
// closed epoch is committed before the next batch is read (and before a
// FailAt fires).
func epochPerBatch(flow *runnel.Dataflow, clk *runneltest.Clock, workers int, dir string) error {
	return runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Second, dir),
		runnel.WithClock(clk), runnel.WithMaxUncommittedEpochs(1))
}

func newClock() *runneltest.Clock {
	return runneltest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
}

// longEpochs is Bytewax's epoch_interval of 5s in its tests: no snapshot
// before the end of input.
func longEpochs(dir string) runnel.Config { return runneltest.Config(1, time.Hour, dir) }

func wantItems(t *testing.T, what string, want, got []int) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// test_abort_no_snapshots: the abort comes before any snapshot, so the
// resumed run replays all input.
func TestBytewaxAbortNoSnapshots(t *testing.T) {
	dir := initDir(t, 1)
	inp := []int{0, 1, 2, 3, 4}
	flow, sink := passFlow(nil, inp, runneltest.FailAt(3))
	if err := run(t, flow, longEpochs(dir)); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("first run: %v, want the abort", err)
	}
	wantItems(t, "first run", []int{0, 1, 2}, sink.Items())
	flow, sink = passFlow(nil, inp)
	if err := run(t, flow, longEpochs(dir)); err != nil {
		t.Fatal(err)
	}
	wantItems(t, "resumed run", []int{0, 1, 2, 3, 4}, sink.Items())
}

// test_abort_with_snapshots (and test_testing_source_abort_run, with
// batches of two): with a snapshot after every batch, the resumed run
// continues after the last item read, "as if it was an EOF".
func TestBytewaxAbortWithSnapshots(t *testing.T) {
	for _, batch := range []int{1, 2} {
		t.Run(fmt.Sprintf("batch_size=%d", batch), func(t *testing.T) {
			dir := initDir(t, 1)
			inp := []int{0, 1, 2, 3, 4}
			clk := newClock()
			flow, sink := passFlow(clk, inp, runneltest.FailAt(3), runneltest.BatchSize(batch))
			if err := epochPerBatch(flow, clk, 1, dir); !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("first run: %v, want the abort", err)
			}
			wantItems(t, "first run", []int{0, 1, 2}, sink.Items())
			flow, sink = passFlow(clk, inp, runneltest.BatchSize(batch))
			if err := epochPerBatch(flow, clk, 1, dir); err != nil {
				t.Fatal(err)
			}
			wantItems(t, "resumed run", []int{3, 4}, sink.Items())
		})
	}
}

// test_continuation (and test_testing_source_eof_run): each continuation
// resumes at the last snapshot, the one taken at the end of the previous
// run's input; runs with no new input emit nothing.
func TestBytewaxContinuation(t *testing.T) {
	dir := initDir(t, 1)
	inp := []int{0, 1, 2, 3, 4}
	for i, tc := range []struct {
		read int
		want []int
	}{{3, []int{0, 1, 2}}, {5, []int{3, 4}}, {5, nil}, {5, nil}} {
		flow, sink := passFlow(nil, inp[:tc.read], runneltest.BatchSize(2))
		if err := run(t, flow, longEpochs(dir)); err != nil {
			t.Fatal(err)
		}
		wantItems(t, fmt.Sprintf("run %d", i+1), tc.want, sink.Items())
	}
}

// test_continuation_with_delayed_backup: a backup interval of two epochs
// keeps older snapshots around, and each continuation still resumes from
// the latest one.
func TestBytewaxContinuationWithDelayedBackup(t *testing.T) {
	dir := initDir(t, 1)
	cfg := longEpochs(dir)
	cfg.SnapshotInterval = 5 * time.Second
	cfg.BackupInterval = 10 * time.Second
	inp := []int{0, 1, 2, 3, 4}
	for i := range 6 {
		flow, sink := passFlow(nil, inp[:min(i+1, len(inp))])
		if err := run(t, flow, cfg); err != nil {
			t.Fatal(err)
		}
		var want []int
		if i < len(inp) {
			want = []int{i}
		}
		wantItems(t, fmt.Sprintf("run %d", i+1), want, sink.Items())
	}
}

type userMax = runnel.KV[string, int]

// keepMaxFlow is Bytewax's build_keep_max_dataflow: a running maximum per
// key (stateful_map).
func keepMaxFlow(clk *runneltest.Clock, inp []userMax, opts ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[userMax]) {
	flow := runnel.NewDataflow("test_df")
	s := op.Input("inp", flow, runneltest.NewSource(inp, opts...))
	if clk != nil {
		s = advanceEach(clk, s)
	}
	s = op.StatefulMap("max", s, func(m int, _ bool, v int) (int, bool, int) {
		m = max(m, v)
		return m, true, m
	})
	sink := runneltest.NewSink[userMax]()
	op.Output("out", s, sink)
	return flow, sink
}

func sortedKV(items []userMax) []userMax {
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b userMax) int { return cmpString(a.Key, b.Key) })
	return items
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

// test_rescale: three continuations on 3, then 5, then 1 workers over
// three partitions; each key's maximum carries over. (Across workers the
// order of keys is not defined, in Bytewax either: compared per key.)
func TestBytewaxRescale(t *testing.T) {
	dir := initDir(t, 3)
	inp := []userMax{{Key: "a", Value: 4}, {Key: "b", Value: 4}, {Key: "a", Value: 1}, {Key: "b", Value: 5}, {Key: "a", Value: 8}, {Key: "b", Value: 1}}
	clk := newClock()
	for i, tc := range []struct {
		workers, read int
		want          []userMax
	}{
		{3, 2, []userMax{{Key: "a", Value: 4}, {Key: "b", Value: 4}}},
		{5, 4, []userMax{{Key: "a", Value: 4}, {Key: "b", Value: 5}}},
		{1, 6, []userMax{{Key: "a", Value: 8}, {Key: "b", Value: 5}}},
	} {
		flow, sink := keepMaxFlow(clk, inp[:tc.read])
		if err := epochPerBatch(flow, clk, tc.workers, dir); err != nil {
			t.Fatalf("run %d on %d workers: %v", i+1, tc.workers, err)
		}
		if diff := cmp.Diff(tc.want, sortedKV(sink.Items())); diff != "" {
			t.Errorf("run %d on %d workers (-want +got):\n%s", i+1, tc.workers, diff)
		}
	}
}

// test_no_parts: a recovery directory that was never initialised is an
// error, not a fresh start.
func TestBytewaxNoParts(t *testing.T) {
	dir := t.TempDir()
	flow, _ := keepMaxFlow(nil, nil)
	err := run(t, flow, longEpochs(dir))
	if !errors.Is(err, recovery.ErrNotInitialized) {
		t.Fatalf("err = %v, want ErrNotInitialized", err)
	}
}

// test_missing_parts: a deleted partition is refused.
func TestBytewaxMissingParts(t *testing.T) {
	dir := initDir(t, 3)
	if err := os.Remove(filepath.Join(dir, "part-0.sqlite3")); err != nil {
		t.Fatal(err)
	}
	flow, _ := keepMaxFlow(nil, nil)
	err := run(t, flow, longEpochs(dir))
	if !errors.Is(err, recovery.ErrPartitionMismatch) {
		t.Fatalf("err = %v, want ErrPartitionMismatch", err)
	}
}

// test_inconsistent_parts: after a run that committed epochs (backup
// interval 0), one partition is put back to its freshly initialised copy:
// the resume is refused, not started from scratch.
func TestBytewaxInconsistentParts(t *testing.T) {
	dir := initDir(t, 3)
	run0 := t.TempDir()
	copyFile(t, filepath.Join(dir, "part-0.sqlite3"), filepath.Join(run0, "part-0.sqlite3"))
	inp := []userMax{{Key: "a", Value: 4}, {Key: "b", Value: 4}, {Key: "a", Value: 1}, {Key: "b", Value: 5}}
	clk := newClock()
	flow, sink := keepMaxFlow(clk, inp, runneltest.FailAt(2))
	if err := epochPerBatch(flow, clk, 1, dir); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("first run: %v, want the abort", err)
	}
	if diff := cmp.Diff([]userMax{{Key: "a", Value: 4}, {Key: "b", Value: 4}}, sink.Items()); diff != "" {
		t.Errorf("first run (-want +got):\n%s", diff)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "part-0.sqlite3"+suffix))
	}
	copyFile(t, filepath.Join(run0, "part-0.sqlite3"), filepath.Join(dir, "part-0.sqlite3"))
	flow, sink = keepMaxFlow(clk, inp)
	err := epochPerBatch(flow, clk, 1, dir)
	if !errors.Is(err, recovery.ErrPartitionMismatch) && !errors.Is(err, recovery.ErrStale) {
		t.Fatalf("resume with a reset partition: err = %v, want a refusal", err)
	}
	if len(sink.Items()) != 0 {
		t.Errorf("refused run emitted %v", sink.Items())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// test_run: a map over range(3), on one and several workers.
func TestBytewaxRun(t *testing.T) {
	for _, workers := range []int{1, 3} {
		flow := runnel.NewDataflow("test_df")
		s := op.Map("add_one", op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}, runneltest.Parts(3))), func(x int) int { return x + 1 })
		sink := runneltest.NewSink[int]()
		op.Output("out", s, sink)
		if err := runneltest.Run(flow, workers); err != nil {
			t.Fatal(err)
		}
		got := sink.Items()
		slices.Sort(got)
		wantItems(t, fmt.Sprintf("%d workers", workers), []int{1, 2, 3}, got)
	}
}

type customError struct {
	Msg string
	B   int
}

func (e *customError) Error() string { return e.Msg }

// test_reraises_custom_exception: the user's error comes back from Run
// as itself (errors.As), wrapped with the step, and the run stops early.
func TestBytewaxReraisesCustomError(t *testing.T) {
	flow := runnel.NewDataflow("test_df")
	s := op.TryMap("explode", op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2})), func(x int) (int, error) {
		if x == 0 {
			return 0, &customError{"BOOM", 1}
		}
		return x, nil
	})
	sink := runneltest.NewSink[int]()
	op.Output("out", s, sink)
	err := runneltest.Run(flow, 1)
	var ce *customError
	if !errors.As(err, &ce) || ce.B != 1 {
		t.Fatalf("err = %v, want the custom error", err)
	}
	var se *runnel.StepError
	if !errors.As(err, &se) || se.Step != "test_df.explode" {
		t.Errorf("err = %v, want a StepError naming test_df.explode", err)
	}
	if n := len(sink.Items()); n >= 3 {
		t.Errorf("%d items out, want fewer than 3", n)
	}
}

// test_flow_requires_input, test_flow_requires_output,
// test_step_id_check_periods: flows that cannot run are refused before
// they start, with the reason. (test_step_id_check_str, test_check_non_
// stream: not expressible in Go, the compiler refuses them.)
func TestBytewaxFlowChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  string
		build func(*runnel.Dataflow)
	}{
		{"test_flow_requires_input", "has no input step", func(*runnel.Dataflow) {}},
		{"test_flow_requires_output", "has no output step", func(flow *runnel.Dataflow) {
			op.Input("inp", flow, runneltest.NewSource([]int{0, 1, 2}))
		}},
		{"test_step_id_check_periods", `step id "1.5" contains '.'`, func(flow *runnel.Dataflow) {
			op.Output("out", op.Input("1.5", flow, runneltest.NewSource([]int{0})), runneltest.NewSink[int]())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := runnel.NewDataflow("test_df")
			tc.build(flow)
			if err := runneltest.Run(flow, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}
