package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
)

// The recovery benchmarks measure what recovery costs a flow: throughput
// with snapshots at two intervals (BenchmarkRecovery), the cost of one
// changed key in an epoch (BenchmarkSnapshot), the time to resume a flow
// with a large state (BenchmarkResume) and to repartition it
// (BenchmarkRepartition). See README.md for the targets.
// Run them without -race: go test -run '^$' -bench 'Recovery|Snapshot|Resume|Repartition' -benchtime 1x ./bench

// recoveryParts is the partition count of every recovery directory made
// here, as in the tutorial (`runnel recovery init db_dir/ 1`).
const recoveryParts = 1

// initRecovery makes a fresh recovery directory under tb's temp dir.
func initRecovery(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp(tb.TempDir(), "rec-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := recovery.Init(dir, recoveryParts); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func recoveryConfig(dir string, interval time.Duration) runnel.Config {
	cfg := runnel.DefaultConfig()
	cfg.RecoveryDir = dir
	cfg.SnapshotInterval = interval
	cfg.BackupInterval = 0
	return cfg
}

// recoveryItems makes a run last several 1s epochs, so that the 1s ratio
// shows the steady state, not the fixed cost of the final snapshot.
const recoveryItems = 100_000_000

var recoverySum = sync.OnceValue(func() int64 { return handLoop(recoveryItems) })

// BenchmarkRecovery runs BenchmarkPipeline's flow (100M items, 10k string
// keys, 1 worker) with recovery off and on, with epochs of 1s and 100ms
// (backup interval 0, a fresh directory made by Init before each timed
// run, as `runnel recovery init` is run once before a flow). Besides items/s, each recovery
// sub-benchmark reports x-off, the throughput of recovery over off's
// (targets: 100ms ≥ 0.90, 1s ≥ 0.97), and cpu-x-off, off's CPU time per
// item over recovery's (this process, user and system): the same ratio in
// work done, which a machine shared with other jobs disturbs far less.
// Both come from pairs: every iteration of a recovery sub-benchmark also
// runs the flow with recovery off, right before or right after (the order
// alternates), outside its measured time, so that a ratio compares runs
// that saw the same machine; -benchtime 3x gives three pairs.
func BenchmarkRecovery(b *testing.B) {
	// run runs the flow once, with recovery at interval (0: off), and
	// returns its wall and CPU time.
	run := func(b *testing.B, interval time.Duration) (spent, cpu time.Duration) {
		cfg := runnel.DefaultConfig()
		cfg.SnapshotInterval = time.Hour
		if interval > 0 {
			cfg = recoveryConfig(initRecovery(b), interval)
		}
		var total atomic.Int64
		flow := pipeline(recoveryItems, 1, stringKey, &total)
		start, cpu0 := time.Now(), cpuTime()
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			b.Fatal(err)
		}
		spent, cpu = time.Since(start), cpuTime()-cpu0
		if got, want := total.Load(), recoverySum(); got != want {
			b.Fatalf("sum = %d, want %d", got, want)
		}
		return spent, cpu
	}
	recoverySum() // the baseline's sum, computed once, before any timing
	b.Run("off", func(b *testing.B) {
		var spent time.Duration
		b.ResetTimer()
		for range b.N {
			t, _ := run(b, 0)
			spent += t
		}
		b.ReportMetric(float64(recoveryItems)*float64(b.N)/spent.Seconds(), "items/s")
	})
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"1s", time.Second}, {"100ms", 100 * time.Millisecond}} {
		b.Run(tc.name, func(b *testing.B) {
			var on, off, onCPU, offCPU time.Duration
			pair := 0
			b.ResetTimer()
			for range b.N {
				offFirst := pair%2 == 0
				pair++
				if offFirst {
					b.StopTimer()
					t, c := run(b, 0)
					off, offCPU = off+t, offCPU+c
					b.StartTimer()
				}
				t, c := run(b, tc.interval)
				on, onCPU = on+t, onCPU+c
				if !offFirst {
					b.StopTimer()
					t, c := run(b, 0)
					off, offCPU = off+t, offCPU+c
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(recoveryItems)*float64(b.N)/on.Seconds(), "items/s")
			b.ReportMetric(off.Seconds()/on.Seconds(), "x-off")
			if onCPU > 0 && offCPU > 0 {
				b.ReportMetric(offCPU.Seconds()/onCPU.Seconds(), "cpu-x-off")
			}
		})
	}
}

