package runnel_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/proctest"
	"github.com/runnel-dev/runnel/internal/tuning"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) {
	// Property tests run real flows (and SQLite under -race): keep rapid's
	// example count small unless asked for more with -rapid.checks.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		_ = flag.Set("rapid.checks", "20")
	}
	proctest.Main(m, &binaries)
}

// Counts is the per-key state of the test flows.
type Counts struct {
	Count int
	Sum   int
}

type countOut = runnel.KV[int, Counts]

// countFlow counts and sums the items per key (item mod keys).
func countFlow(items []int, keys int, opts ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[countOut]) {
	flow := runnel.NewDataflow("counts")
	s := op.Input("inp", flow, runneltest.NewSource(items, opts...))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(st Counts, _ bool, x int) (Counts, bool, Counts) {
		st.Count++
		st.Sum += x
		return st, true, st
	})
	sink := runneltest.NewSink[countOut]()
	op.Output("out", c, sink)
	return flow, sink
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// finalState is each key's last emitted state.
func finalState(items []countOut) map[int]Counts {
	m := map[int]Counts{}
	for _, kv := range items {
		m[kv.Key] = kv.Value
	}
	return m
}

func expectedState(n, keys int) map[int]Counts {
	m := map[int]Counts{}
	for x := range n {
		c := m[x%keys]
		c.Count++
		c.Sum += x
		m[x%keys] = c
	}
	return m
}

func initDir(t *testing.T, parts int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, parts); err != nil {
		t.Fatal(err)
	}
	return dir
}

func run(t *testing.T, flow *runnel.Dataflow, cfg runnel.Config) error {
	t.Helper()
	return runnelRun(flow, cfg)
}

func runnelRun(flow *runnel.Dataflow, cfg runnel.Config) error {
	return runnel.Run(context.Background(), flow, cfg)
}

// TestCrashAndResume crashes a flow mid-input and resumes it: the final
// state per key equals an uninterrupted run's, and the resumed run does not
// re-read everything.
func TestCrashAndResume(t *testing.T) {
	const n, keys = 600, 5
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("w", workers), func(t *testing.T) {
			dir := initDir(t, 3)
			cfg := runneltest.Config(workers, 5*time.Millisecond, dir)
			flow, sink := countFlow(seq(n), keys, runneltest.Parts(3), runneltest.BatchSize(5),
				runneltest.Pace(2*time.Millisecond), runneltest.FailAt(n/2))
			err := run(t, flow, cfg)
			if !errors.Is(err, runneltest.ErrCrash) || !strings.Contains(err.Error(), "counts.inp") {
				t.Fatalf("first run: err = %v, want the simulated crash in counts.inp", err)
			}
			first := len(sink.Items())
			rep, err := recovery.Inspect(dir)
			if err != nil {
				t.Fatal(err)
			}
			resumed := rep.ResumeEpoch
			flow, sink = countFlow(seq(n), keys, runneltest.Parts(3), runneltest.BatchSize(5))
			if err := run(t, flow, cfg); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if diff := cmp.Diff(expectedState(n, keys), finalState(sink.Items())); diff != "" {
				t.Errorf("final state (-want +got):\n%s", diff)
			}
			// Whether an epoch was committed before the crash depends on
			// timing (a slow machine may not get there); when one was, the
			// resumed run must not have re-read everything.
			if resumed > 1 {
				if second := len(sink.Items()); second >= n {
					t.Errorf("resumed from epoch %d but re-read everything: %d items after %d before the crash", resumed, second, first)
				}
			} else {
				t.Logf("no epoch was committed before the crash (%d items out)", first)
			}
		})
	}
}

