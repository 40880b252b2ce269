package recovery

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"modernc.org/sqlite"
)

// Fault injection, pebble style: fail the i-th SQL operation that the store
// performs on one partition file, for i = 1, 2, … until a whole sequence of
// store calls runs without reaching i, and after every failure check that
// the directory still resumes from a committed epoch with exactly that
// epoch's state.
//
// The seam needs no change to the store: modernc's driver runs a connection
// hook (sqlite.RegisterConnectionHook) on every connection it opens, and the
// hook installs on that connection
//   - an authorizer, which SQLite consults while it compiles each statement
//     (BEGIN, COMMIT and ROLLBACK included); denying an operation makes the
//     statement fail before it has any effect, and
//   - a commit hook, which SQLite calls inside COMMIT; a non-zero return
//     turns the commit into a rollback, as a failed fsync of the WAL would.
//
// The hook is installed once for the test binary; it does nothing unless a
// faultInjector is armed, and then only counts operations on the one file
// the injector names.

// faultInjector fails the failAt-th operation on one partition file.
type faultInjector struct {
	path   string // absolute path of the partition file whose operations count
	failAt int64

	ops   atomic.Int64
	mu    sync.Mutex
	fired string // description of the failed operation, "" until it fires
}

// hit counts one operation and reports whether it must fail.
func (f *faultInjector) hit(dsn, what string) bool {
	if !strings.HasPrefix(dsn, "file:") {
		return false
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Path != f.path {
		return false
	}
	if f.ops.Add(1) != f.failAt {
		return false
	}
	f.mu.Lock()
	f.fired = what
	f.mu.Unlock()
	return true
}

func (f *faultInjector) firedOp() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// faults is the armed injector, nil when none is.
var faults atomic.Pointer[faultInjector]

// countedActions are the statement-level authorizer actions; column reads
// (AuthRead) and functions are parts of a statement, not operations.
var countedActions = map[sqlite.AuthorizerActionCode]string{
	sqlite.AuthSelect:      "SELECT",
	sqlite.AuthInsert:      "INSERT",
	sqlite.AuthUpdate:      "UPDATE",
	sqlite.AuthDelete:      "DELETE",
	sqlite.AuthTransaction: "TRANSACTION",
	sqlite.AuthPragma:      "PRAGMA",
}

func init() {
	// Registered before any test opens a connection: the driver's hook list
	// is not safe to change while connections are being opened.
	sqlite.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, dsn string) error {
		auth, ok := c.(sqlite.AuthorizerRegisterer)
		if !ok {
			return fmt.Errorf("fault_test: the sqlite driver has no authorizer")
		}
		hooks, ok := c.(sqlite.HookRegisterer)
		if !ok {
			return fmt.Errorf("fault_test: the sqlite driver has no commit hook")
		}
		hooks.RegisterCommitHook(func() int32 {
			if f := faults.Load(); f != nil && f.hit(dsn, "commit (fsync of the WAL)") {
				return 1
			}
			return 0
		})
		return auth.RegisterAuthorizer(func(action sqlite.AuthorizerActionCode, arg1, arg2, _, _ string) sqlite.AuthorizerReturnCode {
			name, counted := countedActions[action]
			if !counted {
				return sqlite.AuthorizerOK
			}
			if f := faults.Load(); f != nil && f.hit(dsn, strings.TrimSpace(name+" "+arg1+" "+arg2)) {
				return sqlite.AuthorizerDeny
			}
			return sqlite.AuthorizerOK
		})
	})
}

// faultState is the model: step/key -> value after an epoch.
type faultState map[string]string

func (m faultState) apply(rows []Row) faultState {
	out := faultState{}
	for k, v := range m {
		out[k] = v
	}
	for _, r := range rows {
		if r.Deleted {
			delete(out, r.Step+"/"+r.Key)
		} else {
			out[r.Step+"/"+r.Key] = string(r.Value)
		}
	}
	return out
}

var faultSteps = map[string]StepState{"f.count": {Type: "int"}, "f.inp": {Type: "int"}}

// faultEpoch returns the rows of epoch e: a few keys change, one is deleted
// and one comes back, and the input position moves.
func faultEpoch(e uint64) []Row {
	rows := []Row{{Step: "f.inp", Key: "part-0", Value: val(fmt.Sprint("pos", e))}}
	for k := range 12 {
		key := fmt.Sprint("k", k)
		switch {
		case (k+int(e))%5 == 0:
			rows = append(rows, Row{Step: "f.count", Key: key, Deleted: true})
		case (k+int(e))%3 != 0:
			rows = append(rows, Row{Step: "f.count", Key: key, Value: val(fmt.Sprintf("%s@%d", key, e))})
		}
	}
	return rows
}

