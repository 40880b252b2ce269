package recovery

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/codec"
)

// TestBackupWhileRunning takes backups while a writer commits epoch after
// epoch, and checks that a run on each backup resumes exactly the state the
// writer had committed at the backup's epoch, with and without kept epochs
// (-b): with none, a partition copied after a commit that the others missed
// has already collected what they need, and Backup must copy again.
func TestBackupWhileRunning(t *testing.T) {
	for _, keep := range []uint64{0, 2} {
		t.Run(fmt.Sprint("keep ", keep), func(t *testing.T) {
			const parts = 4
			dir := mustInit(t, parts)
			var keys []string
			for i := range 40 {
				keys = append(keys, fmt.Sprint("k", i))
			}
			s := mustOpen(t, dir)
			r := begin(t, s, "f", 1, steps1)

			var mu sync.Mutex
			committed := map[uint64]map[string]string{} // state after each committed epoch
			state := map[string]string{}
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- func() error {
					for e := r.Epoch; ; e++ {
						select {
						case <-stop:
							return nil
						default:
						}
						var rows []Row
						for i, k := range keys {
							switch {
							case (int(e)+i)%7 == 0:
								rows = append(rows, Row{Step: "f.count", Key: k, Deleted: true})
								delete(state, k)
							case (int(e)+i)%3 == 0 || e == 1:
								v, err := codec.Marshal(fmt.Sprint(k, "@", e))
								if err != nil {
									return err
								}
								rows = append(rows, Row{Step: "f.count", Key: k, Value: v})
								state[k] = string(v)
							}
						}
						if err := s.WriteEpoch(e, rows); err != nil {
							return err
						}
						if err := s.Commit(r.Execution, []int{0}, e+1, keep); err != nil {
							return err
						}
						mu.Lock()
						committed[e] = maps.Clone(state)
						mu.Unlock()
						if keep == 0 {
							// Without kept epochs a backup needs one round
							// in which no commit falls between its copies
							// (the documented limit: "a flow committing
							// faster than partitions can be copied needs a
							// larger -b"). Pace the writer like a flow with
							// 10ms epochs, so that on a loaded machine the
							// test does not outrun every round; commits
							// still fall between copies, and Backup copies
							// again (TestBackupPinsAgain pins that path).
							time.Sleep(10 * time.Millisecond)
						}
					}
				}()
			}()
			var backups []BackupResult
			// Each backup comes after at least one more commit: on a loaded
			// machine a fixed pause may see none.
			commits := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(committed)
			}
			for i := range 4 {
				time.Sleep(30 * time.Millisecond)
				deadline := time.Now().Add(10 * time.Second)
				for seen := commits(); (commits() <= seen || commits() < 2) && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				dest := filepath.Join(t.TempDir(), "backups", fmt.Sprint("b", i))
				res, err := Backup(dir, dest)
				if err != nil {
					close(stop)
					<-done
					t.Fatal(err)
				}
				backups = append(backups, res)
			}
			close(stop)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			for _, b := range backups {
				if b.Resume.Fresh || b.Resume.Epoch < 2 {
					t.Errorf("backup %s resumes at %+v; the writer had committed epochs before", b.Dest, b.Resume)
					continue
				}
				if rep := verified(t, b.Dest); rep.Problems() != 0 || rep.Warnings() != 0 {
					t.Errorf("verify %s:\n%s", b.Dest, rep)
				}
				bs, err := Open(b.Dest)
				if err != nil {
					t.Fatal(err)
				}
				res := begin(t, bs, "f", 2, steps1)
				if res.Epoch != b.Resume.Epoch {
					t.Errorf("%s: run resumes at %d, backup said %d", b.Dest, res.Epoch, b.Resume.Epoch)
				}
				got := map[string]string{}
				if err := bs.Load(res.Epoch, func(step, key string, value []byte) error {
					got[key] = string(value)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				bs.Close()
				mu.Lock()
				want := committed[res.Epoch-1]
				mu.Unlock()
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: resumed state at epoch %d differs from what was committed (-want +got):\n%s", b.Dest, res.Epoch, diff)
				}
			}
			t.Logf("backups: %+v", backups)
		})
	}
}

func TestBackupRefusals(t *testing.T) {
	dir := mustInit(t, 2)
	existing := t.TempDir()
	if _, err := Backup(dir, existing); err == nil || !strings.Contains(err.Error(), "the destination already exists") {
		t.Errorf("backup onto an existing directory: %v", err)
	}
	if _, err := Backup(filepath.Join(t.TempDir(), "nope"), filepath.Join(t.TempDir(), "b")); err == nil || !strings.Contains(err.Error(), "runnel recovery init") {
		t.Errorf("backup of a missing directory: %v", err)
	}
	// A directory that cannot resume is not copied, and nothing is left.
	bad := mustInit(t, 2)
	if err := os.Remove(filepath.Join(bad, "part-1.sqlite3")); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	if _, err := Backup(bad, filepath.Join(parent, "b")); err == nil || !strings.Contains(err.Error(), "missing part-1.sqlite3") {
		t.Errorf("backup of a damaged directory: %v", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("a refused backup left %v", left)
	}
	// A fresh directory copies as a fresh directory with the same identity;
	// what a killed backup to the same dest left beside it is removed.
	destParent := t.TempDir()
	dest := filepath.Join(destParent, "b")
	killed := filepath.Join(destParent, ".b.backup-1234")
	if err := os.MkdirAll(killed, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, "part-0.sqlite3"), filepath.Join(killed, "part-0.sqlite3"))
	other := filepath.Join(destParent, ".c.backup-1234") // another dest's
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	res, err := Backup(dir, dest)
	if err != nil || !res.Resume.Fresh || res.Pins != 1 {
		t.Fatalf("backup of a fresh directory: %+v, %v", res, err)
	}
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Errorf("backup changed the source (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(killed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed backup's leftover %s is still there (%v)", killed, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another destination's leftover was removed: %v", err)
	}
	a, b := mustOpen(t, dir), mustOpen(t, dest)
	if a.DirID() != b.DirID() || a.DirID() == "" {
		t.Errorf("identity %q, copy's %q", a.DirID(), b.DirID())
	}
}

// TestBackupPinsAgain: a commit between two partitions' snapshots, with no
// epochs kept, leaves them without a common epoch; Backup takes them again.
func TestBackupPinsAgain(t *testing.T) {
	keys := keysPerPartition(3)
	dir := mustInit(t, 3)
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 1, steps1)
	commit := func(e uint64) {
		t.Helper()
		var rows []Row
		for _, k := range keys {
			v, _ := codec.Marshal(fmt.Sprint(k, e))
			rows = append(rows, Row{Step: "f.count", Key: k, Value: v})
		}
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(r.Execution, []int{0}, e+1, 0); err != nil {
			t.Fatal(err)
		}
	}
	commit(1)
	commit(2)
	backupPinned = func(round, i int) {
		if round == 1 && i == 0 {
			// Two commits: the second records the first's horizon, 4,
			// beyond the pinned partition's frontier 3.
			commit(3)
			commit(4)
		}
	}
	defer func() { backupPinned = nil }()
	res, err := Backup(dir, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pins != 2 || res.Resume.Epoch != 5 {
		t.Errorf("backup: %+v; want 2 pins and resume at epoch 5", res)
	}
	b := mustOpen(t, res.Dest)
	got := map[string]string{}
	if err := b.Load(5, func(_, key string, v []byte) error { got[key] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		want, _ := codec.Marshal(fmt.Sprint(k, 4))
		if got[k] != string(want) {
			t.Errorf("key %s: %q, want %q", k, got[k], want)
		}
	}
}