// TestRescale resumes recovery data on other worker counts: 3 -> 1 -> 5.
func TestRescale(t *testing.T) {
	const n, keys = 900, 11
	dir := initDir(t, 2)
	opts := func(extra ...runneltest.SourceOpt) []runneltest.SourceOpt {
		return append([]runneltest.SourceOpt{runneltest.Parts(4), runneltest.BatchSize(5),
			runneltest.Pace(300 * time.Microsecond)}, extra...)
	}
	flow, _ := countFlow(seq(n), keys, opts(runneltest.FailAt(n/3))...)
	if err := run(t, flow, runneltest.Config(3, 5*time.Millisecond, dir)); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("3 workers: %v", err)
	}
	flow, _ = countFlow(seq(n), keys, opts(runneltest.FailAt(2*n/3))...)
	if err := run(t, flow, runneltest.Config(1, 5*time.Millisecond, dir)); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("1 worker: %v", err)
	}
	flow, sink := countFlow(seq(n), keys, opts()...)
	if err := run(t, flow, runneltest.Config(5, 5*time.Millisecond, dir)); err != nil {
		t.Fatalf("5 workers: %v", err)
	}
	if diff := cmp.Diff(expectedState(n, keys), finalState(sink.Items())); diff != "" {
		t.Errorf("final state after 3 -> 1 -> 5 workers (-want +got):\n%s", diff)
	}
}

// TestContinuation is the tutorial in-process: a second run with more
// input continues the first run's state and input position.
func TestContinuation(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(2, time.Hour, dir)
	flow, sink := countFlow([]int{0, 1, 2}, 1)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	flow, sink = countFlow([]int{0, 1, 2, 3, 4}, 1)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	want := []countOut{{Key: 0, Value: Counts{4, 6}}, {Key: 0, Value: Counts{5, 10}}}
	if diff := cmp.Diff(want, sink.Items()); diff != "" {
		t.Errorf("second run (-want +got):\n%s", diff)
	}
	// A third run with no new input emits nothing and keeps the state.
	flow, sink = countFlow([]int{0, 1, 2, 3, 4}, 1)
	if err := run(t, flow, cfg); err != nil || len(sink.Items()) != 0 {
		t.Errorf("third run: err %v, items %v", err, sink.Items())
	}
}

func countRows(t *testing.T, dir string) map[string]int {
	t.Helper()
	rows := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "part-*.sqlite3"))
	for _, f := range files {
		db, err := sql.Open("sqlite", "file:"+f+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		r, err := db.Query(`SELECT step_id, state_key, COUNT(*) FROM (
			SELECT step_id, state_key FROM snaps UNION ALL
			SELECT c.step_id, e.key FROM changes AS c, json_each(c.batch) AS e) GROUP BY step_id, state_key`)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var step, key string
			var c int
			if err := r.Scan(&step, &key, &c); err != nil {
				t.Fatal(err)
			}
			rows[step+"/"+key] += c
		}
		r.Close()
		db.Close()
	}
	return rows
}

// TestGarbageCollection checks that after many epochs the rows stored are
// what the backup interval requires, and those not compacted yet: with no
// minimum size (tuning.CompactMin), the run's committer compacts once the
// log before the horizon has grown fourfold at most (twice when idle) over
// what the last compaction left, one row per live key; after the horizon
// are the epochs -b keeps (20ms at 4ms epochs: 5), and one more that the
// recorded horizon lags. So the 5 keys (4 counts and the input's position)
// keep at most 4 + 2 rows each on average at -b 0 and 4 + 7 at 20ms, where
// a run that never compacted keeps one per epoch that changed them.
func TestGarbageCollection(t *testing.T) {
	tuning.CompactMin.Store(1)
	defer tuning.CompactMin.Store(0)
	const n, keys = 400, 4
	for _, tc := range []struct {
		backup  time.Duration
		maxRows int // per key, on average
	}{{0, 6}, {20 * time.Millisecond, 11}} {
		dir := initDir(t, 2)
		cfg := runneltest.Config(1, 4*time.Millisecond, dir)
		cfg.BackupInterval = tc.backup
		flow, _ := countFlow(seq(n), keys, runneltest.BatchSize(2), runneltest.Pace(200*time.Microsecond))
		if err := run(t, flow, cfg); err != nil {
			t.Fatal(err)
		}
		rows := countRows(t, dir)
		if len(rows) != keys+1 {
			t.Fatalf("backup %v: rows for %d keys, want %d (4 counts + 1 input position): %v", tc.backup, len(rows), keys+1, rows)
		}
		total := 0
		for _, c := range rows {
			total += c
		}
		if total > tc.maxRows*len(rows) {
			t.Errorf("backup %v: %d snapshots of %d keys, want at most %d each on average: %v", tc.backup, total, len(rows), tc.maxRows, rows)
		}
	}
}