// stateFlow feeds the ints [0, n) from one partition, keyed by x % keys (an
// integer key), through a running count per key into a sink that sums the
// counts.
func stateFlow(n, keys int, total *atomic.Int64) *runnel.Dataflow {
	flow := runnel.NewDataflow("state")
	s := op.Input("gen", flow, runnel.PartitionedInput[int, int](genSource{n: n, parts: 1}))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, count)
	op.Output("sum", c, runnel.DynamicOutput[runnel.KV[int, int]](sumSink[int]{total}))
	return flow
}

func runState(tb testing.TB, n, keys int, cfg runnel.Config) int64 {
	tb.Helper()
	var total atomic.Int64
	if err := runnel.Run(context.Background(), stateFlow(n, keys, &total), cfg); err != nil {
		tb.Fatal(err)
	}
	return total.Load()
}

// dirSize is the total size of the files in dir.
func dirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			tb.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// bytesWritten is what this process has passed to write(2) so far (wchar in
// /proc/self/io), or -1 where that is not available.
func bytesWritten() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// snapshotKeys is how many distinct keys BenchmarkSnapshot changes in its
// one epoch.
const snapshotKeys = 100_000

// BenchmarkSnapshot measures the cost of one changed key in an epoch, end
// to end through a flow: 100k distinct int keys, each touched once, in one
// epoch (the final one, at end of input), with and without recovery.
// µs/key is (time with − time without) / 100k, the best of three pairs per
// iteration (target ≤ 6); it includes waiting for the commit's fsyncs.
// cpu-µs/key is the same difference in CPU time (this process, user and
// system), the best of three: what a changed key costs the machine. It also
// reports what recovery writes per changed key: bytes/key, the growth of the partition files (the WAL is
// checkpointed into them when the run closes them); written-bytes/key,
// everything the run passed to write(2) (WAL frames and the checkpoint:
// the I/O an epoch costs); and state-bytes/key, the encoded state alone
// (from recovery.Inspect).
func BenchmarkSnapshot(b *testing.B) {
	const pairs = 3
	want := int64(snapshotKeys) // every count is 1
	var perKey, perKeyCPU, growth, written, state float64
	for range b.N {
		best := [2]time.Duration{}
		bestCPU := [2]time.Duration{}
		for p := range pairs {
			for _, withRecovery := range []bool{false, true} {
				cfg := runnel.DefaultConfig()
				cfg.SnapshotInterval = time.Hour
				var dir string
				var size0, w0 int64
				if withRecovery {
					b.StopTimer()
					dir = initRecovery(b)
					cfg = recoveryConfig(dir, time.Hour)
					size0 = dirSize(b, dir)
					b.StartTimer()
					w0 = bytesWritten()
				}
				start, cpu0 := time.Now(), cpuTime()
				got := runState(b, snapshotKeys, snapshotKeys, cfg)
				d, cpu := time.Since(start), cpuTime()-cpu0
				if got != want {
					b.Fatalf("sum = %d, want %d", got, want)
				}
				i := 0
				if withRecovery {
					i = 1
				}
				if p == 0 || d < best[i] {
					best[i] = d
				}
				if p == 0 || cpu < bestCPU[i] {
					bestCPU[i] = cpu
				}
				if withRecovery && p == 0 {
					b.StopTimer()
					if w := bytesWritten(); w0 >= 0 && w >= 0 {
						written += float64(w-w0) / snapshotKeys
					}
					growth += float64(dirSize(b, dir)-size0) / snapshotKeys
					rep, err := recovery.Inspect(dir)
					if err != nil {
						b.Fatal(err)
					}
					for _, st := range rep.Steps {
						if st.ID == "state.count" {
							if st.Keys != snapshotKeys {
								b.Fatalf("recovery holds %d keys of state.count, want %d", st.Keys, snapshotKeys)
							}
							state += float64(st.Bytes) / snapshotKeys
						}
					}
					b.StartTimer()
				}
			}
		}
		perKey += (best[1] - best[0]).Seconds() * 1e6 / snapshotKeys
		perKeyCPU += (bestCPU[1] - bestCPU[0]).Seconds() * 1e6 / snapshotKeys
	}
	n := float64(b.N)
	b.ReportMetric(perKey/n, "µs/key")
	if bestCPUMeasured := cpuTime() > 0; bestCPUMeasured {
		b.ReportMetric(perKeyCPU/n, "cpu-µs/key")
	}
	b.ReportMetric(growth/n, "bytes/key")
	if written > 0 {
		b.ReportMetric(written/n, "written-bytes/key")
	}
	b.ReportMetric(state/n, "state-bytes/key")
}

