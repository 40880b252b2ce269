package recovery

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustInit(t testing.TB, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	if err := Init(dir, n); err != nil {
		t.Fatalf("Init(%s, %d): %v", dir, n, err)
	}
	return dir
}

func mustOpen(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// execSQL edits a partition behind the store's back, as a user with the
// sqlite3 tool (or a bug) might.
func execSQL(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, "rw"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %s: %v", filepath.Base(path), s, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshotDir returns every file name in dir with a hash of its content.
func snapshotDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if e.IsDir() {
			out[e.Name()+"/"] = [32]byte{}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

func TestInit(t *testing.T) {
	dir := mustInit(t, 3)
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(dir, partFile(i))); err != nil {
			t.Errorf("partition %d: %v", i, err)
		}
	}
	err := Init(dir, 3)
	if !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Init = %v, want ErrAlreadyInitialized", err)
	}
	if !strings.Contains(err.Error(), "part-0.sqlite3") {
		t.Errorf("error %q does not name the existing files", err)
	}
	if err := Init(filepath.Join(t.TempDir(), "x"), 0); err == nil {
		t.Fatal("Init with n=0 succeeded")
	}
	s := mustOpen(t, dir)
	if s.Partitions() != 3 || s.FlowID() != "" {
		t.Errorf("Partitions()=%d FlowID()=%q", s.Partitions(), s.FlowID())
	}
	types, err := s.StepTypes()
	if err != nil || len(types) != 0 {
		t.Errorf("StepTypes() = %v, %v", types, err)
	}
}

