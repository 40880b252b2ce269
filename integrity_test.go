package runnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// checksums returns every file under root (recursively) with a hash of its
// content, to show that a refused run or an inspection changed no byte.
func checksums(t *testing.T, roots ...string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[path] = sha256.Sum256(b)
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return out
}

func unchanged(t *testing.T, what string, before map[string][32]byte, roots ...string) {
	t.Helper()
	if diff := cmp.Diff(before, checksums(t, roots...)); diff != "" {
		t.Errorf("%s changed files (-before +after):\n%s", what, diff)
	}
}

// TestRenamedStateField: a struct state whose field was renamed (same type
// name, another shape) is refused before anything is read, shown as CHANGED
// by --recovery-plan, and starts empty only when dropped on purpose.
func TestRenamedStateField(t *testing.T) {
	dir := initDir(t, 2)
	cfg := runneltest.Config(1, time.Hour, dir)
	sumFlow := func(renamed bool, items []int) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[int, int]]) {
		flow := runnel.NewDataflow("sums")
		s := op.Input("inp", flow, runneltest.NewSource(items))
		k := op.KeyOn("key", s, func(x int) int { return x % 2 })
		var sums runnel.Stream[runnel.KV[int, int]]
		if renamed {
			type Total struct{ Count int }
			sums = op.StatefulMap("sum", k, func(t Total, _ bool, x int) (Total, bool, int) { t.Count += x; return t, true, t.Count })
		} else {
			type Total struct{ N int }
			sums = op.StatefulMap("sum", k, func(t Total, _ bool, x int) (Total, bool, int) { t.N += x; return t, true, t.N })
		}
		sink := runneltest.NewSink[runnel.KV[int, int]]()
		op.Output("out", sums, sink)
		return flow, sink
	}
	flow, _ := sumFlow(false, seq(4))
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	before := checksums(t, dir)

	var out strings.Builder
	planCfg := cfg
	planCfg.RecoveryPlan = true
	flow, _ = sumFlow(true, seq(6))
	err := runnel.Run(context.Background(), flow, planCfg, runnel.WithOutput(&out))
	if !errors.Is(err, recovery.ErrStateMismatch) ||
		!strings.Contains(out.String(), "CHANGED  sums.sum (key int, state runnel_test.Total): shape changed: stored {N:int64}, now {Count:int64}") {
		t.Errorf("--recovery-plan: err %v, output:\n%s", err, out.String())
	}
	flow, sink := sumFlow(true, seq(6))
	err = run(t, flow, cfg)
	if !errors.Is(err, recovery.ErrStateMismatch) || !strings.Contains(err.Error(), "step sums.sum: the state type's fields changed") ||
		!strings.Contains(err.Error(), "--drop-state") {
		t.Errorf("renamed field: err = %v", err)
	}
	if len(sink.Items()) != 0 {
		t.Errorf("the refused run emitted %v", sink.Items())
	}
	unchanged(t, "the refused runs", before, dir)

	// The original shape still resumes: 0+2+4 and 1+3+5.
	flow, sink = sumFlow(false, seq(6))
	if err := run(t, flow, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]runnel.KV[int, int]{{Key: 0, Value: 6}, {Key: 1, Value: 9}}, sink.Items()); diff != "" {
		t.Errorf("resumed with the stored shape (-want +got):\n%s", diff)
	}
	// Dropped on purpose, the renamed one starts empty.
	dropCfg := cfg
	dropCfg.DropState = []string{"sums.sum"}
	flow, sink = sumFlow(true, seq(8))
	if err := run(t, flow, dropCfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]runnel.KV[int, int]{{Key: 0, Value: 6}, {Key: 1, Value: 7}}, sink.Items()); diff != "" {
		t.Errorf("after --drop-state (-want +got):\n%s", diff)
	}
}

// procResult is what a finished process did.
type procResult struct {
	stdout, stderr string
	code           int
}

