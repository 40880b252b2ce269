package runnel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/runneltest"
)

// familiesReference is the output of one uninterrupted run of the
// families flow, grouped by step and key.
func familiesReference(t *testing.T, n, parts, keys int) map[string][]string {
	t.Helper()
	sink := newMemSink(2)
	src := &ctlSource{n: n, parts: parts, batch: 7, cut: -1}
	if err := runnel.Run(context.Background(), familiesFlow(runnel.PartitionedInput[int, int](src), keys, sink), runneltest.Config(1, time.Hour, "")); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	return byStepKey(sink.Items())
}

// TestGracefulStopEveryOperator stops a run of the families flow mid-input
// (WithStop) and resumes it: the stopped run emits nothing that only the
// end of input may emit (no OnEOF hook, *Final, final-mode join, Collect
// flush or open window), and the two runs together emit exactly what one
// uninterrupted run emits, per step and key, in order: no result twice,
// none early, none missing.
func TestGracefulStopEveryOperator(t *testing.T) {
	const n, parts, keys = 300, 2, 6
	want := familiesReference(t, n, parts, keys)
	for _, workers := range [][2]int{{1, 1}, {2, 2}, {3, 1}, {1, 3}} {
		t.Run(fmt.Sprintf("w%d-then-w%d", workers[0], workers[1]), func(t *testing.T) {
			dir := initDir(t, 2)
			sink := newMemSink(2)
			stop := make(chan struct{})
			src := &ctlSource{n: n, parts: parts, batch: 3, pace: 100 * time.Microsecond, cut: n / 2, stop: func() { close(stop) }}
			err := runnel.Run(context.Background(), familiesFlow(runnel.PartitionedInput[int, int](src), keys, sink),
				runneltest.Config(workers[0], 2*time.Millisecond, dir), runnel.WithStop(stop))
			var stopped *runnel.InterruptedError
			if !errors.As(err, &stopped) || stopped.Resume < 2 {
				t.Fatalf("stopped run: %v, want an interrupted error with a committed epoch", err)
			}
			first := sink.Items()
			if finals := finalsIn(first); len(finals) > 0 {
				t.Errorf("the stopped run emitted %d end-of-input results, for example %+v", len(finals), finals[0])
			}
			if past := sink.Unsnapshotted(); len(past) > 0 {
				t.Errorf("the stopped run emitted %d items past its last epoch, for example %+v", len(past), past[0])
			}
			src = &ctlSource{n: n, parts: parts, batch: 5, cut: -1}
			if err := runnel.Run(context.Background(), familiesFlow(runnel.PartitionedInput[int, int](src), keys, sink),
				runneltest.Config(workers[1], 2*time.Millisecond, dir)); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if diff := cmp.Diff(want, byStepKey(sink.Items())); diff != "" {
				t.Errorf("output of the stopped and resumed runs (-uninterrupted +got):\n%s", diff)
			}
			t.Logf("%d items before the stop, %d in all", len(first), len(sink.Items()))
		})
	}
}