func TestSQLiteCLIReads(t *testing.T) {
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 tool")
	}
	dir := mustInit(t, 1)
	s := mustOpen(t, dir)
	if _, err := s.Begin("f", 1, MakePlan(nil, map[string]StepState{"f.s": {Type: "int"}}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteEpoch(1, []Row{{Step: "f.s", Key: "k", Value: []byte{1}}, {Step: "f.s", Key: "q\"\x01", Value: []byte{}},
		{Step: "f.s", Key: "gone", Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(0, []int{0}, 2, 0); err != nil {
		t.Fatal(err)
	}
	// The query doc.go gives for the change log.
	sqlite := func(q string) string {
		t.Helper()
		out, err := exec.Command(bin, filepath.Join(dir, "part-0.sqlite3"), q).CombinedOutput()
		if err != nil {
			t.Fatalf("sqlite3: %v\n%s", err, out)
		}
		return string(out)
	}
	const logQuery = "SELECT c.step_id, e.key, c.epoch, coalesce(e.value, 'NULL') FROM changes AS c, json_each(c.batch) AS e ORDER BY c.seq, e.id"
	if got, want := sqlite(logQuery+"; SELECT value FROM meta WHERE name='codec'"), "f.s|gone|1|NULL\nf.s|k|1|01\nf.s|q\"\x01|1|\ncbor-core-det/v1\n"; got != want {
		t.Errorf("sqlite3 output %q, want %q", got, want)
	}
	// Merged into snaps, the same rows (the deletion needs none).
	compactAlways(t)
	if err := s.Commit(0, []int{0}, 2, 0); err != nil {
		t.Fatal(err)
	}
	compact(t, s)
	if got, want := sqlite("SELECT step_id, state_key, epoch, hex(ser_change) FROM snaps; "+logQuery), "f.s|k|1|01\nf.s|q\"\x01|1|\n"; got != want {
		t.Errorf("sqlite3 output after the merge %q, want %q", got, want)
	}
}

func TestOpenRejects(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the directory to open
		err   error
		want  string
	}{
		{"missing dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
			ErrNotInitialized, "runnel recovery init"},
		{"empty dir", func(t *testing.T) string { return t.TempDir() },
			ErrNotInitialized, "run `runnel recovery init"},
		{"missing partition", func(t *testing.T) string {
			dir := mustInit(t, 3)
			os.Remove(filepath.Join(dir, "part-1.sqlite3"))
			return dir
		}, ErrPartitionMismatch, "missing part-1.sqlite3 of 3 partitions"},
		{"mixed counts", func(t *testing.T) string {
			dir, other := mustInit(t, 2), mustInit(t, 3)
			copyFile(t, filepath.Join(other, "part-2.sqlite3"), filepath.Join(dir, "part-2.sqlite3"))
			return dir
		}, ErrPartitionMismatch, "/rec/part-2.sqlite3 says 3"},
		{"out of range", func(t *testing.T) string {
			dir := mustInit(t, 2)
			p := filepath.Join(dir, "part-2.sqlite3")
			copyFile(t, filepath.Join(dir, "part-1.sqlite3"), p)
			execSQL(t, p, "UPDATE meta SET value='2' WHERE name='partition_index'")
			return dir
		}, ErrPartitionMismatch, "part-2.sqlite3 is out of range"},
		{"renamed", func(t *testing.T) string {
			dir := mustInit(t, 2)
			copyFile(t, filepath.Join(dir, "part-0.sqlite3"), filepath.Join(dir, "part-1.sqlite3"))
			return dir
		}, ErrPartitionMismatch, "part-1.sqlite3 records partition index 0"},
		{"stray name", func(t *testing.T) string {
			dir := mustInit(t, 1)
			os.WriteFile(filepath.Join(dir, "part-01.sqlite3"), nil, 0o644)
			return dir
		}, ErrPartitionMismatch, "unexpected part-01.sqlite3 (not a partition file name)"},
		{"column missing", func(t *testing.T) string {
			dir := mustInit(t, 2)
			execSQL(t, filepath.Join(dir, "part-1.sqlite3"), "ALTER TABLE steps DROP COLUMN state_shape")
			return dir
		}, ErrCorrupt, "part-1.sqlite3: recovery partition corrupt: table steps has no column state_shape"},
		{"NULL where a value must be", func(t *testing.T) string {
			dir := mustInit(t, 2)
			p := filepath.Join(dir, "part-1.sqlite3")
			execSQL(t, p, "DROP TABLE executions")
			execSQL(t, p, "CREATE TABLE executions(ex_num INTEGER PRIMARY KEY, worker_count INTEGER, resume_epoch INTEGER, exec_id TEXT)")
			execSQL(t, p, "INSERT INTO executions VALUES(0, NULL, 1, 'x')")
			return dir
		}, ErrCorrupt, "part-1.sqlite3: recovery partition corrupt: read executions: "},
		{"partition is a directory", func(t *testing.T) string {
			dir := mustInit(t, 2)
			p := filepath.Join(dir, "part-1.sqlite3")
			os.Remove(p)
			os.Mkdir(p, 0o755)
			return dir
		}, ErrPartitionMismatch, "unexpected part-1.sqlite3 (a directory, not a partition file)"},
		{"partition is a symbolic link", func(t *testing.T) string {
			dir := mustInit(t, 2)
			p := filepath.Join(dir, "part-1.sqlite3")
			elsewhere := filepath.Join(t.TempDir(), "part-1.sqlite3")
			if err := os.Rename(p, elsewhere); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, p); err != nil {
				t.Skip(err)
			}
			return dir
		}, ErrPartitionMismatch, "(a symbolic link to /"},
		{"other flow", func(t *testing.T) string {
			dir := mustInit(t, 2)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "UPDATE meta SET value='a' WHERE name='flow_id'")
			execSQL(t, filepath.Join(dir, "part-1.sqlite3"), "UPDATE meta SET value='b' WHERE name='flow_id'")
			return dir
		}, ErrPartitionMismatch, `rec/part-0.sqlite3 belongs to dataflow "a" but `},
		{"random bytes", func(t *testing.T) string {
			dir := mustInit(t, 2)
			b := make([]byte, 8192)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			os.WriteFile(filepath.Join(dir, "part-0.sqlite3"), b, 0o644)
			return dir
		}, ErrCorrupt, "part-0.sqlite3: recovery partition corrupt: not an SQLite database"},
		{"empty file", func(t *testing.T) string {
			dir := mustInit(t, 1)
			os.WriteFile(filepath.Join(dir, "part-0.sqlite3"), nil, 0o644)
			return dir
		}, ErrCorrupt, "part-0.sqlite3: recovery partition corrupt: file too short"},
		{"truncated", func(t *testing.T) string {
			dir := mustInit(t, 2)
			s := mustOpen(t, dir)
			if _, err := s.Begin("f", 1, MakePlan(nil, map[string]StepState{"s": {Type: "int"}}, nil)); err != nil {
				t.Fatal(err)
			}
			rows := make([]Row, 2000)
			for i := range rows {
				rows[i] = Row{Step: "s", Key: strings.Repeat("k", i%50) + string(rune(i)), Value: make([]byte, 100)}
			}
			if err := s.WriteEpoch(1, rows); err != nil {
				t.Fatal(err)
			}
			s.Close()
			p := filepath.Join(dir, "part-1.sqlite3")
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
			return dir
		}, ErrCorrupt, "part-1.sqlite3: recovery partition corrupt"},
		{"missing table", func(t *testing.T) string {
			dir := mustInit(t, 1)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "DROP TABLE fronts")
			return dir
		}, ErrCorrupt, "missing table fronts"},
		{"no meta", func(t *testing.T) string {
			dir := mustInit(t, 1)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "DROP TABLE meta")
			return dir
		}, ErrCorrupt, "no such table: meta"},
		{"missing meta row", func(t *testing.T) string {
			dir := mustInit(t, 1)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "DELETE FROM meta WHERE name='partition_count'")
			return dir
		}, ErrCorrupt, "metadata has no partition_count"},
		{"newer format", func(t *testing.T) string {
			dir := mustInit(t, 1)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "UPDATE meta SET value='4' WHERE name='format_version'")
			return dir
		}, ErrVersion, "written by a newer runnel (format 4); this release reads formats 1 to 3"},
		{"unknown codec", func(t *testing.T) string {
			dir := mustInit(t, 1)
			execSQL(t, filepath.Join(dir, "part-0.sqlite3"), "UPDATE meta SET value='gob' WHERE name='codec'")
			return dir
		}, ErrVersion, `unknown codec "gob"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t)
			before := snapshotDir(t, dir)
			s, err := Open(dir)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want %v", c.err)
			}
			if !errors.Is(err, c.err) {
				t.Errorf("Open error %q is not %v", err, c.err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open error %q does not contain %q", err, c.want)
			}
			if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
				t.Errorf("Open modified the directory (-before +after):\n%s", diff)
			}
			// Inspect describes a directory whose partitions disagree, with
			// the verdict; it fails like Open on one it cannot read.
			rep, err := Inspect(dir)
			if err == nil {
				err = rep.Verdict.Err()
			}
			if !errors.Is(err, c.err) {
				t.Errorf("Inspect error %v is not %v", err, c.err)
			}
			if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
				t.Errorf("Inspect modified the directory (-before +after):\n%s", diff)
			}
		})
	}
}

func TestPartitionForIsFrozen(t *testing.T) {
	// Changing these values strands every existing row: never update them.
	got := []int{
		PartitionFor("flow.count", "ALL", 7),
		PartitionFor("flow.count", "a", 1000),
		PartitionFor("", "", 3),
		PartitionFor("flow.win", "user-42", 16),
	}
	want := []int{0, 663, 0, 14}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PartitionFor changed (-frozen +now):\n%s", diff)
	}
	if PartitionFor("a", "bc", 1<<20) == PartitionFor("ab", "c", 1<<20) {
		t.Error("step/key boundary is ambiguous")
	}
}

// TestLockRefusesReplacedFiles: files replaced between Open and Lock (a
// repartition or a restore that finished meanwhile) are refused, since
// the store would write to files no longer in the directory.
func TestLockRefusesReplacedFiles(t *testing.T) {
	for _, name := range []string{"part-0.sqlite3", "part-1.sqlite3"} {
		t.Run(name, func(t *testing.T) {
			dir := mustInit(t, 2)
			s := mustOpen(t, dir)
			defer s.Close()
			p := filepath.Join(dir, name)
			copyFile(t, p, p+".new")
			if err := os.Rename(p+".new", p); err != nil {
				t.Fatal(err)
			}
			err := s.Lock()
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), p+" was replaced") {
				t.Errorf("Lock after %s was replaced: %v, want ErrLocked naming it", name, err)
			}
		})
	}
	t.Run("unchanged", func(t *testing.T) {
		s := mustOpen(t, mustInit(t, 2))
		defer s.Close()
		if err := s.Lock(); err != nil {
			t.Errorf("Lock: %v", err)
		}
	})
}
