package op_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// crashBuild builds a test flow whose sources take opts (FailAt for the
// crashing run) and returns its sink.
type crashBuild[T any] func(flow *runnel.Dataflow, opts ...runneltest.SourceOpt) *runneltest.Sink[T]

// crashAndResume runs build three times: uninterrupted without recovery
// (full), then over a fresh recovery directory crashing at input index
// failAt on 2 workers (first), then resumed on 3 workers without the crash
// (second).
func crashAndResume[T any](t *testing.T, failAt int, build crashBuild[T]) (full, first, second []T) {
	t.Helper()
	pace := []runneltest.SourceOpt{runneltest.BatchSize(4), runneltest.Pace(500 * time.Microsecond)}
	flow := runnel.NewDataflow("crash")
	sink := build(flow, pace...)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, "")); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	full = sink.Items()

	dir := t.TempDir()
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	flow = runnel.NewDataflow("crash")
	sink = build(flow, append(pace, runneltest.FailAt(failAt))...)
	err := runnel.Run(context.Background(), flow, runneltest.Config(2, 2*time.Millisecond, dir))
	if !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("crashing run: err = %v, want ErrCrash", err)
	}
	first = sink.Items()
	rep, err := recovery.Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	lastResume = rep.ResumeEpoch

	flow = runnel.NewDataflow("crash")
	sink = build(flow, pace...)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(3, 2*time.Millisecond, dir)); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	second = sink.Items()
	t.Logf("uninterrupted %d items, crashed %d, resumed %d", len(full), len(first), len(second))
	return full, first, second
}

// lastResume is the epoch the last crashAndResume resumed from. Whether an
// epoch was committed before the crash depends on timing (a loaded machine
// may not get there), so checks that the resumed run did not start over
// apply only when it is above 1.
var lastResume uint64

// checkCombined checks at-least-once output per key: the crashed run's
// output is a prefix of the uninterrupted run's, the resumed run's a
// suffix, and together (the replayed overlap counted once) they are all
// of it.
func checkCombined[K runnel.Key, V any](t *testing.T, full, first, second []runnel.KV[K, V]) {
	t.Helper()
	f, a, b := perKey(full), perKey(first), perKey(second)
	for k, want := range f {
		x, y := a[k], b[k]
		if len(x)+len(y) < len(want) {
			t.Errorf("key %v: %d + %d items, want at least %d in all", k, len(x), len(y), len(want))
			continue
		}
		if diff := gocmp.Diff(want[:len(x)], x); diff != "" {
			t.Errorf("key %v: crashed run is not a prefix (-want +got):\n%s", k, diff)
		}
		if diff := gocmp.Diff(want[len(want)-len(y):], y); diff != "" {
			t.Errorf("key %v: resumed run is not a suffix (-want +got):\n%s", k, diff)
		}
	}
	for k := range a {
		if _, ok := f[k]; !ok {
			t.Errorf("key %v: output only in the crashed run", k)
		}
	}
	for k := range b {
		if _, ok := f[k]; !ok {
			t.Errorf("key %v: output only in the resumed run", k)
		}
	}
}

func TestCrashResumeStatefulFlatMap(t *testing.T) {
	type kv = runnel.KV[string, int]
	full, first, second := crashAndResume(t, 70, func(flow *runnel.Dataflow, opts ...runneltest.SourceOpt) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(120), opts...))
		k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint("k", x%5) })
		out := op.StatefulFlatMap("sum", k, func(sum int, _ bool, x int) (int, bool, []int) {
			return sum + x, true, []int{sum + x, x}
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", out, sink)
		return sink
	})
	if len(first) >= len(full) {
		t.Fatalf("the crash came too late: %d of %d items", len(first), len(full))
	}
	if lastResume > 1 && len(second) >= len(full) {
		t.Errorf("the resumed run emitted all %d items: it did not resume from a snapshot", len(second))
	}
	checkCombined(t, full, first, second)
}

func TestCrashResumeCollect(t *testing.T) {
	type kv = runnel.KV[int, []int]
	full, first, second := crashAndResume(t, 50, func(flow *runnel.Dataflow, opts ...runneltest.SourceOpt) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(100), opts...))
		k := op.KeyOn("key", s, func(x int) int { return x % 3 })
		sink := runneltest.NewSink[kv]()
		op.Output("out", op.Collect("collect", k, 0, 4), sink)
		return sink
	})
	checkCombined(t, full, first, second)
}