// runAs runs a built binary in dir, as the user cred when it is not nil.
func runAs(t *testing.T, dir string, cred *syscall.Credential, env []string, name string, args ...string) procResult {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return procResult{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func cpFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cpDir copies the regular files of a directory, as `cp -a` would.
func cpDir(t *testing.T, from, to string) {
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
			cpFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
}

// wantRefused checks a refused process: exit status, every wanted text on
// stderr, and no file changed.
func wantRefused(t *testing.T, what string, r procResult, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d; stderr:\n%s", what, r.code, code, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr+r.stdout, w) {
			t.Errorf("%s: output does not contain %q:\nstdout:\n%s\nstderr:\n%s", what, w, r.stdout, r.stderr)
		}
	}
}

// TestStalePartitionProcess is the example with real processes: a
// keyed running sum from a growing file to a file sink with -b 0; one
// partition is put back from a backup taken one run earlier. The run, the
// plan and inspect refuse it, naming the partitions and their epochs, and
// change no byte of the recovery data or the output.
func TestStalePartitionProcess(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.txt")
	db := filepath.Join(dir, "db")
	args := []string{"-r", "db", "-s", "0.05", "-b", "0", "in.txt", "out.txt"}
	appendFile(t, in, "a,1\nb,10\nc,100\n")
	if r := runAs(t, dir, nil, nil, "runnel", "recovery", "init", "db", "2"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	cpDir(t, db, filepath.Join(dir, "backup"))
	appendFile(t, in, "a,2\nb,20\nc,200\n")
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("second run: %+v", r)
	}
	cpFile(t, filepath.Join(dir, "backup", "part-1.sqlite3"), filepath.Join(db, "part-1.sqlite3"))
	appendFile(t, in, "a,3\nb,30\nc,300\n")

	before := checksums(t, db, out)
	wants := []string{"recovery partitions are out of step", "db/part-1.sqlite3 (frontier ", "db/part-0.sqlite3 (frontier ",
		"collected before epoch ", "Restore all partitions from one backup"}
	wantRefused(t, "third run", runAs(t, dir, nil, nil, "sumflow", args...), 1, append(wants, "nothing was changed")...)
	unchanged(t, "the refused run", before, db, out)
	wantRefused(t, "--recovery-plan", runAs(t, dir, nil, nil, "sumflow", append([]string{"--recovery-plan"}, args...)...), 1,
		append(wants, "the next run is REFUSED")...)
	unchanged(t, "--recovery-plan", before, db, out)
	wantRefused(t, "inspect", runAs(t, dir, nil, nil, "runnel", "recovery", "inspect", "db"), 1,
		append(wants, "next run is REFUSED", "would be refused")...)
	unchanged(t, "inspect", before, db, out)

	// Restoring all partitions from the one backup is the fix: the run
	// resumes from the backup's epoch and rewrites the output exactly.
	if err := os.RemoveAll(db); err != nil {
		t.Fatal(err)
	}
	cpDir(t, filepath.Join(dir, "backup"), db)
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("run from the backup: %+v", r)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "a,1\nb,10\nc,100\na,3\nb,30\nc,300\na,6\nb,60\nc,600\n"
	if string(got) != want {
		t.Errorf("output after restoring the backup:\n%s\nwant:\n%s", got, want)
	}
}

