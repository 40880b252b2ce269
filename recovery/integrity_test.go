package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keysPerPartition returns one key of step f.count in each of n partitions.
func keysPerPartition(n int) []string {
	keys := make([]string, n)
	found := 0
	for i := 0; found < n; i++ {
		k := fmt.Sprint("k", i)
		if p := PartitionFor("f.count", k, n); keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// runEpochs begins an execution and commits epochs from its resume epoch on,
// each writing every key's value as "e<epoch>", keeping keep epochs.
func runEpochs(t *testing.T, dir string, keys []string, epochs int, keep uint64) Resume {
	t.Helper()
	s := mustOpen(t, dir)
	defer s.Close()
	r := begin(t, s, "f", 1, steps1)
	for e := r.Epoch; e < r.Epoch+uint64(epochs); e++ {
		rows := make([]Row, len(keys))
		for i, k := range keys {
			rows[i] = Row{Step: "f.count", Key: k, Value: val(fmt.Sprint("e", e))}
		}
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(r.Execution, []int{0}, e+1, keep); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func copyDirTo(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
}

// refused checks that Open and Begin refuse dir with sentinel and every
// wanted text, that Inspect reports the same verdict, and that none of it
// changed a byte.
func refused(t *testing.T, dir string, sentinel error, wants ...string) {
	t.Helper()
	before := snapshotDir(t, dir)
	s, err := Open(dir)
	if err == nil {
		s.Close()
		t.Fatalf("Open succeeded, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("Open error is not %v: %v", sentinel, err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Open error does not contain %q:\n%v", w, err)
		}
	}
	rep, err := Inspect(dir)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	verr := rep.Verdict.Err()
	if !errors.Is(verr, sentinel) {
		t.Errorf("Inspect verdict is not %v: %v", sentinel, verr)
	}
	if text := rep.String(); !strings.Contains(text, "next run is REFUSED") {
		t.Errorf("Inspect report does not say the run is refused:\n%s", text)
	}
	if rep.ResumeEpoch != 0 {
		t.Errorf("Inspect report says the next run resumes at %d", rep.ResumeEpoch)
	}
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Errorf("Open or Inspect modified the directory (-before +after):\n%s", diff)
	}
}

// TestStalePartitionRefused: one partition restored from a copy older than
// what the others kept (-b) is refused, naming the partitions and epochs;
// one restored within -b resumes exactly from its older epoch.
func TestStalePartitionRefused(t *testing.T) {
	keys := keysPerPartition(3)
	t.Run("beyond -b", func(t *testing.T) {
		dir := mustInit(t, 3)
		runEpochs(t, dir, keys, 3, 0) // frontier 4, collected before 4
		backup := filepath.Join(t.TempDir(), "backup")
		copyDirTo(t, dir, backup)
		runEpochs(t, dir, keys, 3, 0) // frontier 7, collected before 7
		copyFile(t, filepath.Join(backup, "part-1.sqlite3"), filepath.Join(dir, "part-1.sqlite3"))
		refused(t, dir, ErrStale,
			"resume from epoch 4",
			filepath.Join(dir, "part-1.sqlite3")+" (frontier 4)",
			filepath.Join(dir, "part-0.sqlite3")+" (frontier 7, collected before epoch 7)",
			filepath.Join(dir, "part-2.sqlite3")+" (frontier 7, collected before epoch 7)",
			"Restore all partitions from one backup")
		// The backup itself, all from one moment, resumes.
		s := mustOpen(t, backup)
		r := begin(t, s, "f", 1, steps1)
		if r.Epoch != 4 {
			t.Errorf("backup resumes at %d, want 4", r.Epoch)
		}
	})
	t.Run("inconsistent in itself", func(t *testing.T) {
		// A partition whose frontier is behind its own garbage-collection
		// horizon: what an older -wal file put back beside a newer
		// partition file (or a torn copy) leaves. Named as such, not as
		// the others being ahead of it.
		dir := mustInit(t, 3)
		runEpochs(t, dir, keys, 6, 0) // frontier 7, collected before 7
		p := filepath.Join(dir, "part-1.sqlite3")
		execSQL(t, p, "UPDATE fronts SET worker_frontier = 4")
		refused(t, dir, ErrStale, p+" is inconsistent in itself: its committed frontier is 4, but it already garbage-collected state before epoch 7",
			"a -wal file that belongs to another copy")
	})
	t.Run("the others restored", func(t *testing.T) {
		// The mirror image: part-1 is the newest, the others come from the
		// backup; part-1 collected past their frontier.
		dir := mustInit(t, 3)
		runEpochs(t, dir, keys, 3, 0)
		backup := filepath.Join(t.TempDir(), "backup")
		copyDirTo(t, dir, backup)
		runEpochs(t, dir, keys, 3, 0)
		copyFile(t, filepath.Join(backup, "part-0.sqlite3"), filepath.Join(dir, "part-0.sqlite3"))
		copyFile(t, filepath.Join(backup, "part-2.sqlite3"), filepath.Join(dir, "part-2.sqlite3"))
		refused(t, dir, ErrStale, "resume from epoch 4", filepath.Join(dir, "part-1.sqlite3")+" (frontier 7, collected before epoch 7)")
	})
	t.Run("within -b", func(t *testing.T) {
		dir := mustInit(t, 3)
		runEpochs(t, dir, keys, 3, 10)
		backup := filepath.Join(t.TempDir(), "backup")
		copyDirTo(t, dir, backup)
		runEpochs(t, dir, keys, 3, 10)
		copyFile(t, filepath.Join(backup, "part-1.sqlite3"), filepath.Join(dir, "part-1.sqlite3"))
		s := mustOpen(t, dir)
		r := begin(t, s, "f", 1, steps1)
		if r.Epoch != 4 {
			t.Fatalf("resumes at %d, want 4 (part-1's frontier)", r.Epoch)
		}
		got := map[string]string{}
		if err := s.Load(r.Epoch, func(_, key string, value []byte) error {
			got[key] = string(value)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, k := range keys {
			want[k] = "e3" // every key as of epoch 3, in every partition
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("state at the older epoch (-want +got):\n%s", diff)
		}
	})
	t.Run("lost wal", func(t *testing.T) {
		// A crash, then part-2's -wal is lost: its main file holds only
		// what was checkpointed, an older frontier.
		dir := mustInit(t, 3)
		runEpochs(t, dir, keys, 2, 0)
		backup := filepath.Join(t.TempDir(), "backup")
		copyDirTo(t, dir, backup) // closed cleanly: everything checkpointed
		s := mustOpen(t, dir)
		r := begin(t, s, "f", 1, steps1)
		for e := r.Epoch; e < r.Epoch+3; e++ {
			rows := []Row{}
			for _, k := range keys {
				rows = append(rows, Row{Step: "f.count", Key: k, Value: val(fmt.Sprint("e", e))})
			}
			if err := s.WriteEpoch(e, rows); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(r.Execution, []int{0}, e+1, 0); err != nil {
				t.Fatal(err)
			}
		}
		// The crash: the files as they are while the store is open, without
		// part-2's -wal (and so without its -shm, which belongs to it).
		crashed := filepath.Join(t.TempDir(), "crashed")
		copyDirTo(t, dir, crashed)
		s.Close()
		os.Remove(filepath.Join(crashed, "part-2.sqlite3-wal"))
		os.Remove(filepath.Join(crashed, "part-2.sqlite3-shm"))
		copyFile(t, filepath.Join(backup, "part-2.sqlite3"), filepath.Join(crashed, "part-2.sqlite3"))
		refused(t, crashed, ErrStale, filepath.Join(crashed, "part-2.sqlite3")+" (frontier 3)")
	})
}

// TestForeignPartitionRefused: a partition of another directory (same flow,
// same partition count), or a freshly initialised one, is refused.
func TestForeignPartitionRefused(t *testing.T) {
	keys := keysPerPartition(2)
	t.Run("another directory", func(t *testing.T) {
		a, b := mustInit(t, 2), mustInit(t, 2)
		runEpochs(t, a, keys, 2, 0)
		runEpochs(t, b, keys, 2, 0) // the same history, to the epoch
		copyFile(t, filepath.Join(b, "part-1.sqlite3"), filepath.Join(a, "part-1.sqlite3"))
		refused(t, a, ErrPartitionMismatch, filepath.Join(a, "part-1.sqlite3")+" (directory ", "comes from another recovery directory than "+filepath.Join(a, "part-0.sqlite3"))
	})
	t.Run("freshly initialised", func(t *testing.T) {
		a, b := mustInit(t, 2), mustInit(t, 2)
		runEpochs(t, a, keys, 2, 0)
		copyFile(t, filepath.Join(b, "part-1.sqlite3"), filepath.Join(a, "part-1.sqlite3"))
		refused(t, a, ErrPartitionMismatch, "another recovery directory")
	})
	t.Run("a copy run on its own", func(t *testing.T) {
		// cp -a keeps the directory identity: the copy and the original
		// then each run once more, from the same epoch with the same
		// workers, and a partition of the copy is put into the original.
		a := mustInit(t, 2)
		runEpochs(t, a, keys, 2, 0)
		b := filepath.Join(t.TempDir(), "copy")
		copyDirTo(t, a, b)
		runEpochs(t, a, keys, 2, 0)
		runEpochs(t, b, keys, 2, 0)
		copyFile(t, filepath.Join(b, "part-1.sqlite3"), filepath.Join(a, "part-1.sqlite3"))
		refused(t, a, ErrPartitionMismatch, "disagree about execution 1", "different histories")
	})
	t.Run("format 1 history", func(t *testing.T) {
		// Without identities (format 1), histories still tell: another
		// directory's partition disagrees about an execution.
		a := format1Dir(t)
		b := format1Dir(t)
		execSQL(t, filepath.Join(b, "part-1.sqlite3"), "UPDATE executions SET worker_count = 3")
		copyFile(t, filepath.Join(b, "part-1.sqlite3"), filepath.Join(a, "part-1.sqlite3"))
		refused(t, a, ErrPartitionMismatch, "disagree about execution 0", "different histories")
	})
	t.Run("format 1 blank", func(t *testing.T) {
		a := format1Dir(t)
		execSQL(t, filepath.Join(a, "part-1.sqlite3"), "DELETE FROM executions", "DELETE FROM fronts", "DELETE FROM snaps",
			"DELETE FROM steps", "UPDATE meta SET value = '' WHERE name = 'flow_id'", "UPDATE meta SET value = '0' WHERE name = 'gc_epoch'")
		refused(t, a, ErrPartitionMismatch, filepath.Join(a, "part-1.sqlite3")+" records no run", "would start over from epoch 1")
	})
}

// format1Dir copies the format 1 directory in testdata, written by the
// release before format 2: flow "f", two partitions, one execution that
// committed epochs 1-3 (keys a and b of f.count every epoch, c in epoch 2,
// and f.inp's position), collected before epoch 3.
func format1Dir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "f1")
	copyDirTo(t, filepath.Join("testdata", "format1"), dir)
	return dir
}

// TestFormat1 reads a directory written in format 1, inspects it without
// upgrading it, and upgrades it in place at the first run, keeping its
// state; an older release then refuses it as newer.
func TestFormat1(t *testing.T) {
	dir := format1Dir(t)
	before := snapshotDir(t, dir)
	rep, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FormatVersion != 1 || rep.DirID != "" || rep.ResumeEpoch != 4 || rep.Verdict.Err() != nil {
		t.Errorf("format 1 report: format %d, dir id %q, resume %d, verdict %v", rep.FormatVersion, rep.DirID, rep.ResumeEpoch, rep.Verdict.Err())
	}
	if text := rep.String(); !strings.Contains(text, "(none: format 1, given by the next run)") {
		t.Errorf("report:\n%s", text)
	}
	s := mustOpen(t, dir)
	stored, err := s.StepTypes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]StepState{"f.count": {Type: "key string, state int"}, "f.inp": {Type: "position int64"}}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("format 1 steps (-want +got):\n%s", diff)
	}
	s.Close()
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Fatalf("reading format 1 changed files:\n%s", diff)
	}

	// The plan resumes steps without a recorded shape, and says so.
	current := map[string]StepState{
		"f.count": {Type: "key string, state int", Shape: "int64"},
		"f.inp":   {Type: "position int64", Shape: "int64"},
	}
	p := MakePlan(stored, current, nil)
	if p.Err() != nil || !strings.Contains(p.String(), "resume   f.count (key string, state int): shape not recorded (format 1)") {
		t.Errorf("plan: %v\n%s", p.Err(), p)
	}
	s = mustOpen(t, dir)
	r, err := s.Begin("f", 2, p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch != 4 || r.Execution != 1 {
		t.Errorf("resume %+v, want epoch 4, execution 1", r)
	}
	got := map[string]string{}
	if err := s.Load(r.Epoch, func(step, key string, value []byte) error {
		got[step+"/"+key] = fmt.Sprintf("%x", value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// CBOR: 3 is 03, 30 is 181e, 7 is 07, 300 is 19012c.
	wantState := map[string]string{"f.count/a": "03", "f.count/b": "181e", "f.count/c": "07", "f.inp/p0": "19012c"}
	if diff := cmp.Diff(wantState, got); diff != "" {
		t.Errorf("format 1 state after the upgrade (-want +got):\n%s", diff)
	}
	id := s.DirID()
	s.Close()
	if len(id) != 32 {
		t.Errorf("upgraded directory identity %q", id)
	}
	rep, err = Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FormatVersion != FormatVersion || rep.DirID != id {
		t.Errorf("after the upgrade: format %d, identity %q (want %d, %q)", rep.FormatVersion, rep.DirID, FormatVersion, id)
	}
	for _, st := range rep.Steps {
		if st.Shape != "int64" {
			t.Errorf("step %s shape %q after the first run, want int64", st.ID, st.Shape)
		}
	}
}

// TestInterruptedUpgrade: a crash between partitions while Begin upgrades
// leaves format 1 and format 2 partitions; they open, and the next Begin
// finishes the upgrade with the same identity.
func TestInterruptedUpgrade(t *testing.T) {
	dir := format1Dir(t)
	// part-0 upgraded, part-1 not, as after a crash during Begin's phase 2.
	execSQL(t, filepath.Join(dir, "part-0.sqlite3"),
		"ALTER TABLE steps ADD COLUMN state_shape TEXT NOT NULL DEFAULT ''",
		"ALTER TABLE executions ADD COLUMN exec_id TEXT NOT NULL DEFAULT ''",
		"INSERT INTO meta(name, value) VALUES('dir_id', '0123456789abcdef0123456789abcdef')",
		"UPDATE meta SET value = '2' WHERE name = 'format_version'",
		"INSERT INTO executions VALUES(1, 1, 4, 'feedfeedfeedfeedfeedfeedfeedfeed')")
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 1, map[string]string{"f.count": "key string, state int", "f.inp": "position int64"})
	if r.Epoch != 4 || r.Execution != 2 {
		t.Errorf("resume %+v", r)
	}
	s.Close()
	rep, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FormatVersion != FormatVersion || rep.DirID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("format %d, identity %q", rep.FormatVersion, rep.DirID)
	}
}

// TestInspectAfterCrashWritesNothing: inspecting the files a killed run
// leaves (-wal and -shm included) changes no byte, and sees the committed
// data that is still only in the -wal.
func TestInspectAfterCrashWritesNothing(t *testing.T) {
	keys := keysPerPartition(2)
	dir := mustInit(t, 2)
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 1, steps1)
	for e := r.Epoch; e < 4; e++ {
		rows := []Row{{Step: "f.count", Key: keys[0], Value: val("x")}, {Step: "f.count", Key: keys[1], Value: val("y")}}
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(0, []int{0}, e+1, 0); err != nil {
			t.Fatal(err)
		}
	}
	early := filepath.Join(t.TempDir(), "early")
	copyDirTo(t, dir, early) // for an -shm index older than its -wal
	// A checkpoint restarts the log with new salts, so early's -shm then
	// describes another generation of the -wal than the crashed copy's.
	for _, p := range s.parts {
		if _, err := p.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteEpoch(4, []Row{{Step: "f.count", Key: keys[1], Value: val("y")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0}, 5, 0); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDirTo(t, dir, crashed) // as a SIGKILL leaves them: the store is open
	s.Close()
	if _, err := os.Stat(filepath.Join(crashed, "part-0.sqlite3-wal")); err != nil {
		t.Fatalf("the crashed copy has no -wal: %v", err)
	}
	for _, variant := range []string{"with -shm", "without -shm", "zeroed -shm", "garbage -shm", "older -shm"} {
		t.Run(variant, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "d")
			copyDirTo(t, crashed, d)
			shm := filepath.Join(d, "part-1.sqlite3-shm")
			switch variant {
			case "without -shm":
				os.Remove(shm)
			case "zeroed -shm", "garbage -shm":
				b, err := os.ReadFile(shm)
				if err != nil {
					t.Fatal(err)
				}
				for i := range b {
					b[i] = 0
					if variant == "garbage -shm" {
						b[i] = byte(i*7 + 3)
					}
				}
				if err := os.WriteFile(shm, b, 0o644); err != nil {
					t.Fatal(err)
				}
			case "older -shm":
				b, err := os.ReadFile(filepath.Join(early, "part-1.sqlite3-shm"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(shm, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshotDir(t, d)
			rep, err := Inspect(d)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ResumeEpoch != 5 || rep.Verdict.Err() != nil {
				t.Errorf("resume %d, verdict %v; want 5 (the commits in the -wal)", rep.ResumeEpoch, rep.Verdict.Err())
			}
			ro, err := OpenReadOnly(d)
			if err != nil {
				t.Fatal(err)
			}
			if v, _, ok, err := ro.Latest("f.count", keys[1]); err != nil || !ok || string(v) != "y" {
				t.Errorf("Latest = %q, %v, %v", v, ok, err)
			}
			if _, err := ro.Begin("f", 1, MakePlan(nil, types(steps1), nil)); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Begin on a read-only store = %v", err)
			}
			ro.Close()
			if diff := cmp.Diff(before, snapshotDir(t, d)); diff != "" {
				t.Errorf("inspect changed files (-before +after):\n%s", diff)
			}
			// A run validates read-only first too, then recovers the log.
			rw, err := Open(d)
			if err != nil {
				t.Fatalf("Open after a crash (%s): %v", variant, err)
			}
			if v, _, ok, err := rw.Latest("f.count", keys[1]); err != nil || !ok || string(v) != "y" {
				t.Errorf("Latest after Open = %q, %v, %v", v, ok, err)
			}
			rw.Close()
		})
	}
}

// TestInterruptedInit: what an interrupted init leaves is recognised, and
// init builds beside the directory and renames it into place.
func TestInterruptedInit(t *testing.T) {
	t.Run("leftover beside", func(t *testing.T) {
		parent := t.TempDir()
		if err := os.Mkdir(filepath.Join(parent, ".rec.init-123"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Open(filepath.Join(parent, "rec"))
		if !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "`runnel recovery init` was interrupted and left "+filepath.Join(parent, ".rec.init-123")) {
			t.Errorf("Open = %v", err)
		}
	})
	t.Run("marker", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rec")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		if err := Init(dir, 2); err != nil { // into a non-empty directory
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, initMarker)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker left after a complete init: %v", err)
		}
		mustOpen(t, dir).Close()
		os.WriteFile(filepath.Join(dir, initMarker), nil, 0o644) // as if interrupted
		os.Remove(filepath.Join(dir, "part-1.sqlite3"))
		before := snapshotDir(t, dir)
		_, err := Open(dir)
		if !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "`runnel recovery init` was interrupted") {
			t.Errorf("Open = %v", err)
		}
		if err := Init(dir, 2); !errors.Is(err, ErrAlreadyInitialized) {
			t.Errorf("Init over an interrupted init = %v", err)
		}
		if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
			t.Errorf("changed files:\n%s", diff)
		}
	})
	t.Run("older release's leftovers", func(t *testing.T) {
		// The format 1 Init wrote part files one by one in place.
		dir := mustInit(t, 3)
		os.Remove(filepath.Join(dir, "part-2.sqlite3"))
		_, err := Open(dir)
		if !errors.Is(err, ErrPartitionMismatch) || !strings.Contains(err.Error(), "no run has used this directory: if `runnel recovery init` was interrupted, remove the directory and run init again") {
			t.Errorf("Open = %v", err)
		}
		os.WriteFile(filepath.Join(dir, "part-2.sqlite3"), nil, 0o644)
		_, err = Open(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "an interrupted `runnel recovery init` of an older release leaves empty files") {
			t.Errorf("Open = %v", err)
		}
	})
	t.Run("no directory named", func(t *testing.T) {
		if err := Init("", 2); err == nil || !strings.Contains(err.Error(), "name the directory") {
			t.Errorf("Init(\"\") = %v", err)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rec")
		os.Mkdir(dir, 0o755)
		if err := Init(dir, 2); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Dir(dir))
		if len(entries) != 1 {
			t.Errorf("init left beside the directory: %v", entries)
		}
		mustOpen(t, dir).Close()
	})
}
