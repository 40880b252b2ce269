package runnel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// Tally is the count step's state after the migration; version 1 of the
// flow kept an int (the count).
type Tally struct {
	Count int
	Sum   int
}

// countV1 is version 1 of the migration tests' flow: a count per key (item
// mod keys) in an int.
func countV1(items []int, keys int) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, int]]) {
	flow := runnel.NewDataflow("counts")
	s := op.Input("inp", flow, runneltest.NewSource(items, runneltest.Parts(2)))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(n int, _ bool, _ int) (int, bool, int) { return n + 1, true, n + 1 })
	sink := runneltest.NewSink[runnel.KV[int, int]]()
	op.Output("out", c, sink)
	return flow, sink
}

// countV2 is version 2: the state is a Tally, and opts (a migration) says
// how to convert version 1's.
func countV2(items []int, keys int, opts ...op.StateOption[Tally]) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, Tally]]) {
	flow := runnel.NewDataflow("counts")
	s := op.Input("inp", flow, runneltest.NewSource(items, runneltest.Parts(2)))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(t Tally, _ bool, x int) (Tally, bool, Tally) {
		t.Count++
		t.Sum += x
		return t, true, t
	}, opts...)
	sink := runneltest.NewSink[runnel.KV[int, Tally]]()
	op.Output("out", c, sink)
	return flow, sink
}

// fromCount is the migration of the tests: an old count n becomes a Tally
// whose Sum is marked (-1000 per counted item) so that results show that
// the conversion ran, once.
func fromCount(calls *atomic.Int64) op.StateMigration[Tally] {
	return op.MigrateState(func(n int) (Tally, error) {
		calls.Add(1)
		return Tally{Count: n, Sum: -1000 * n}, nil
	})
}

func planOf(t *testing.T, flow *runnel.Dataflow, cfg runnel.Config) (string, error) {
	t.Helper()
	var out strings.Builder
	cfg.RecoveryPlan = true
	err := runnel.Run(context.Background(), flow, cfg, runnel.WithOutput(&out))
	return out.String(), err
}