// TestStalePartitionWithinBackupInterval is the same sequence with -b
// longer than the runs: the others kept what the restored partition's older
// epoch needs, so the run resumes from that epoch and the output file ends
// exactly as an uninterrupted run's.
func TestStalePartitionWithinBackupInterval(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.txt")
	db := filepath.Join(dir, "db")
	args := []string{"-r", "db", "-s", "0.05", "-b", "600", "in.txt", "out.txt"}
	appendFile(t, in, "a,1\nb,10\nc,100\n")
	if r := runAs(t, dir, nil, nil, "runnel", "recovery", "init", "db", "2"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	cpDir(t, db, filepath.Join(dir, "backup"))
	appendFile(t, in, "a,2\nb,20\nc,200\n")
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("second run: %+v", r)
	}
	cpFile(t, filepath.Join(dir, "backup", "part-1.sqlite3"), filepath.Join(db, "part-1.sqlite3"))
	appendFile(t, in, "a,3\nb,30\nc,300\n")
	if r := runAs(t, dir, nil, nil, "sumflow", args...); r.code != 0 {
		t.Fatalf("third run, one partition restored within -b: %+v", r)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "a,1\nb,10\nc,100\na,3\nb,30\nc,300\na,6\nb,60\nc,600\n"
	if string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// TestKilledThenStaleAndInspect kills a running flow with SIGKILL after it
// committed past a backup of its directory. Inspecting what the kill left
// (-wal and -shm included) and asking for the plan change no byte; then one
// partition is put back from the backup, which the next run refuses without
// changing a byte; with the backup taken away again the run resumes.
func TestKilledThenStaleAndInspect(t *testing.T) {
	const n, keys = 4000, 7
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if r := runAs(t, dir, nil, nil, "runnel", "recovery", "init", "db", "3"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	env := []string{fmt.Sprint("COUNTFLOW_N=", n), fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PARTS=2", "COUNTFLOW_PACE=1000"}
	args := []string{"-w", "2", "-r", "db", "-s", "0.02", "-b", "0"}
	// A short first run gives a backup with a committed frontier.
	short := []string{"COUNTFLOW_N=40", fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PARTS=2"}
	if r := runAs(t, dir, nil, short, "countflow", args...); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	cpDir(t, db, filepath.Join(dir, "backup"))
	rep, err := recovery.Inspect(filepath.Join(dir, "backup"))
	if err != nil {
		t.Fatal(err)
	}
	backupEpoch := rep.ResumeEpoch

	cmd, killed := startCount(t, dir, env, args...)
	// Kill once the run has committed well past the backup, watching it
	// with inspect (read-only, so watching cannot disturb it).
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := recovery.Inspect(db)
		if err == nil && r.ResumeEpoch > backupEpoch+3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the run did not commit past epoch %d: %v %v", backupEpoch+3, r.ResumeEpoch, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	before := checksums(t, db)
	if _, err := os.Stat(filepath.Join(db, "part-0.sqlite3-wal")); err != nil {
		t.Fatalf("the kill left no -wal (%v): the inspection below would not test anything", err)
	}
	r := runAs(t, dir, nil, nil, "runnel", "recovery", "inspect", "db")
	if r.code != 0 || !strings.Contains(r.stdout, "next run resumes at epoch ") {
		t.Errorf("inspect after the kill: %+v", r)
	}
	unchanged(t, "inspect after SIGKILL", before, db)
	r = runAs(t, dir, nil, env, "countflow", append([]string{"--recovery-plan"}, args...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "resume   countflow.count") {
		t.Errorf("--recovery-plan after the kill: %+v", r)
	}
	unchanged(t, "--recovery-plan after SIGKILL", before, db)
	r = runAs(t, dir, nil, nil, "runnel", "recovery", "inspect", "db", "--step", "countflow.count", "--key", "3")
	if r.code != 0 || !strings.Contains(r.stdout, `"Count"`) {
		t.Errorf("inspect --step --key after the kill: %+v", r)
	}
	unchanged(t, "inspect --step --key after SIGKILL", before, db)

	// Put part-2 back from the backup: it is behind what the others kept.
	stale := filepath.Join(dir, "stale")
	cpDir(t, db, stale)
	cpFile(t, filepath.Join(dir, "backup", "part-2.sqlite3"), filepath.Join(stale, "part-2.sqlite3"))
	os.Remove(filepath.Join(stale, "part-2.sqlite3-wal"))
	os.Remove(filepath.Join(stale, "part-2.sqlite3-shm"))
	beforeStale := checksums(t, stale)
	staleArgs := append([]string{}, args...)
	staleArgs[3] = "stale"
	wantRefused(t, "run on a stale partition", runAs(t, dir, nil, env, "countflow", staleArgs...), 1,
		"recovery partitions are out of step", fmt.Sprintf("stale/part-2.sqlite3 (frontier %d)", backupEpoch), "Restore all partitions from one backup")
	unchanged(t, "the refused run", beforeStale, stale)
	wantRefused(t, "inspect of a stale partition", runAs(t, dir, nil, nil, "runnel", "recovery", "inspect", "stale"), 1,
		"next run is REFUSED", fmt.Sprintf("stale/part-2.sqlite3 (frontier %d)", backupEpoch))
	unchanged(t, "inspect", beforeStale, stale)

	// The killed directory itself resumes to the right final state.
	r = runAs(t, dir, nil, env, "countflow", args...)
	if r.code != 0 {
		t.Fatalf("resumed run: %+v", r)
	}
	// On a loaded machine the killed run may have committed a key's last
	// item before the kill: its last line is then the killed run's.
	got := lastPerKey(append(completeLines(killed.String()), completeLines(r.stdout)...))
	for k, line := range lastPerKey(completeLines(strings.Join(countLines(n, keys), "\n") + "\n")) {
		if got[k] != line {
			t.Errorf("key %s: last line %q, want %q", k, got[k], line)
		}
	}
}

// TestReadOnlyDirectory: a recovery directory the user may not write is
// reported as such, with the full path, not as corruption; inspect and
// --recovery-plan work on it. Running as root, the processes run as nobody,
// since root may write anything.
func TestReadOnlyDirectory(t *testing.T) {
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	// Every directory on the way must be searchable by that user.
	top, err := os.MkdirTemp("", "runnel-readonly-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(top)
	})
	for _, p := range []string{top, filepath.Dir(bin(t, "runnel"))} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(top, "db")
	if err := recovery.Init(db, 2); err != nil {
		t.Fatal(err)
	}
	env := []string{"COUNTFLOW_N=30", "COUNTFLOW_KEYS=3"}
	args := []string{"-r", "db", "-s", "0.02", "-b", "0"}
	if r := runAs(t, top, nil, env, "countflow", args...); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	abs, _ := filepath.Abs(db)
	setMode := func(dirMode, fileMode fs.FileMode) {
		t.Helper()
		entries, _ := os.ReadDir(db)
		for _, e := range entries {
			if err := os.Chmod(filepath.Join(db, e.Name()), fileMode); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(db, dirMode); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name              string
		dirMode, fileMode fs.FileMode
		path              string
	}{
		{"read-only files and directory", 0o555, 0o444, abs},
		{"read-only files", 0o777, 0o444, filepath.Join(abs, "part-0.sqlite3")},
	} {
		t.Run(c.name, func(t *testing.T) {
			setMode(c.dirMode, c.fileMode)
			defer setMode(0o755, 0o644)
			before := checksums(t, db)
			r := runAs(t, top, cred, env, "countflow", args...)
			wantRefused(t, "run", r, 1, "recovery directory not accessible", c.path+" is not writable", "permission denied")
			if strings.Contains(r.stderr, "corrupt") {
				t.Errorf("a permission error reported as corruption:\n%s", r.stderr)
			}
			unchanged(t, "the refused run", before, db)
			r = runAs(t, top, cred, nil, "runnel", "recovery", "inspect", "db")
			if r.code != 0 || !strings.Contains(r.stdout, "next run resumes at epoch") {
				t.Errorf("inspect of a read-only directory: %+v", r)
			}
			r = runAs(t, top, cred, env, "countflow", append([]string{"--recovery-plan"}, args...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "resume   countflow.count") {
				t.Errorf("--recovery-plan on a read-only directory: %+v", r)
			}
			unchanged(t, "inspect and --recovery-plan", before, db)
		})
	}
	// Unreadable: inspect says so, with the path, and not "corrupt".
	setMode(0o755, 0o000)
	defer setMode(0o755, 0o644)
	r := runAs(t, top, cred, nil, "runnel", "recovery", "inspect", "db")
	wantRefused(t, "inspect of unreadable files", r, 1, "recovery directory not accessible", "permission denied", "part-0.sqlite3")
	if strings.Contains(r.stderr, "corrupt") {
		t.Errorf("a permission error reported as corruption:\n%s", r.stderr)
	}
}