// faultTemplate makes, once per partition count, a directory where
// execution 0 committed epochs 1 and 2 (frontier 3) and wrote epoch 3
// without committing it. Each case copies it, which is much cheaper than
// Init and two commits with fsyncs.
func faultTemplate(t *testing.T, n int) (dir string, committed map[uint64]faultState) {
	t.Helper()
	dir = mustInit(t, n)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Begin("f", 2, MakePlan(nil, faultSteps, nil)); err != nil {
		t.Fatal(err)
	}
	committed = map[uint64]faultState{1: {}} // state before epoch 1
	for e := uint64(1); e <= 2; e++ {
		if err := s.WriteEpoch(e, faultEpoch(e)); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(0, []int{0, 1}, e+1, 1); err != nil {
			t.Fatal(err)
		}
		committed[e+1] = committed[e].apply(faultEpoch(e))
	}
	// Written, never committed: the next Begin must forget it.
	if err := s.WriteEpoch(3, []Row{{Step: "f.count", Key: "k1", Value: val("uncommitted")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, committed
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "rec")
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
	}
	return to
}

// faultSequence is the sequence under test: execution 1 begins (resuming
// from 3), writes and commits epoch 3, then writes and commits epoch 4, with
// keepEpochs 0 so that each commit also garbage-collects. It stops at the
// first error, as a run does. It returns the frontier of the last Commit
// that returned nil (3 from execution 0 if none did), and the frontier of a
// Commit that failed, if it is the call that failed (0 otherwise): such a
// Commit may fail after recording its frontier everywhere, in its garbage
// collection.
func faultSequence(s *Store) (lastOK, failedCommit uint64, err error) {
	lastOK = 3
	if _, err := s.Begin("f", 2, MakePlan(faultSteps, faultSteps, nil)); err != nil {
		return lastOK, 0, err
	}
	for e := uint64(3); e <= 4; e++ {
		if err := s.WriteEpoch(e, faultEpoch(e)); err != nil {
			return lastOK, 0, err
		}
		if err := s.Commit(1, []int{0, 1}, e+1, 0); err != nil {
			return lastOK, e + 1, err
		}
		lastOK = e + 1
	}
	return lastOK, 0, nil
}

// checkResumes reopens dir with no fault armed and checks the invariants:
// Open succeeds; the resume epoch (from Inspect and from Begin, which must
// agree) is the last frontier whose Commit returned nil, or the frontier of
// the Commit that failed; and Load returns exactly the state of that epoch.
func checkResumes(t *testing.T, dir string, lastOK, failedCommit uint64, want map[uint64]faultState) uint64 {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the fault: %v", err)
	}
	defer s.Close()
	rep, err := s.Report()
	if err != nil {
		t.Fatalf("Report after the fault: %v", err)
	}
	stored, err := s.StepTypes()
	if err != nil {
		t.Fatalf("StepTypes after the fault: %v", err)
	}
	res, err := s.Begin("f", 1, MakePlan(stored, faultSteps, nil))
	if err != nil {
		t.Fatalf("Begin after the fault: %v", err)
	}
	if rep.ResumeEpoch != res.Epoch {
		t.Errorf("Inspect says the next run resumes at %d, Begin resumed at %d", rep.ResumeEpoch, res.Epoch)
	}
	if res.Epoch != lastOK && (failedCommit == 0 || res.Epoch != failedCommit) {
		t.Fatalf("resumed at epoch %d; the last commit that returned nil was frontier %d (failed commit: %d)",
			res.Epoch, lastOK, failedCommit)
	}
	got := faultState{}
	err = s.Load(res.Epoch, func(step, key string, value []byte) error {
		got[step+"/"+key] = string(value)
		return nil
	})
	if err != nil {
		t.Fatalf("Load(%d) after the fault: %v", res.Epoch, err)
	}
	if diff := cmp.Diff(want[res.Epoch], got); diff != "" {
		t.Fatalf("Load(%d) after the fault (-want +got):\n%s", res.Epoch, diff)
	}
	return res.Epoch
}