// resumeKeys is the state size of BenchmarkResume.
const resumeKeys = 1_000_000

// BenchmarkResume measures how long a run takes to resume a flow whose
// state has 1M keys and that gets no new input: open the partitions, load
// and decode every key, route it, run to the end of the input (nothing new)
// and commit. The state is written once, by a real run of the same flow
// (not timed). Reports keys/s, s/resume (target < 1 s) and cpu-s/resume,
// the process's CPU time (user and system) per resume: on a shared
// machine the wall time mostly says how much of a core the run got.
func BenchmarkResume(b *testing.B) {
	dir := initRecovery(b)
	cfg := recoveryConfig(dir, time.Hour)
	if got := runState(b, resumeKeys, resumeKeys, cfg); got != resumeKeys {
		b.Fatalf("setup: sum = %d, want %d", got, resumeKeys)
	}
	rep, err := recovery.Inspect(dir)
	if err != nil {
		b.Fatal(err)
	}
	if len(rep.Steps) == 0 {
		b.Fatal("setup wrote no state")
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if got := runState(b, resumeKeys, resumeKeys, cfg); got != 0 {
			b.Fatalf("resumed run emitted counts summing to %d; it has no new input", got)
		}
	}
	cpu := cpuTime() - cpu0
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(resumeKeys/per, "keys/s")
	b.ReportMetric(per, "s/resume")
	if cpu0 > 0 {
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/resume")
	}
}

// BenchmarkRepartition measures `runnel recovery repartition` of a state
// of 1M keys (written once by a real run of stateFlow, not timed): each
// iteration moves the directory from 1 to 4 partitions and back, checking
// that every key is kept. Reports s/repartition (one move) and keys/s.
func BenchmarkRepartition(b *testing.B) {
	dir := initRecovery(b)
	cfg := recoveryConfig(dir, time.Hour)
	if got := runState(b, resumeKeys, resumeKeys, cfg); got != resumeKeys {
		b.Fatalf("setup: sum = %d, want %d", got, resumeKeys)
	}
	moves := 0
	for b.Loop() {
		for _, to := range []int{4, recoveryParts} {
			res, err := recovery.Repartition(dir, to)
			if err != nil {
				b.Fatal(err)
			}
			// Keys counts positions too: the input's and the sink's.
			if res.Keys < resumeKeys || res.To != to {
				b.Fatalf("repartition to %d: %+v, want %d keys", to, res, resumeKeys)
			}
			moves++
		}
	}
	per := b.Elapsed().Seconds() / float64(moves)
	b.ReportMetric(per, "s/repartition")
	b.ReportMetric(resumeKeys/per, "keys/s")
}

// TestRecoveryBenchFlows checks on small inputs what the benchmarks rely
// on: the state flow snapshots every key, and a resumed run holds every
// key's state (one more item per key makes every count 2) and reads only
// the new input.
func TestRecoveryBenchFlows(t *testing.T) {
	const keys = 300
	dir := initRecovery(t)
	cfg := recoveryConfig(dir, time.Hour)
	if got := runState(t, keys, keys, cfg); got != keys {
		t.Fatalf("first run: sum = %d, want %d", got, keys)
	}
	rep, err := recovery.Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, st := range rep.Steps {
		if st.ID == "state.count" {
			stored = st.Keys
		}
	}
	if stored != keys {
		t.Fatalf("recovery holds %d keys of state.count, want %d:\n%s", stored, keys, rep)
	}
	if got := runState(t, keys, keys, cfg); got != 0 {
		t.Fatalf("resume with no new input: sum = %d, want 0", got)
	}
	if got := runState(t, 2*keys, keys, cfg); got != 2*keys {
		t.Fatalf("continuation: sum = %d, want %d (every count 2)", got, 2*keys)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "part-*.sqlite3")); len(files) != recoveryParts {
		t.Fatalf("partitions: %v", files)
	}
}