// TestChangedFlow covers a step added, removed and retyped, --drop-state and
// --recovery-plan.
func TestChangedFlow(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	flow, _ := countFlow(seq(10), 3)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}

	// Retyped: the count step now keeps an int.
	retyped := func() *runnel.Dataflow {
		flow := runnel.NewDataflow("counts")
		s := op.Input("inp", flow, runneltest.NewSource(seq(20)))
		k := op.KeyOn("key", s, func(x int) int { return x % 3 })
		c := op.StatefulMap("count", k, func(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 })
		op.Output("out", c, runneltest.NewSink[runnel.KV[int, int]]())
		return flow
	}
	err := run(t, retyped(), cfg)
	if !errors.Is(err, recovery.ErrStateMismatch) || !strings.Contains(err.Error(), "counts.count") || !strings.Contains(err.Error(), "--drop-state") {
		t.Fatalf("retyped step: err = %v, want a state mismatch naming counts.count and --drop-state", err)
	}

	// --recovery-plan prints the plan and refuses the same way, running nothing.
	var out strings.Builder
	planCfg := cfg
	planCfg.RecoveryPlan = true
	err = runnel.Run(context.Background(), retyped(), planCfg, runnel.WithOutput(&out))
	if err == nil || !strings.Contains(out.String(), "counts.count") {
		t.Errorf("--recovery-plan: err %v, output %q", err, out.String())
	}

	// Removed: a flow without the count step.
	removed := runnel.NewDataflow("counts")
	s := op.Input("inp", removed, runneltest.NewSource(seq(20)))
	op.Output("out", s, runneltest.NewSink[int]())
	err = run(t, removed, cfg)
	if !errors.Is(err, recovery.ErrStateMismatch) || !strings.Contains(err.Error(), "counts.count") {
		t.Fatalf("removed step: err = %v, want it to list counts.count", err)
	}

	// Nothing was changed by the refusals: the original flow still resumes.
	flow, sink := countFlow(seq(12), 3)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	want := map[int]Counts{1: {4, 1 + 4 + 7 + 10}, 2: {4, 2 + 5 + 8 + 11}}
	if diff := cmp.Diff(want, finalState(sink.Items())); diff != "" {
		t.Errorf("resume after refusals (-want +got):\n%s", diff)
	}

	// Dropping on purpose lets the retyped flow start that step empty.
	dropCfg := cfg
	dropCfg.DropState = []string{"counts.count"}
	if err := run(t, retyped(), dropCfg); err != nil {
		t.Fatalf("--drop-state: %v", err)
	}

	// Added: a new stateful step starts empty beside the resumed one.
	added := runnel.NewDataflow("counts")
	s = op.Input("inp", added, runneltest.NewSource(seq(25)))
	k := op.KeyOn("key", s, func(x int) int { return x % 3 })
	c := op.StatefulMap("count", k, func(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 })
	m := op.StatefulMap("max", k, func(m int, _ bool, x int) (int, bool, int) { return max(m, x), true, max(m, x) })
	sink2 := runneltest.NewSink[runnel.KV[int, int]]()
	op.Output("out", op.Merge("both", c, m), sink2)
	if err := run(t, added, cfg); err != nil {
		t.Fatalf("added step: %v", err)
	}
	if got := len(sink2.Items()); got != 10 {
		t.Errorf("added step: %d items, want 10 (5 new items, 2 steps)", got)
	}
}

