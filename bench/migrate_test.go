package bench

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
)

// migrateKeys is the state size of BenchmarkMigrate.
const migrateKeys = 200_000

// countV2 is stateFlow's state after a change of type.
type countV2 struct {
	N int `cbor:"n"`
}

// migratedStateFlow is stateFlow with its count kept in a countV2, and a
// migration from stateFlow's int.
func migratedStateFlow(n, keys int, total *atomic.Int64) *runnel.Dataflow {
	flow := runnel.NewDataflow("state")
	s := op.Input("gen", flow, runnel.PartitionedInput[int, int](genSource{n: n, parts: 1}))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(c countV2, _ bool, _ int) (countV2, bool, int) {
		c.N++
		return c, true, c.N
	}, op.MigrateState(func(n int) (countV2, error) { return countV2{N: n}, nil }))
	op.Output("sum", c, runnel.DynamicOutput[runnel.KV[int, int]](sumSink[int]{total}))
	return flow
}

// BenchmarkMigrate resumes a flow whose state has 200k keys and that gets
// no new input, from the same directory each time (restored from a copy
// outside the measured time): "resume" with the state type unchanged,
// "migrate" with a changed type and a migration, which converts every key
// and writes all of them again in its first epoch. Each reports s/run and
// cpu-s/run (the process's CPU time per run); migrate reports x-resume,
// its time over resume's in the same run.
func BenchmarkMigrate(b *testing.B) {
	dir := initRecovery(b)
	cfg := recoveryConfig(dir, time.Hour)
	if got := runState(b, migrateKeys, migrateKeys, cfg); got != migrateKeys {
		b.Fatalf("setup: sum = %d, want %d", got, migrateKeys)
	}
	orig := b.TempDir()
	copyFiles(b, dir, orig)
	var resumeSecs float64
	for _, tc := range []struct {
		name string
		flow func(n, keys int, total *atomic.Int64) *runnel.Dataflow
	}{{"resume", stateFlow}, {"migrate", migratedStateFlow}} {
		b.Run(tc.name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				copyFiles(b, orig, dir)
				b.StartTimer()
				cpu0 := cpuTime()
				var total atomic.Int64
				if err := runnel.Run(context.Background(), tc.flow(migrateKeys, migrateKeys, &total), cfg); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - cpu0
				if total.Load() != 0 {
					b.Fatalf("resumed run emitted counts summing to %d; it has no new input", total.Load())
				}
			}
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(per, "s/run")
			if cpu > 0 {
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/run")
			}
			b.ReportMetric(migrateKeys/per, "keys/s")
			if tc.name == "resume" {
				resumeSecs = per
			} else if resumeSecs > 0 {
				b.ReportMetric(per/resumeSecs, "x-resume")
			}
		})
	}
}

// copyFiles copies the files of directory from into directory to.
func copyFiles(tb testing.TB, from, to string) {
	tb.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		tb.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