func TestCrashResumeFinals(t *testing.T) {
	type kv = runnel.KV[string, string]
	var read *atomic.Int64 // items read by the latest run
	full, first, second := crashAndResume(t, 60, func(flow *runnel.Dataflow, opts ...runneltest.SourceOpt) *runneltest.Sink[kv] {
		read = new(atomic.Int64)
		n := read
		s := op.Input("inp", flow, runneltest.NewSource(ints(100), opts...))
		s = op.Inspect("read", s, func(int) { n.Add(1) })
		k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint(x % 4) })
		fold := op.FoldFinal("fold", k, func() []int { return nil }, func(acc []int, x int) []int { return append(acc, x) })
		sum := op.ReduceFinal("sum", k, func(a, b int) int { return a + b })
		count := op.CountFinal("count", s, func(x int) string { return fmt.Sprint(x % 3) })
		str := func(name string) func(kv runnel.KV[string, int]) kv {
			return func(x runnel.KV[string, int]) kv { return kv2(name+x.Key, fmt.Sprint(x.Value)) }
		}
		out := op.Merge("all",
			op.Map("fold_s", fold, func(x runnel.KV[string, []int]) kv { return kv2("fold"+x.Key, fmt.Sprint(x.Value)) }),
			op.Map("sum_s", sum, str("sum")),
			op.Map("count_s", count, str("count")))
		sink := runneltest.NewSink[kv]()
		op.Output("out", out, sink)
		return sink
	})
	if len(first) != 0 {
		t.Errorf("the crashed run emitted final values: %v", first)
	}
	if n := read.Load(); lastResume > 1 && n >= 100 {
		t.Errorf("the resumed run read all %d items: it did not resume from a snapshot", n)
	}
	slices.SortFunc(full, kvCompare)
	slices.SortFunc(second, kvCompare)
	if diff := gocmp.Diff(full, second); diff != "" {
		t.Errorf("final values differ (-uninterrupted +resumed):\n%s", diff)
	}
	if len(full) != 4+4+3 {
		t.Errorf("got %d final values", len(full))
	}
}

func TestCrashResumeJoin(t *testing.T) {
	type kv = runnel.KV[int, string]
	for _, opts := range []op.JoinOpts{
		{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal},
		{Insert: op.JoinInsertLast, Emit: op.JoinEmitComplete},
	} {
		t.Run(opts.Insert.String()+"/"+opts.Emit.String(), func(t *testing.T) {
			full, first, second := crashAndResume(t, 50, func(flow *runnel.Dataflow, o ...runneltest.SourceOpt) *runneltest.Sink[kv] {
				ls := op.Input("l", flow, runneltest.NewSource(ints(80), o...))
				// The right side never crashes: strip FailAt by building
				// it with pacing only.
				rs := op.Input("r", flow, runneltest.NewSource(ints(80), runneltest.BatchSize(3), runneltest.Pace(300*time.Microsecond)))
				mod := 80 // complete: one value per side and key
				if opts.Emit == op.JoinEmitFinal {
					mod = 7 // final product: many values per side and key
				}
				l := op.KeyOn("lk", ls, func(x int) int { return x % mod })
				r := op.KeyOn("rk", rs, func(x int) int { return x % mod })
				j := op.Join("join", l, r, opts)
				sink := runneltest.NewSink[kv]()
				op.Output("out", op.MapValue("s", j, func(v op.Joined2[int, int]) string { return v.String() }), sink)
				return sink
			})
			slices.SortFunc(full, kvCompare)
			if opts.Emit == op.JoinEmitFinal {
				if len(first) != 0 {
					t.Errorf("the crashed run emitted final rows")
				}
				slices.SortFunc(second, kvCompare)
				if diff := gocmp.Diff(full, second); diff != "" {
					t.Errorf("final rows differ (-uninterrupted +resumed):\n%s", diff)
				}
				return
			}
			// Complete mode, one value per side and key: each key's row
			// is emitted once, or twice if replayed after the crash.
			all := slices.Concat(first, second)
			slices.SortFunc(all, kvCompare)
			all = slices.CompactFunc(all, func(a, b kv) bool { return kvCompare(a, b) == 0 })
			if diff := gocmp.Diff(full, all); diff != "" {
				t.Errorf("combined rows differ (-uninterrupted +combined):\n%s", diff)
			}
		})
	}
}
