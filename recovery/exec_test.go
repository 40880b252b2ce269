package recovery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type kv struct{ Step, Key, Value string }

func loadAll(t *testing.T, s *Store, epoch uint64) []kv {
	t.Helper()
	var out []kv
	err := s.Load(epoch, func(step, key string, value []byte) error {
		out = append(out, kv{step, key, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("Load(%d): %v", epoch, err)
	}
	return out
}

func begin(t *testing.T, s *Store, flow string, workers int, current map[string]string, drop ...string) Resume {
	t.Helper()
	stored, err := s.StepTypes()
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Begin(flow, workers, MakePlan(stored, types(current), drop))
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return r
}

func val(s string) []byte { return []byte(s) }

// types makes step states with the given types and no shape.
func types(m map[string]string) map[string]StepState {
	out := make(map[string]StepState, len(m))
	for id, t := range m {
		out[id] = StepState{Type: t}
	}
	return out
}

var steps1 = map[string]string{"f.count": "int"}

func TestResumeCycle(t *testing.T) {
	dir := mustInit(t, 3)
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 2, steps1)
	if diff := cmp.Diff(Resume{Execution: 0, Epoch: 1, Fresh: true}, r); diff != "" {
		t.Fatalf("fresh Begin (-want +got):\n%s", diff)
	}
	if err := s.WriteEpoch(1, []Row{
		{Step: "f.count", Key: "b", Value: val("b1")},
		{Step: "f.count", Key: "a", Value: val("a1")},
		{Step: "f.count", Key: "c", Value: val("c1")},
		{Step: "f.count", Key: "empty", Value: nil},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0, 1}, 2, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteEpoch(2, []Row{
		{Step: "f.count", Key: "a", Value: val("a2")},
		{Step: "f.count", Key: "b", Deleted: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{1}, 3, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0}, 3, 10); err != nil {
		t.Fatal(err)
	}
	// Written but never committed: must be forgotten.
	if err := s.WriteEpoch(3, []Row{{Step: "f.count", Key: "a", Value: val("a3")}, {Step: "f.count", Key: "d", Value: val("d3")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir)
	if s.FlowID() != "f" {
		t.Errorf("FlowID() = %q", s.FlowID())
	}
	r = begin(t, s, "f", 4, steps1)
	if diff := cmp.Diff(Resume{Execution: 1, Epoch: 3, PrevWorkers: 2}, r); diff != "" {
		t.Fatalf("second Begin (-want +got):\n%s", diff)
	}
	got := loadAll(t, s, r.Epoch)
	sortKV(got)
	want := []kv{{"f.count", "a", "a2"}, {"f.count", "c", "c1"}, {"f.count", "empty", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if v, e, ok, err := s.Latest("f.count", "a"); err != nil || !ok || e != 2 || string(v) != "a2" {
		t.Errorf("Latest(a) = %q, %d, %v, %v", v, e, ok, err)
	}
	if _, e, ok, err := s.Latest("f.count", "b"); err != nil || ok || e != 2 {
		t.Errorf("Latest(b) = %d, %v, %v; want deleted at 2", e, ok, err)
	}
	if _, _, ok, err := s.Latest("f.count", "d"); err != nil || ok {
		t.Errorf("Latest(d) = %v, %v; want no row", ok, err)
	}
	// An execution that commits nothing resumes where it started.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir)
	r = begin(t, s, "f", 1, steps1)
	if diff := cmp.Diff(Resume{Execution: 2, Epoch: 3, PrevWorkers: 4}, r); diff != "" {
		t.Fatalf("third Begin (-want +got):\n%s", diff)
	}
}

func sortKV(s []kv) {
	// Load orders within a partition only.
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].Step < s[i].Step || (s[j].Step == s[i].Step && s[j].Key < s[i].Key) {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestLoadOrderWithinPartition(t *testing.T) {
	s := mustOpen(t, mustInit(t, 1))
	begin(t, s, "f", 1, map[string]string{"f.a": "int", "f.b": "int"})
	var rows []Row
	for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(200) {
		rows = append(rows, Row{Step: []string{"f.b", "f.a"}[i%2], Key: fmt.Sprint(i), Value: val("x")})
	}
	if err := s.WriteEpoch(1, rows); err != nil {
		t.Fatal(err)
	}
	got := loadAll(t, s, 2)
	if len(got) != 200 {
		t.Fatalf("loaded %d rows, want 200", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.Step > b.Step || (a.Step == b.Step && a.Key >= b.Key) {
			t.Fatalf("out of order at %d: %v then %v", i, a, b)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.Load(2, func(string, string, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 || !strings.Contains(err.Error(), "step f.a key") {
		t.Errorf("Load with failing fn = %v after %d calls", err, n)
	}
}

func TestCrashMidCommitResumesFromOlderEpoch(t *testing.T) {
	dir := mustInit(t, 2)
	s := mustOpen(t, dir)
	begin(t, s, "f", 1, steps1)
	for e := uint64(1); e <= 4; e++ {
		if err := s.WriteEpoch(e, []Row{{Step: "f.count", Key: "k", Value: val(fmt.Sprint(e))}}); err != nil {
			t.Fatal(err)
		}
		if e <= 3 {
			if err := s.Commit(0, []int{0}, e+1, 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close()
	// Simulate a crash after committing frontier 5 in part-0 only.
	execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "UPDATE fronts SET worker_frontier = 5")
	s = mustOpen(t, dir)
	r := begin(t, s, "f", 1, steps1)
	if r.Epoch != 4 {
		t.Fatalf("resumed at %d, want the older frontier 4", r.Epoch)
	}
	if diff := cmp.Diff([]kv{{"f.count", "k", "3"}}, loadAll(t, s, r.Epoch)); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestWorkerWithoutFrontCountsAsResumeEpoch(t *testing.T) {
	dir := mustInit(t, 1)
	s := mustOpen(t, dir)
	begin(t, s, "f", 2, steps1)
	if err := s.WriteEpoch(1, []Row{{Step: "f.count", Key: "k", Value: val("1")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0}, 2, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, dir)
	if r := begin(t, s, "f", 2, steps1); r.Epoch != 1 {
		t.Fatalf("resumed at %d, want 1", r.Epoch)
	}
	if got := loadAll(t, s, 1); len(got) != 0 {
		t.Errorf("loaded %v from an uncommitted epoch", got)
	}
}

func TestBeginRefusals(t *testing.T) {
	dir := mustInit(t, 2)
	s := mustOpen(t, dir)
	begin(t, s, "f", 1, map[string]string{"f.a": "int", "f.b": "string"})
	if err := s.WriteEpoch(1, []Row{{Step: "f.a", Key: "k", Value: val("1")}, {Step: "f.b", Key: "k", Value: val("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0}, 2, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()

	before := snapshotDir(t, dir)
	s = mustOpen(t, dir)
	stored, _ := s.StepTypes()
	if diff := cmp.Diff(types(map[string]string{"f.a": "int", "f.b": "string"}), stored); diff != "" {
		t.Errorf("StepTypes (-want +got):\n%s", diff)
	}
	if _, err := s.Begin("g", 1, MakePlan(stored, stored, nil)); !errors.Is(err, ErrFlowMismatch) ||
		!strings.Contains(err.Error(), `"f"`) || !strings.Contains(err.Error(), `"g"`) {
		t.Errorf("Begin with another flow id = %v", err)
	}
	_, err := s.Begin("f", 1, MakePlan(stored, types(map[string]string{"f.a": "int64"}), nil))
	if !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("Begin with changed steps = %v", err)
	}
	for _, want := range []string{"step f.a: stored state type int, current state type int64", "step f.b: stored state type string, but the step is gone", "--drop-state STEP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, err := s.Begin("f", 1, MakePlan(stored, stored, []string{"f.zz"})); !errors.Is(err, ErrUnknownStep) {
		t.Errorf("Begin with unknown drop = %v", err)
	}
	s.Close()
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Errorf("refused Begin modified files:\n%s", diff)
	}

	// Dropping on purpose works and deletes the rows.
	s = mustOpen(t, dir)
	r := begin(t, s, "f", 1, map[string]string{"f.a": "int64"}, "f.a", "f.b")
	if got := loadAll(t, s, r.Epoch); len(got) != 0 {
		t.Errorf("dropped state still loads: %v", got)
	}
	stored, _ = s.StepTypes()
	if diff := cmp.Diff(types(map[string]string{"f.a": "int64"}), stored); diff != "" {
		t.Errorf("StepTypes after drop (-want +got):\n%s", diff)
	}
}

func TestNotBegunAndClosed(t *testing.T) {
	s := mustOpen(t, mustInit(t, 1))
	if err := s.WriteEpoch(1, nil); !errors.Is(err, ErrNotBegun) {
		t.Errorf("WriteEpoch before Begin = %v", err)
	}
	if err := s.Commit(0, []int{0}, 2, 0); !errors.Is(err, ErrNotBegun) {
		t.Errorf("Commit before Begin = %v", err)
	}
	begin(t, s, "f", 1, steps1)
	if err := s.Commit(0, []int{1}, 2, 0); err == nil {
		t.Error("Commit of worker 1 of 1 succeeded")
	}
	if err := s.Commit(5, []int{0}, 2, 0); err == nil {
		t.Error("Commit of another execution succeeded")
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := s.StepTypes(); !errors.Is(err, ErrClosed) {
		t.Errorf("StepTypes after Close = %v", err)
	}
	if err := s.WriteEpoch(1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteEpoch after Close = %v", err)
	}
}

// countRows lists the epochs of the rows stored for (step, key), in snaps
// and the change log.
func countRows(t *testing.T, s *Store, step, key string) []int64 {
	t.Helper()
	p := s.parts[PartitionFor(step, key, len(s.parts))]
	var out []int64
	err := scanPart(context.Background(), p.db, p.format, math.MaxInt64, step, nil, func(r *logRow) error {
		if r.key == key {
			out = append(out, r.epoch)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compactAlways makes Compact merge whatever it may, for the rest of t.
func compactAlways(t *testing.T) {
	e, b, n := compactEntries, compactBytes, compactBatches
	compactEverything = true
	t.Cleanup(func() { compactEntries, compactBytes, compactBatches, compactEverything = e, b, n, false })
}

// compact runs s.Compact.
func compact(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Compact(2); err != nil {
		t.Fatal(err)
	}
}

func TestGarbageCollection(t *testing.T) {
	compactAlways(t)
	s := mustOpen(t, mustInit(t, 2))
	begin(t, s, "f", 1, steps1)
	for e := uint64(1); e <= 5; e++ {
		rows := []Row{{Step: "f.count", Key: "k", Value: val(fmt.Sprint(e))}}
		switch e {
		case 1:
			rows = append(rows, Row{Step: "f.count", Key: "gone", Value: val("x")}, Row{Step: "f.count", Key: "still", Value: val("x")})
		case 2:
			rows = append(rows, Row{Step: "f.count", Key: "gone", Deleted: true})
		}
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(0, []int{0}, e+1, 2); err != nil {
			t.Fatal(err)
		}
		compact(t, s)
	}
	// frontier 6, keep 2: horizon 4, so resuming from 4, 5 or 6 must work.
	if diff := cmp.Diff([]int64{3, 4, 5}, countRows(t, s, "f.count", "k")); diff != "" {
		t.Errorf("rows of k (-want +got):\n%s", diff)
	}
	if got := countRows(t, s, "f.count", "gone"); len(got) != 0 {
		t.Errorf("deleted key keeps rows %v", got)
	}
	if diff := cmp.Diff([]int64{1}, countRows(t, s, "f.count", "still")); diff != "" {
		t.Errorf("rows of still (-want +got):\n%s", diff)
	}
	if err := s.Commit(0, []int{0}, 6, 0); err != nil {
		t.Fatal(err)
	}
	compact(t, s)
	if diff := cmp.Diff([]int64{5}, countRows(t, s, "f.count", "k")); diff != "" {
		t.Errorf("rows of k after keep 0 (-want +got):\n%s", diff)
	}
}

// TestGarbageCollectionModel checks, against a model, that after every commit
// each epoch GC promises to keep still loads the right state.
// TestGarbageCollectionModel checks Load against a model of the state
// after every epoch, with the change log merged into snaps after every
// commit (in chunks of one or more epochs) or never, rows of one epoch
// written in two calls, deletions and a varying backup interval.
func TestGarbageCollectionModel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact int64 // compactEntries; 0: never compact
	}{{"log only", 0}, {"compact always", 1}, {"compact at 20 entries", 20}} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprint(tc.name, "/", seed), func(t *testing.T) {
				if tc.compact > 0 {
					compactAlways(t)
					compactEverything = false
					compactEntries, compactBytes, compactBatches = tc.compact, 1<<40, 1<<40
				}
				gcModel(t, seed, tc.compact > 0)
			})
		}
	}
}

func gcModel(t *testing.T, seed uint64, compacting bool) {
	{
		{
			r := rand.New(rand.NewPCG(seed, 99))
			s := mustOpen(t, mustInit(t, 1+int(seed)))
			begin(t, s, "f", 2, map[string]string{"f.a": "int", "f.b": "int"})
			history := map[uint64]map[[2]string]string{0: {}} // state after each epoch
			keys := []string{"k0", "k1", "k2", "k3", "k4"}
			horizon := uint64(1) // GC only moves forward, even when keep grows
			for e := uint64(1); e <= 12; e++ {
				state := map[[2]string]string{}
				for k, v := range history[e-1] {
					state[k] = v
				}
				var rows []Row
				for _, step := range []string{"f.a", "f.b"} {
					for _, k := range keys {
						switch r.IntN(4) {
						case 0:
							v := fmt.Sprint(step, k, e)
							state[[2]string{step, k}] = v
							rows = append(rows, Row{Step: step, Key: k, Value: val(v)})
						case 1:
							delete(state, [2]string{step, k})
							rows = append(rows, Row{Step: step, Key: k, Deleted: true})
						}
					}
				}
				history[e] = state
				// Some epochs are written in two calls; the second's rows
				// win (a key in both keeps the second's value).
				split := len(rows) / 2
				if r.IntN(3) > 0 {
					split = len(rows)
				}
				if err := s.WriteEpoch(e, rows[:split]); err != nil {
					t.Fatal(err)
				}
				if split < len(rows) {
					second := rows[split:]
					if split > 0 {
						early := rows[0]
						early.Value, early.Deleted = val("overwritten"), false
						second = append([]Row{early}, second...)
						rows[0], second[0] = early, rows[0]
						if err := s.WriteEpoch(e, rows[:1]); err != nil {
							t.Fatal(err)
						}
					}
					if err := s.WriteEpoch(e, second); err != nil {
						t.Fatal(err)
					}
				}
				keep := uint64(r.IntN(4))
				for w := range 2 {
					if err := s.Commit(0, []int{w}, e+1, keep); err != nil {
						t.Fatal(err)
					}
				}
				if compacting {
					compact(t, s)
				}
				if e+1 > keep {
					horizon = max(horizon, e+1-keep)
				}
				for R := horizon; R <= e+1; R++ {
					want := []kv{}
					for k, v := range history[R-1] {
						want = append(want, kv{k[0], k[1], v})
					}
					got := append([]kv{}, loadAll(t, s, R)...)
					sortKV(want)
					sortKV(got)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("after commit of epoch %d (keep %d), Load(%d) (-want +got):\n%s", e, keep, R, diff)
					}
				}
			}
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := mustOpen(t, mustInit(t, 3))
	begin(t, s, "f", 4, steps1)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := range 4 {
		wg.Go(func() {
			for e := uint64(1); e <= 3; e++ {
				var rows []Row
				for k := range 20 {
					rows = append(rows, Row{Step: "f.count", Key: fmt.Sprintf("w%d-%d", w, k), Value: val(fmt.Sprint(e))})
				}
				if err := s.WriteEpoch(e, rows); err != nil {
					errs[w] = err
					return
				}
				if err := s.Commit(0, []int{w}, e+1, 0); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := loadAll(t, s, 4)
	if len(got) != 80 {
		t.Fatalf("loaded %d keys, want 80", len(got))
	}
	for _, g := range got {
		if g.Value != "3" {
			t.Fatalf("key %s has %q, want 3", g.Key, g.Value)
		}
	}
}

func TestInspect(t *testing.T) {
	dir := mustInit(t, 2)
	r, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.ResumeEpoch != 1 || r.FlowID != "" || len(r.Partitions) != 2 || r.Codec != "cbor-core-det/v1" {
		t.Errorf("empty report: %+v", r)
	}
	if !strings.Contains(r.String(), "dataflow (none yet)") {
		t.Errorf("empty report text:\n%s", r)
	}
	s := mustOpen(t, dir)
	begin(t, s, "f", 2, map[string]string{"f.a": "int", "f.b": "string"})
	s.WriteEpoch(1, []Row{
		{Step: "f.a", Key: "x", Value: val("12")}, {Step: "f.a", Key: "y", Value: val("345")},
		{Step: "f.b", Key: "x", Value: val("1")},
	})
	s.WriteEpoch(2, []Row{{Step: "f.b", Key: "x", Deleted: true}})
	s.Commit(0, []int{0, 1}, 2, 5)
	s.Commit(0, []int{0}, 3, 5)
	s.Close()
	r, err = Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]StepReport{{ID: "f.a", StateType: "int", Keys: 2, Bytes: 5}, {ID: "f.b", StateType: "string"}}, r.Steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ExecutionReport{{Num: 0, Workers: 2, ResumeEpoch: 1, Fronts: []uint64{3, 2}}}, r.Executions); diff != "" {
		t.Errorf("executions (-want +got):\n%s", diff)
	}
	if r.ResumeEpoch != 2 || r.FlowID != "f" || r.Partitions[0].Frontier != 2 {
		t.Errorf("report: %+v", r)
	}
	text := r.String()
	for _, want := range []string{"next run resumes at epoch 2", "#0: 2 worker(s), resumed at epoch 1, worker frontiers [3 2]", "f.a (int): 2 key(s), 5 byte(s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("report text lacks %q:\n%s", want, text)
		}
	}
}
