package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/codec"
)

// healthyDir builds a 3-partition directory with two executions (the second
// resumed from the first) whose values are real CBOR, as a run writes them.
func healthyDir(t *testing.T) (string, []string) {
	t.Helper()
	keys := keysPerPartition(3)
	dir := mustInit(t, 3)
	for run := range 2 {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		r := begin(t, s, "f", 2, steps1)
		for e := r.Epoch; e < r.Epoch+3; e++ {
			var rows []Row
			for i, k := range keys {
				v, err := codec.Marshal(int(e) * (i + 1))
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, Row{Step: "f.count", Key: k, Value: v})
			}
			if run == 1 && e == r.Epoch {
				rows = append(rows, Row{Step: "f.count", Key: keys[0], Deleted: true})
			}
			if err := s.WriteEpoch(e, rows); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(r.Execution, []int{0, 1}, e+1, 10); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir, keys
}

// verified runs Verify and checks that it changed no byte of dir.
func verified(t *testing.T, dir string) VerifyReport {
	t.Helper()
	before := snapshotDir(t, dir)
	r, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Errorf("verify changed files (-before +after):\n%s", diff)
	}
	return r
}

// damageSQL changes a partition behind the store's back, as damage would.
func damageSQL(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := openDB(path, "rw")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestVerifyHealthy(t *testing.T) {
	dir, _ := healthyDir(t)
	r := verified(t, dir)
	if len(r.Findings) != 0 {
		t.Fatalf("findings on a healthy directory:\n%s", r)
	}
	if r.Resume.Epoch != 7 || r.Resume.Execution != 2 {
		t.Errorf("resume %+v, want epoch 7 execution 2", r.Resume)
	}
	text := r.String()
	for _, want := range []string{"part-0.sqlite3: ok (frontier 7, ", "ok, 0 warning(s): the next run resumes at epoch 7 as execution 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	var rows int64
	for _, p := range r.Partitions {
		rows += p.Rows
	}
	if rows == 0 {
		t.Error("no rows checked")
	}
	// A fresh directory is healthy too.
	fresh := verified(t, mustInit(t, 2))
	if len(fresh.Findings) != 0 || !fresh.Resume.Fresh {
		t.Errorf("fresh directory: %+v", fresh)
	}
}

func (r VerifyReport) String() string {
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	return b.String()
}

// finds checks that Verify reports a problem (or, with warning, only a
// warning) about path containing every wanted text.
func finds(t *testing.T, dir, path string, warning bool, wants ...string) VerifyReport {
	t.Helper()
	r := verified(t, dir)
	text := r.String()
	if warning && r.Problems() != 0 || !warning && r.Problems() == 0 {
		t.Errorf("%d problem(s), want warning only = %v:\n%s", r.Problems(), warning, text)
	}
	for _, f := range r.Findings {
		if f.Path == path && f.Warning == warning {
			for _, w := range wants {
				if !strings.Contains(f.Text, w) {
					t.Errorf("finding about %s lacks %q: %s", path, w, f.Text)
				}
			}
			return r
		}
	}
	t.Errorf("no finding about %s:\n%s", path, text)
	return r
}

func TestVerifyFindsDamage(t *testing.T) {
	t.Run("truncated file", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-1.sqlite3")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()-1000); err != nil {
			t.Fatal(err)
		}
		r := finds(t, dir, p, false, "truncated?")
		if !strings.Contains(r.String(), p+": DAMAGED (unreadable)") {
			t.Errorf("report:\n%s", r)
		}
		// The other files are still checked.
		if !r.Partitions[0].Readable || !r.Partitions[2].Readable || r.Partitions[2].Rows == 0 {
			t.Errorf("other partitions not checked: %+v", r.Partitions)
		}
	})
	t.Run("truncated to whole pages", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-2.sqlite3")
		if err := os.Truncate(p, 4096); err != nil {
			t.Fatal(err)
		}
		finds(t, dir, p, false)
	})
	t.Run("row past the frontier", func(t *testing.T) {
		dir, keys := healthyDir(t)
		p := filepath.Join(dir, "part-0.sqlite3")
		v, _ := codec.Marshal(99)
		damageSQL(t, p, "INSERT INTO snaps VALUES('f.count', ?, 12, ?)", keys[0], v)
		r := finds(t, dir, p, true, "1 row(s) at epochs 12 to 12, at or after the committed frontier 7", "the next run deletes them")
		if !strings.Contains(r.String(), "ok, 1 warning(s): the next run resumes at epoch 7") {
			t.Errorf("report:\n%s", r)
		}
	})
	t.Run("undecodable row", func(t *testing.T) {
		dir, keys := healthyDir(t)
		p := filepath.Join(dir, "part-2.sqlite3")
		damageSQL(t, p, "UPDATE changes SET batch = json_set(batch, '$.' || ?1, '1bff') WHERE epoch = 6 AND json_extract(batch, '$.' || ?1) IS NOT NULL", keys[2])
		finds(t, dir, p, false, "1 stored value(s) cannot be decoded", fmt.Sprintf("step f.count key %q epoch 6 (2 bytes)", keys[2]))
	})
	t.Run("undecodable merged row", func(t *testing.T) {
		dir, keys := healthyDir(t)
		p := filepath.Join(dir, "part-2.sqlite3")
		damageSQL(t, p, "INSERT INTO snaps VALUES('f.count', ?, 1, x'1bff')", keys[2])
		finds(t, dir, p, false, "1 stored value(s) cannot be decoded", fmt.Sprintf("step f.count key %q epoch 1 (2 bytes)", keys[2]))
	})
	t.Run("malformed change batch", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-1.sqlite3")
		damageSQL(t, p, "UPDATE changes SET batch = substr(batch, 1, 9) WHERE seq = (SELECT min(seq) FROM changes)")
		finds(t, dir, p, false, "1 change log batch(es) cannot be decoded")
		// A resume and inspect name the file, the batch and what is wrong
		// with it, not only that something is.
		_, ierr := Inspect(dir)
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		lerr := s.Load(7, func(string, string, []byte) error { return nil })
		// A run that drops the step does not read its batches.
		xerr := s.LoadExcept(7, []string{"f.count"}, func(step, _ string, _ []byte) error {
			t.Errorf("LoadExcept passed a row of step %s", step)
			return nil
		})
		if xerr != nil {
			t.Errorf("LoadExcept f.count: %v", xerr)
		}
		s.Close()
		for _, err := range []error{ierr, lerr} {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) ||
				!strings.Contains(err.Error(), "changes batch of step f.count epoch") || !strings.Contains(err.Error(), "malformed change batch: entry 0: unterminated value") ||
				!strings.Contains(err.Error(), "--drop-state f.count") {
				t.Errorf("err = %v, want ErrCorrupt naming %s, the batch and the cause", err, p)
			}
		}
	})
	t.Run("missing partition", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-1.sqlite3")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		finds(t, dir, p, false, "missing: the partitions say there are 3")
	})
	t.Run("row in the wrong partition", func(t *testing.T) {
		dir, keys := healthyDir(t)
		p := filepath.Join(dir, "part-0.sqlite3")
		v, _ := codec.Marshal(1)
		damageSQL(t, p, "INSERT INTO snaps VALUES('f.count', ?, 2, ?)", keys[1], v)
		finds(t, dir, p, false, fmt.Sprintf("step f.count key %q epoch 2 belongs in part-1.sqlite3", keys[1]))
	})
	t.Run("incoherent executions", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-2.sqlite3")
		damageSQL(t, p, "INSERT INTO fronts VALUES(1, 5, 9)")
		damageSQL(t, p, "INSERT INTO fronts VALUES(7, 0, 9)")
		r := finds(t, dir, p, false, "worker 5 of execution 1, which had 2 worker(s)")
		if !strings.Contains(r.String(), "belongs to execution 7, which the partition does not record") {
			t.Errorf("report:\n%s", r)
		}
	})
	t.Run("partitions out of step", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-1.sqlite3")
		damageSQL(t, p, "UPDATE executions SET exec_id = 'other' WHERE ex_num = 1")
		finds(t, dir, dir, false, "disagree about execution 1")
	})
	t.Run("not a database", func(t *testing.T) {
		dir, _ := healthyDir(t)
		p := filepath.Join(dir, "part-0.sqlite3")
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 8192)), 0o644); err != nil {
			t.Fatal(err)
		}
		finds(t, dir, p, false, "not an SQLite database")
	})
}

func TestVerifyCrashedRunIsResumable(t *testing.T) {
	keys := keysPerPartition(2)
	dir := mustInit(t, 2)
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 1, steps1)
	for e := r.Epoch; e < 4; e++ {
		var rows []Row
		for _, k := range keys {
			v, _ := codec.Marshal(int(e))
			rows = append(rows, Row{Step: "f.count", Key: k, Value: v})
		}
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if e < 3 { // epoch 3 is written but the run dies before committing it
			if err := s.Commit(0, []int{0}, e+1, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDirTo(t, dir, crashed) // as a SIGKILL leaves them, -wal and -shm included
	s.Close()
	rep := verified(t, crashed)
	if rep.Problems() != 0 || rep.Warnings() != 2 || rep.Resume.Epoch != 3 {
		t.Errorf("crashed run: %d problems, %d warnings, resume %d; want 0, 2 (one per partition), 3:\n%s",
			rep.Problems(), rep.Warnings(), rep.Resume.Epoch, rep)
	}
}
