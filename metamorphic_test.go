package runnel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestMetamorphicRecovery runs the families flow (one step of every
// stateful operator family) as a sequence of runs over one recovery
// directory, each with a random worker count, batch size and snapshot
// interval, each but the last ending in a crash or a graceful stop at a
// random input index. Whatever the sequence, the whole output (written to
// an exactly-once sink) must equal one uninterrupted run's, per step and
// key and in order: a result emitted twice, early (a "final" at a stop) or
// not at all fails, not only a wrong final state. On failure rapid prints
// the sequence and a seed to replay it (go test -run
// TestMetamorphicRecovery -rapid.seed=N).
func TestMetamorphicRecovery(t *testing.T) {
	root := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(20, 200).Draw(t, "items")
		parts := rapid.IntRange(1, 4).Draw(t, "partitions")
		// Each key's items come from one partition, so that a step's
		// output per key does not depend on how partitions interleave.
		keys := parts * rapid.IntRange(1, 3).Draw(t, "keys per partition")
		recParts := rapid.IntRange(1, 3).Draw(t, "recovery partitions")
		interruptions := rapid.IntRange(0, 3).Draw(t, "interruptions")
		tmp, err := os.MkdirTemp(root, "run")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir := filepath.Join(tmp, "db")
		if err := recovery.Init(dir, recParts); err != nil {
			t.Fatal(err)
		}

		ref := newMemSink(2)
		refSrc := &ctlSource{n: n, parts: parts, batch: 1, cut: -1}
		if err := runnel.Run(context.Background(), familiesFlow(runnel.PartitionedInput[int, int](refSrc), keys, ref),
			runneltest.Config(1, time.Hour, "")); err != nil {
			t.Fatalf("uninterrupted run: %v", err)
		}

		sink := newMemSink(2)
		for run := 0; run <= interruptions; run++ {
			workers := rapid.IntRange(1, 4).Draw(t, fmt.Sprint("workers ", run))
			batch := rapid.IntRange(1, 20).Draw(t, fmt.Sprint("batch ", run))
			epoch := time.Duration(rapid.IntRange(1, 20).Draw(t, fmt.Sprint("epoch ms ", run))) * time.Millisecond
			src := &ctlSource{n: n, parts: parts, batch: batch, pace: 200 * time.Microsecond, cut: -1}
			var opts []runnel.RunOption
			how := "end"
			if run < interruptions {
				src.cut = rapid.IntRange(0, n-1).Draw(t, fmt.Sprint("interrupt at ", run))
				if rapid.Bool().Draw(t, fmt.Sprint("stop (not crash) ", run)) {
					how = "stop"
					stop := make(chan struct{})
					src.stop = func() { close(stop) }
					opts = append(opts, runnel.WithStop(stop))
				} else {
					how = "crash"
				}
			}
			err := runnel.Run(context.Background(), familiesFlow(runnel.PartitionedInput[int, int](src), keys, sink),
				runneltest.Config(workers, epoch, dir), opts...)
			switch how {
			case "crash":
				// A crash at an index the run never reaches (its
				// partition was already read) lets the run end.
				if err != nil && !errors.Is(err, errCut) {
					t.Fatalf("run %d: %v", run, err)
				}
			case "stop":
				if !errors.Is(err, runnel.ErrInterrupted) {
					t.Fatalf("run %d: %v, want a graceful stop", run, err)
				}
				if past := sink.Unsnapshotted(); len(past) > 0 {
					t.Fatalf("stopped run %d emitted %d items past its last epoch, for example %+v", run, len(past), past[0])
				}
			default:
				if err != nil {
					t.Fatalf("last run: %v", err)
				}
			}
		}
		if diff := cmp.Diff(byStepKey(ref.Items()), byStepKey(sink.Items())); diff != "" {
			t.Fatalf("output per step and key (-uninterrupted +interrupted and resumed):\n%s", diff)
		}
	})
}