// TestMigrateIntToStruct runs version 1 (int state), then version 2 (a
// struct) with a migration, on a real recovery directory: the plan shows
// the migration without changing a byte, the resumed run converts every
// key (also keys it never touches), the stored type becomes the new one
// when the migrated epoch commits, and the run after that does not
// convert again.
func TestMigrateIntToStruct(t *testing.T) {
	const keys = 4
	dir := initDir(t, 3)
	cfg := runneltest.Config(2, time.Hour, dir)
	v1, _ := countV1(seq(10), keys) // keys 0 and 1 count 3, keys 2 and 3 count 2
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int64
	before := fileBytes(t, dir)
	v2, _ := countV2(seq(12), keys, fromCount(&calls))
	plan, err := planOf(t, v2, cfg)
	if err != nil {
		t.Fatalf("--recovery-plan: %v\n%s", err, plan)
	}
	want := "migrate  counts.count: stored key int, state int, now key int, state runnel_test.Tally: 4 keys converted\n"
	if !strings.Contains(plan, want) {
		t.Errorf("--recovery-plan:\n%s\nwant the line:\n%s", plan, want)
	}
	if diff := cmp.Diff(before, fileBytes(t, dir)); diff != "" {
		t.Errorf("--recovery-plan changed the directory (-before +after):\n%s", diff)
	}
	calls.Store(0)

	// Items 10 and 11 touch keys 2 and 3 only; keys 0 and 1 must be
	// written again all the same.
	v2, sink := countV2(seq(12), keys, fromCount(&calls))
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if err := runnel.Run(context.Background(), v2, cfg, runnel.WithLogger(logger)); err != nil {
		t.Fatalf("migrating run: %v", err)
	}
	if want := `msg="migrated the stored state of a step" flow=counts step=counts.count keys=4 from="key int, state int" to="key int, state runnel_test.Tally"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log of the migrating run:\n%s\nwant a line with:\n%s", logs.String(), want)
	}
	if got := calls.Load(); got != keys {
		t.Errorf("the migration converted %d keys, want %d", got, keys)
	}
	wantOut := map[int]Tally{2: {Count: 3, Sum: -2000 + 10}, 3: {Count: 3, Sum: -2000 + 11}}
	if diff := cmp.Diff(wantOut, lastByKey(sink.Items())); diff != "" {
		t.Errorf("migrating run (-want +got):\n%s", diff)
	}
	s, err := recovery.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	types, err := s.StepTypes()
	s.Close()
	if err != nil || types["counts.count"].Type != "key int, state runnel_test.Tally" {
		t.Errorf("stored type after the migrated epoch committed: %+v, %v", types["counts.count"], err)
	}

	// The next run resumes without converting; the migration may stay.
	calls.Store(0)
	v2, _ = countV2(seq(14), keys, fromCount(&calls))
	plan, err = planOf(t, v2, cfg)
	if err != nil || !strings.Contains(plan, "resume   counts.count (key int, state runnel_test.Tally); migration from key int, state int not needed\n") {
		t.Errorf("--recovery-plan after the migration: %v\n%s", err, plan)
	}
	v2, sink = countV2(seq(14), keys, fromCount(&calls))
	if err := run(t, v2, cfg); err != nil {
		t.Fatalf("run after the migration: %v", err)
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("the run after the migration converted %d keys again", got)
	}
	wantOut = map[int]Tally{0: {Count: 4, Sum: -3000 + 12}, 1: {Count: 4, Sum: -3000 + 13}}
	if diff := cmp.Diff(wantOut, lastByKey(sink.Items())); diff != "" {
		t.Errorf("run after the migration (-want +got):\n%s", diff)
	}
	// So does one without the migration.
	v2, sink = countV2(seq(15), keys)
	if err := run(t, v2, cfg); err != nil {
		t.Fatalf("run without the migration: %v", err)
	}
	if diff := cmp.Diff(map[int]Tally{2: {Count: 4, Sum: -2000 + 10 + 14}}, lastByKey(sink.Items())); diff != "" {
		t.Errorf("run without the migration (-want +got):\n%s", diff)
	}
}

// TestMigrateCrashBeforeCommit: a migrating run that dies before its first
// epoch is committed leaves the old type in force; the next run migrates
// again, from the original state, with exact results.
func TestMigrateCrashBeforeCommit(t *testing.T) {
	const keys = 3
	dir := initDir(t, 2)
	cfg := runneltest.Config(1, time.Hour, dir)
	v1, _ := countV1(seq(9), keys)
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	crashing := runnel.NewDataflow("counts")
	s := op.Input("inp", crashing, runneltest.NewSource(seq(20), runneltest.Parts(2), runneltest.FailAt(12)))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(t Tally, _ bool, x int) (Tally, bool, Tally) {
		t.Count++
		t.Sum += x
		return t, true, t
	}, fromCount(&calls))
	op.Output("out", c, runneltest.NewSink[runnel.KV[int, Tally]]())
	if err := run(t, crashing, cfg); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("crashing run: %v", err)
	}
	plan, err := planOf(t, func() *runnel.Dataflow { f, _ := countV2(seq(20), keys, fromCount(&calls)); return f }(), cfg)
	if err != nil || !strings.Contains(plan, "migrate  counts.count: stored key int, state int") {
		t.Fatalf("plan after the crash: %v\n%s", err, plan)
	}
	calls.Store(0)
	v2, sink := countV2(seq(20), keys, fromCount(&calls))
	if err := run(t, v2, cfg); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != keys {
		t.Errorf("converted %d keys, want %d", got, keys)
	}
	want := map[int]Tally{}
	for x := 9; x < 20; x++ {
		tl := want[x%keys]
		tl.Count++
		tl.Sum += x
		want[x%keys] = tl
	}
	for k := range want {
		tl := want[k]
		tl.Count += 3
		tl.Sum -= 3000
		want[k] = tl
	}
	if diff := cmp.Diff(want, lastByKey(sink.Items())); diff != "" {
		t.Errorf("after the crash (-want +got):\n%s", diff)
	}
}

// TestMigrateFails: a conversion that fails stops the run with an error
// naming the step and the key, before anything is written: the directory
// is byte for byte what it was, and the old flow still resumes from it.
func TestMigrateFails(t *testing.T) {
	const keys = 3
	dir := initDir(t, 2)
	cfg := runneltest.Config(2, time.Hour, dir)
	v1, _ := countV1(seq(9), keys)
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	errOdd := errors.New("cannot convert this count")
	failing := op.MigrateState(func(n int) (Tally, error) {
		if n == 3 {
			return Tally{}, errOdd
		}
		return Tally{Count: n}, nil
	})
	panicking := op.MigrateState(func(n int) (Tally, error) { panic("boom") })
	before := fileBytes(t, dir)
	for name, m := range map[string]op.StateMigration[Tally]{"error": failing, "panic": panicking} {
		v2, _ := countV2(seq(12), keys, m)
		err := run(t, v2, cfg)
		if err == nil || !strings.Contains(err.Error(), "step counts.count key ") || !strings.Contains(err.Error(), "state migration from key int, state int") {
			t.Errorf("%s: err = %v, want it to name the step, the key and the migration", name, err)
		}
		if name == "error" && !errors.Is(err, errOdd) {
			t.Errorf("%s: err = %v, want it to wrap the conversion's error", name, err)
		}
		if diff := cmp.Diff(before, fileBytes(t, dir)); diff != "" {
			t.Fatalf("%s: the failed migration changed the directory (-before +after):\n%s", name, diff)
		}
		v2, _ = countV2(seq(12), keys, m)
		if plan, err := planOf(t, v2, cfg); err == nil || !strings.Contains(plan, "REFUSED: a state migration fails") {
			t.Errorf("%s: --recovery-plan: %v\n%s", name, err, plan)
		}
	}
	// Nothing was written: version 1 resumes where it was.
	v1, sink := countV1(seq(10), keys)
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]int{0: 4}, lastByKey(sink.Items())); diff != "" {
		t.Errorf("version 1 after the failed migrations (-want +got):\n%s", diff)
	}
}

// TestMigrateNotMatching: a migration from a type that is not the stored
// one is refused like a change without one; a migration registered where
// nothing is stored is not needed; one from the current type to itself is
// a build error.
func TestMigrateNotMatching(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	fresh := op.MigrateState(func(n int) (Tally, error) { return Tally{Count: n}, nil })
	v2, _ := countV2(seq(3), 3, fresh)
	plan, err := planOf(t, v2, cfg)
	if err != nil || !strings.Contains(plan, "new      counts.count (key int, state runnel_test.Tally): starts empty; migration from key int, state int not needed\n") {
		t.Errorf("fresh directory: %v\n%s", err, plan)
	}
	v1, _ := countV1(seq(9), 3)
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	wrong := op.MigrateState(func(s string) (Tally, error) { return Tally{}, nil })
	v2, _ = countV2(seq(12), 3, wrong)
	err = run(t, v2, cfg)
	if !errors.Is(err, recovery.ErrStateMismatch) || !strings.Contains(err.Error(), "its registered migration converts from key int, state string, not from the stored type") {
		t.Errorf("migration from the wrong type: %v", err)
	}
	same := op.MigrateState(func(s Tally) (Tally, error) { return s, nil })
	v2, _ = countV2(seq(12), 3, same)
	if err := run(t, v2, cfg); err == nil || !strings.Contains(err.Error(), "counts.count") || !strings.Contains(err.Error(), "to the same type") {
		t.Errorf("migration from the current type: %v", err)
	}
}

// TestMigrateRenamedType: the old struct type is kept under a new name
// beside the new one with the old name; the stored step still matches by
// shape.
func TestMigrateRenamedType(t *testing.T) {
	type Counts struct{ N int }
	type CountsV1 struct{ N int }
	type CountsV2 struct {
		N    int
		Last int
	}
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	build := func(items []int, migrate bool) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, int]]) {
		flow := runnel.NewDataflow("renamed")
		s := op.Input("inp", flow, runneltest.NewSource(items))
		k := op.KeyOn("key", s, func(x int) int { return x % 2 })
		sink := runneltest.NewSink[runnel.KV[int, int]]()
		if !migrate {
			op.Output("out", op.StatefulMap("count", k, func(c Counts, _ bool, x int) (Counts, bool, int) {
				c.N++
				return c, true, c.N
			}), sink)
			return flow, sink
		}
		// Stateful, with its migration passed as a hook.
		c := op.Stateful("count", k, func(c *op.Context[int, int], s CountsV2, _ bool, x int) (CountsV2, bool) {
			s.N++
			s.Last = x
			c.Emit(s.N*100 + s.Last)
			return s, true
		}, op.OnEOF(func(_ *op.Context[int, int], s CountsV2) (CountsV2, bool) { return s, true }),
			op.MigrateState(func(old CountsV1) (CountsV2, error) { return CountsV2{N: old.N}, nil }))
		op.Output("out", c, sink)
		return flow, sink
	}
	f, _ := build(seq(5), false)
	if err := run(t, f, cfg); err != nil {
		t.Fatal(err)
	}
	f, sink := build(seq(7), true)
	if err := run(t, f, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]int{1: 305, 0: 406}, lastByKey(sink.Items())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMigrateWindow converts the accumulators of open windows: a count in
// an int becomes a struct, and the window that was open when version 1
// ended closes in version 2 with the count carried over.
func TestMigrateWindow(t *testing.T) {
	type Acc struct {
		N     int
		Extra int
	}
	align := time.Unix(0, 0).UTC()
	ts := func(x int) time.Time { return align.Add(time.Duration(x) * time.Second) }
	dir := initDir(t, 2)
	cfg := runneltest.Config(1, time.Hour, dir)
	v1 := runnel.NewDataflow("win")
	k := op.KeyOn("key", op.Input("inp", v1, runneltest.NewSource(seq(15))), func(int) string { return "k" })
	out := window.FoldWindow("count", k, window.EventClock(ts, 0), window.Tumbling(10*time.Second, align),
		func() int { return 0 }, func(n int, _ int) int { return n + 1 }, func(a, b int) int { return a + b })
	op.Output("out", out.Down, runneltest.NewSink[runnel.KV[string, window.Result[int]]]())
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}

	build := func(opts ...window.Option) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, window.Result[Acc]]]) {
		v2 := runnel.NewDataflow("win")
		k := op.KeyOn("key", op.Input("inp", v2, runneltest.NewSource(seq(18))), func(int) string { return "k" })
		out := window.FoldWindow("count", k, window.EventClock(ts, 0), window.Tumbling(10*time.Second, align),
			func() Acc { return Acc{} }, func(a Acc, _ int) Acc { a.N++; return a }, func(a, b Acc) Acc { return Acc{N: a.N + b.N} }, opts...)
		sink := runneltest.NewSink[runnel.KV[string, window.Result[Acc]]]()
		op.Output("out", out.Down, sink)
		return v2, sink
	}
	f, _ := build(window.MigrateState(func(n float64) (Acc, error) { return Acc{}, nil }))
	if err := run(t, f, cfg); !errors.Is(err, recovery.ErrStateMismatch) {
		t.Errorf("window migration from the wrong type: %v", err)
	}
	f, _ = build(window.MigrateState(func(n int) (string, error) { return "", nil }))
	if err := run(t, f, cfg); err == nil || !strings.Contains(err.Error(), "MigrateState converts to string, but the step's window state is") {
		t.Errorf("window migration to the wrong type: %v", err)
	}
	migrate := window.MigrateState(func(n int) (Acc, error) { return Acc{N: n, Extra: 1}, nil })
	f, _ = build(migrate)
	plan, err := planOf(t, f, cfg)
	if err != nil || !strings.Contains(plan, "migrate  win.count: ") || !strings.Contains(plan, ": 1 key converted\n") {
		t.Errorf("window --recovery-plan: %v\n%s", err, plan)
	}
	f, sink := build(migrate)
	if err := run(t, f, cfg); err != nil {
		t.Fatal(err)
	}
	got := map[int64]Acc{}
	for _, kv := range sink.Items() {
		got[kv.Value.ID] = kv.Value.Value
	}
	if diff := cmp.Diff(map[int64]Acc{1: {N: 8, Extra: 1}}, got); diff != "" {
		t.Errorf("windows closed after the migration (-want +got):\n%s", diff)
	}
}

// lastByKey is the last value emitted for each key.
func lastByKey[K runnel.Key, V any](items []runnel.KV[K, V]) map[K]V {
	m := map[K]V{}
	for _, kv := range items {
		m[kv.Key] = kv.Value
	}
	return m
}

// fileBytes reads every file of dir (the partitions and any -wal or -shm
// beside them), for comparing a directory before and after.
func fileBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%d bytes, %x", len(b), b)
	}
	return out
}

// TestMigratePendingDirectory: a directory left by a migrating run that
// crashed before its first commit (a pending migration) verifies clean,
// repartitions (the old type stays in force) and then migrates, on another
// worker count, to exact results.
func TestMigratePendingDirectory(t *testing.T) {
	const keys = 5
	dir := initDir(t, 2)
	cfg := runneltest.Config(2, time.Hour, dir)
	v1, _ := countV1(seq(20), keys)
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	crashing := runnel.NewDataflow("counts")
	s := op.Input("inp", crashing, runneltest.NewSource(seq(40), runneltest.Parts(2), runneltest.FailAt(30)))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	op.Output("out", op.StatefulMap("count", k, func(t Tally, _ bool, x int) (Tally, bool, Tally) {
		t.Count++
		return t, true, t
	}, fromCount(&calls)), runneltest.NewSink[runnel.KV[int, Tally]]())
	if err := run(t, crashing, cfg); !errors.Is(err, runneltest.ErrCrash) {
		t.Fatalf("crashing run: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "part-1.sqlite3")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var pending string
	err = db.QueryRow("SELECT value FROM meta WHERE name = 'migration:counts.count'").Scan(&pending)
	db.Close()
	if err != nil || !strings.Contains(pending, `"state_type":"key int, state runnel_test.Tally"`) {
		t.Fatalf("pending migration row after the crash: %q, %v", pending, err)
	}
	ins, err := recovery.Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if text := ins.String(); !strings.Contains(text, "counts.count (key int, state int): 5 key(s), ") ||
		!strings.Contains(text, "; migration to key int, state runnel_test.Tally pending: it applies once epoch 2 is committed\n") {
		t.Errorf("inspect with a pending migration:\n%s", text)
	}
	rep, err := recovery.Verify(dir)
	if err != nil || rep.Problems() != 0 {
		t.Fatalf("verify with a pending migration: %v\n%+v", err, rep)
	}
	if _, err := recovery.Repartition(dir, 3); err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	cfg = runneltest.Config(3, time.Hour, dir)
	v2, sink := countV2(seq(25), keys, fromCount(&calls))
	if err := run(t, v2, cfg); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != keys {
		t.Errorf("converted %d keys after the repartition, want %d", got, keys)
	}
	want := map[int]Tally{}
	for x := 20; x < 25; x++ {
		want[x%keys] = Tally{Count: 5, Sum: -4000 + x}
	}
	if diff := cmp.Diff(want, lastByKey(sink.Items())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMigrateKeepsWakeUps: Collect's state migrates from []int to
// []string, and each key's pending timeout (an OnNotify wake-up) survives
// the conversion: the partial slices are emitted by timeout in the
// migrated run, converted.
func TestMigrateKeepsWakeUps(t *testing.T) {
	dir := initDir(t, 1)
	cfg := runneltest.Config(1, time.Hour, dir)
	clock := runneltest.NewClock(time.Unix(1000, 0))
	v1 := runnel.NewDataflow("coll")
	k := op.KeyOn("key", op.Input("inp", v1, runneltest.NewSource([]int{1, 2, 3})), func(x int) string { return fmt.Sprint("k", x%2) })
	op.Output("out", op.Collect("collect", k, time.Minute, 10), runneltest.NewSink[runnel.KV[string, []int]]())
	if err := runnel.Run(context.Background(), v1, cfg, runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	// The timeouts (a minute after the clock's reading) have passed when
	// version 2 resumes: they run at once, before any item.
	clock.Advance(2 * time.Minute)
	v2 := runnel.NewDataflow("coll")
	k2 := op.KeyOn("key", op.Input("inp", v2, runneltest.NewSource([]string{"a", "b", "c", "d"})), func(string) string { return "k9" })
	sink := runneltest.NewSink[runnel.KV[string, []string]]()
	op.Output("out", op.Collect("collect", k2, time.Minute, 10, op.MigrateState(func(old []int) ([]string, error) {
		out := make([]string, len(old))
		for i, x := range old {
			out[i] = fmt.Sprint("#", x)
		}
		return out, nil
	})), sink)
	if err := runnel.Run(context.Background(), v2, cfg, runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, kv := range sink.Items() {
		got[kv.Key] = append(got[kv.Key], kv.Value...)
	}
	want := map[string][]string{"k1": {"#1", "#3"}, "k0": {"#2"}, "k9": {"d"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMigrateFoldFinalNoNewInput: a migrating run that reads no new item
// (it ends at once) still writes every converted key, although FoldFinal
// discards its state at the end of input: a later run without the
// migration resumes the new type and folds on.
func TestMigrateFoldFinalNoNewInput(t *testing.T) {
	type Total struct{ Sum, N int }
	dir := initDir(t, 2)
	cfg := runneltest.Config(2, time.Hour, dir)
	flow := func(items []int, migrate bool) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, Total]]) {
		f := runnel.NewDataflow("fold")
		k := op.KeyOn("key", op.Input("inp", f, runneltest.NewSource(items)), func(x int) int { return x % 3 })
		var opts []op.StateOption[Total]
		if migrate {
			opts = append(opts, op.MigrateState(func(sum int) (Total, error) { return Total{Sum: sum, N: -1}, nil }))
		}
		sink := runneltest.NewSink[runnel.KV[int, Total]]()
		op.Output("out", op.FoldFinal("fold", k, func() Total { return Total{} }, func(t Total, x int) Total {
			t.Sum += x
			t.N++
			return t
		}, opts...), sink)
		return f, sink
	}
	v1 := runnel.NewDataflow("fold")
	k := op.KeyOn("key", op.Input("inp", v1, runneltest.NewSource(seq(6))), func(x int) int { return x % 3 })
	op.Output("out", op.FoldFinal("fold", k, func() int { return 0 }, func(s, x int) int { return s + x }), runneltest.NewSink[runnel.KV[int, int]]())
	if err := run(t, v1, cfg); err != nil {
		t.Fatal(err)
	}
	f, sink := flow(seq(6), true) // no new input
	if err := run(t, f, cfg); err != nil {
		t.Fatal(err)
	}
	want := map[int]Total{0: {Sum: 3, N: -1}, 1: {Sum: 5, N: -1}, 2: {Sum: 7, N: -1}}
	if diff := cmp.Diff(want, lastByKey(sink.Items())); diff != "" {
		t.Errorf("migrating run, no new input (-want +got):\n%s", diff)
	}
	f, sink = flow(seq(7), false)
	if err := run(t, f, cfg); err != nil {
		t.Fatal(err)
	}
	want = map[int]Total{0: {Sum: 9, N: 0}, 1: {Sum: 5, N: -1}, 2: {Sum: 7, N: -1}}
	if diff := cmp.Diff(want, lastByKey(sink.Items())); diff != "" {
		t.Errorf("run after the migration (-want +got):\n%s", diff)
	}
}