// TestFaultInjection fails each operation of faultSequence in turn. With
// one partition it fails every operation; with two, operation i is failed
// on partition i mod 2 (both partitions run the same operations, so every
// position is covered on one of them, at half the cost: SQLite under -race
// is slow).
func TestFaultInjection(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint("partitions=", n), func(t *testing.T) {
			tmpl, want := faultTemplate(t, n)
			for e := uint64(3); e <= 4; e++ {
				want[e+1] = want[e].apply(faultEpoch(e))
			}
			done := make([]bool, n) // past the last operation on that partition
			injected, resumedNew := 0, 0
			for i := int64(1); ; i++ {
				if !slices.Contains(done, false) {
					t.Logf("%d operations failed one at a time (%d resumed from the failed commit's frontier); op %d is past the end",
						injected, resumedNew, i-1)
					break
				}
				if i > 10_000 {
					t.Fatal("the sequence never completes")
				}
				target := int(i % int64(n))
				if done[target] {
					continue
				}
				dir := copyDir(t, tmpl)
				abs, err := filepath.Abs(filepath.Join(dir, partFile(target)))
				if err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				f := &faultInjector{path: abs, failAt: i}
				faults.Store(f)
				lastOK, failedCommit, seqErr := faultSequence(s)
				faults.Store(nil)
				s.Close()
				what := f.firedOp()
				if what == "" {
					// i is past the sequence's last operation on this file.
					if seqErr != nil {
						t.Fatalf("part-%d op %d: no fault fired, but the sequence failed: %v", target, i, seqErr)
					}
					if got := checkResumes(t, dir, lastOK, 0, want); got != 5 {
						t.Fatalf("complete sequence resumed at %d, want 5", got)
					}
					done[target] = true
					continue
				}
				injected++
				if seqErr == nil {
					// A failed read or a rolled-back commit that the store
					// did not notice would make this pass silently.
					t.Fatalf("part-%d op %d (%s) failed, but the sequence returned no error", target, i, what)
				}
				got := checkResumes(t, dir, lastOK, failedCommit, want)
				if failedCommit != 0 && got == failedCommit {
					resumedNew++
				}
			}
		})
	}
}

// TestBackupAcrossRestart copies the partitions of a directory one at a
// time, as a backup does, with a restart of the flow between two copies,
// and resumes from the copies. Each partition on its own is a committed
// state; the set must resume from the older of them (Begin and Report once
// counted a lagging partition at the newer execution's resume epoch, and
// resumed with keys from different epochs).
func TestBackupAcrossRestart(t *testing.T) {
	dir := mustInit(t, 2)
	// One key per partition.
	keyIn := map[int]string{}
	for i := 0; len(keyIn) < 2; i++ {
		k := fmt.Sprint("k", i)
		if _, ok := keyIn[PartitionFor("f.count", k, 2)]; !ok {
			keyIn[PartitionFor("f.count", k, 2)] = k
		}
	}
	write := func(s *Store, ex int, e uint64) {
		t.Helper()
		if err := s.WriteEpoch(e, []Row{
			{Step: "f.count", Key: keyIn[0], Value: val(fmt.Sprint(e))},
			{Step: "f.count", Key: keyIn[1], Value: val(fmt.Sprint(e))},
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ex, []int{0}, e+1, 100); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, dir)
	begin(t, s, "f", 1, steps1)
	write(s, 0, 1)
	write(s, 0, 2) // frontier 3
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.MkdirAll(backup, 0o755); err != nil {
		t.Fatal(err)
	}
	// The backup copies part-0 now (SQLite's online backup gives the same
	// committed content as closing and copying).
	s.Close()
	copyFile(t, filepath.Join(dir, "part-0.sqlite3"), filepath.Join(backup, "part-0.sqlite3"))
	s = mustOpen(t, dir)
	r := begin(t, s, "f", 1, steps1) // the same execution goes on after a restart
	write(s, r.Execution, 3)
	s.Close()
	// A restart: execution 2 begins at 4; then part-1 is copied.
	s = mustOpen(t, dir)
	begin(t, s, "f", 1, steps1)
	s.Close()
	copyFile(t, filepath.Join(dir, "part-1.sqlite3"), filepath.Join(backup, "part-1.sqlite3"))

	s = mustOpen(t, backup)
	r = begin(t, s, "f", 1, steps1)
	got := map[string]string{}
	if err := s.Load(r.Epoch, func(step, key string, value []byte) error {
		got[key] = string(value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// part-0's copy committed through epoch 2 (frontier 3): resuming at 3
	// from the set is consistent; resuming later reads part-0's key as of
	// epoch 2 and part-1's as of a later epoch.
	if r.Epoch != 3 {
		t.Errorf("the backup resumes at epoch %d with state %v; part-0's copy was committed only through epoch 2, so the set must resume at 3",
			r.Epoch, got)
	}
}