// TestBadRecoveryInput checks the errors for unusable recovery data, and
// that none of them changes the files.
func TestBadRecoveryInput(t *testing.T) {
	flow := func() *runnel.Dataflow { f, _ := countFlow(seq(5), 2); return f }
	missing := filepath.Join(t.TempDir(), "nope")
	err := run(t, flow(), runneltest.Config(1, time.Hour, missing))
	if !errors.Is(err, recovery.ErrNotInitialized) || !strings.Contains(err.Error(), "runnel recovery init") {
		t.Errorf("missing dir: %v", err)
	}
	empty := t.TempDir()
	if err := run(t, flow(), runneltest.Config(1, time.Hour, empty)); !errors.Is(err, recovery.ErrNotInitialized) {
		t.Errorf("empty dir: %v", err)
	}

	// Another flow's recovery data.
	dir := initDir(t, 2)
	if err := run(t, flow(), runneltest.Config(1, time.Hour, dir)); err != nil {
		t.Fatal(err)
	}
	other := runnel.NewDataflow("other")
	op.Output("out", op.Input("inp", other, runneltest.NewSource(seq(3))), runneltest.NewSink[int]())
	if err := run(t, other, runneltest.Config(1, time.Hour, dir)); !errors.Is(err, recovery.ErrFlowMismatch) {
		t.Errorf("other flow: %v", err)
	}

	// A missing partition file.
	gone := initDir(t, 3)
	os.Remove(filepath.Join(gone, "part-1.sqlite3"))
	if err := run(t, flow(), runneltest.Config(1, time.Hour, gone)); !errors.Is(err, recovery.ErrPartitionMismatch) {
		t.Errorf("missing partition: %v", err)
	}

	// A corrupt partition: the run refuses, and the file is left as it was.
	bad := initDir(t, 1)
	junk := []byte("this is not a sqlite database, but it is long enough to look like one..........")
	path := filepath.Join(bad, "part-0.sqlite3")
	os.WriteFile(path, junk, 0o644)
	if err := run(t, flow(), runneltest.Config(1, time.Hour, bad)); !errors.Is(err, recovery.ErrCorrupt) {
		t.Errorf("corrupt partition: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(junk) {
		t.Error("the corrupt partition was modified")
	}
}

// TestStateThatNoLongerDecodes stores a value that does not decode into the
// step's state type: the run stops naming the step and key.
func TestStateThatNoLongerDecodes(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	flow, _ := countFlow(seq(4), 2)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "part-0.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	// CBOR text string "x" where a struct is expected, in the change log.
	res, err := db.Exec(`UPDATE changes SET batch = json_set(batch, '$."1"', '6178')
		WHERE step_id = 'counts.count' AND json_extract(batch, '$."1"') IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatal("no change log batch holds counts.count key 1")
	}
	db.Close()
	before := fileBytes(t, dir)
	for _, workers := range []int{1, 2} {
		cfg.WorkersPerProcess = workers
		flow, _ = countFlow(seq(6), 2)
		err = run(t, flow, cfg)
		if err == nil || !strings.Contains(err.Error(), "counts.count") || !strings.Contains(err.Error(), `key "1"`) ||
			!strings.Contains(err.Error(), "--drop-state counts.count") {
			t.Errorf("%d worker(s): err = %v, want it to name counts.count and key 1 and point to --drop-state counts.count", workers, err)
		}
		// The value is decoded when the step is built, before the run
		// records its execution: the refused run leaves every byte as it was.
		if after := fileBytes(t, dir); !maps.Equal(before, after) {
			t.Errorf("%d worker(s): the refused run changed the recovery directory", workers)
		}
	}
}

// TestDropStateOfDamagedBatch: a change-log batch that does not parse
// stops a resume, naming the file, step and cause and pointing to
// --drop-state; with --drop-state for that step the run goes on (the
// batch is not even read) and the other steps resume.
func TestDropStateOfDamagedBatch(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	flow, _ := countFlow(seq(4), 2)
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "part-0.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE changes SET batch = substr(batch, 1, length(batch) - 3) WHERE step_id = 'counts.count'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatal("no change log batch of counts.count")
	}
	db.Close()
	before := fileBytes(t, dir)
	flow, _ = countFlow(seq(6), 2)
	err = run(t, flow, cfg)
	if !errors.Is(err, recovery.ErrCorrupt) || !strings.Contains(err.Error(), "part-0.sqlite3") ||
		!strings.Contains(err.Error(), "changes batch of step counts.count") || !strings.Contains(err.Error(), "--drop-state counts.count") {
		t.Errorf("err = %v, want ErrCorrupt naming part-0.sqlite3, the batch of counts.count and --drop-state counts.count", err)
	}
	if after := fileBytes(t, dir); !maps.Equal(before, after) {
		t.Errorf("the refused run changed the recovery directory")
	}
	cfg.DropState = []string{"counts.count"}
	flow, sink := countFlow(seq(6), 2)
	if err := run(t, flow, cfg); err != nil {
		t.Fatalf("with --drop-state counts.count: %v", err)
	}
	// The input resumed after item 3; the counts started over.
	want := map[int]Counts{0: {Count: 1, Sum: 4}, 1: {Count: 1, Sum: 5}}
	if diff := cmp.Diff(want, finalState(sink.Items())); diff != "" {
		t.Errorf("after dropping counts.count (-want +got):\n%s", diff)
	}
}

// TestRemovedPartition: recovery data for a partition the source no longer
// lists stops the run instead of being ignored.
func TestRemovedPartition(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	flow, _ := countFlow(seq(10), 2, runneltest.Parts(3))
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, dir)
	flow, _ = countFlow(seq(10), 2, runneltest.Parts(2))
	err := run(t, flow, cfg)
	if err == nil || !strings.Contains(err.Error(), `partition "part-2"`) || !strings.Contains(err.Error(), "counts.inp") ||
		!strings.Contains(err.Error(), "--drop-state counts.inp") {
		t.Errorf("err = %v, want it to name counts.inp and part-2 and point to --drop-state counts.inp", err)
	}
	// Found when the input step is built, before the run records its
	// execution.
	if after := fileBytes(t, dir); !maps.Equal(before, after) {
		t.Errorf("the refused run changed the recovery directory")
	}
}

// TestDirectoryLocked: a second run on a directory in use is refused.
func TestDirectoryLocked(t *testing.T) {
	dir := initDir(t, 1)
	st, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Lock(); err != nil {
		t.Fatal(err)
	}
	flow, _ := countFlow(seq(5), 2)
	if err := run(t, flow, runneltest.Config(1, time.Hour, dir)); !errors.Is(err, recovery.ErrLocked) {
		t.Errorf("second run: err = %v, want ErrLocked", err)
	}
	if _, err := recovery.Inspect(dir); err != nil {
		t.Errorf("inspect while locked: %v", err)
	}
}

type badState struct {
	Count  int
	hidden string // the codec would drop this silently
}

// TestUnencodableStateRefusedBeforeRun: a state type the codec cannot
// round-trip stops the run before any item is read, naming the step.
func TestUnencodableStateRefusedBeforeRun(t *testing.T) {
	flow := runnel.NewDataflow("f")
	read := 0
	s := op.Input("inp", flow, runneltest.NewSource(seq(3)))
	s = op.Inspect("read", s, func(int) { read++ })
	k := op.KeyOn("key", s, func(x int) int { return x })
	c := op.StatefulMap("bad", k, func(st badState, _ bool, _ int) (badState, bool, int) {
		st.hidden = "x"
		return st, true, st.Count
	})
	op.Output("out", c, runneltest.NewSink[runnel.KV[int, int]]())
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "f.bad") || !strings.Contains(err.Error(), "hidden") || read != 0 {
		t.Errorf("err = %v (read %d items), want a refusal naming f.bad and the field before reading", err, read)
	}
}
