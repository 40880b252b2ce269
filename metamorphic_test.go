package runnel_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestMetamorphicRecovery runs the counting flow as a sequence of runs over
// one recovery directory, each with a random worker count, batch size and
// snapshot interval, all but the last crashing at a random input index.
// Whatever the sequence, the final state per key must equal that of one
// clean run. On failure rapid prints the sequence and a seed to replay it
// (go test -run TestMetamorphicRecovery -rapid.seed=N).
func TestMetamorphicRecovery(t *testing.T) {
	root := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(20, 200).Draw(t, "items")
		keys := rapid.IntRange(1, 9).Draw(t, "keys")
		parts := rapid.IntRange(1, 4).Draw(t, "partitions")
		recParts := rapid.IntRange(1, 3).Draw(t, "recovery partitions")
		crashes := rapid.IntRange(0, 3).Draw(t, "crashes")
		tmp, err := os.MkdirTemp(root, "run")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir := filepath.Join(tmp, "db")
		if err := recovery.Init(dir, recParts); err != nil {
			t.Fatal(err)
		}
		var last []countOut
		for run := 0; run <= crashes; run++ {
			workers := rapid.IntRange(1, 4).Draw(t, fmt.Sprint("workers ", run))
			batch := rapid.IntRange(1, 20).Draw(t, fmt.Sprint("batch ", run))
			epoch := time.Duration(rapid.IntRange(1, 20).Draw(t, fmt.Sprint("epoch ms ", run))) * time.Millisecond
			opts := []runneltest.SourceOpt{runneltest.Parts(parts), runneltest.BatchSize(batch), runneltest.Pace(200 * time.Microsecond)}
			crash := run < crashes
			if crash {
				opts = append(opts, runneltest.FailAt(rapid.IntRange(0, n-1).Draw(t, fmt.Sprint("crash at ", run))))
			}
			flow, sink := countFlow(seq(n), keys, opts...)
			err := runnelRun(flow, runneltest.Config(workers, epoch, dir))
			switch {
			case crash && !errors.Is(err, runneltest.ErrCrash) && err != nil:
				t.Fatalf("run %d: %v", run, err)
			case !crash && err != nil:
				t.Fatalf("last run: %v", err)
			}
			last = append(last, sink.Items()...)
		}
		if diff := cmp.Diff(expectedState(n, keys), finalState(last)); diff != "" {
			t.Fatalf("final state (-want +got):\n%s", diff)
		}
	})
}
