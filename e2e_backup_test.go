package runnel_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBackupOfRunningProcess takes backups with `runnel recovery backup`
// while a real flow process runs (with -b 0, so garbage collection follows
// every commit), then SIGKILLs it. A run resumed from each backup must end
// in exactly the state of an uninterrupted run, as must the original
// directory resumed after the kill.
func TestBackupOfRunningProcess(t *testing.T) {
	const n, keys = 30000, 7 // at least 1.5s of input at this pace: the backups are taken mid-run
	want := lastPerKey(completeLines(strings.Join(countLines(n, keys), "\n") + "\n"))
	dir := t.TempDir()
	runCmd(t, dir, nil, "runnel", "recovery", "init", "db", "3")
	env := []string{fmt.Sprint("COUNTFLOW_N=", n), fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PARTS=2", "COUNTFLOW_PACE=500"}
	args := func(d string) []string { return []string{"-w", "2", "-r", d, "-s", "0.02", "-b", "0"} }
	cmd, out := startCount(t, dir, env, args("db")...)
	rng := rand.New(rand.NewPCG(7, 42))
	var backups []string
	for i := range 3 {
		time.Sleep(time.Duration(40+rng.IntN(120)) * time.Millisecond)
		b := fmt.Sprint("backup", i)
		if msg, code := runCmd(t, dir, nil, "runnel", "recovery", "backup", "db", b); code != 0 {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Fatalf("backup %d while running: exit %d, %s", i, code, msg)
		} else {
			t.Logf("%s", strings.TrimSpace(msg))
		}
		backups = append(backups, b)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	first := completeLines(out.String())
	if len(first) >= n {
		t.Fatalf("the flow finished (%d lines) before the backups and the kill; make it longer", len(first))
	}
	for _, b := range append(backups, "db") {
		if b != "db" {
			if msg, code := runCmd(t, dir, nil, "runnel", "recovery", "verify", "--strict", b); code != 0 {
				t.Errorf("verify --strict %s: exit %d:\n%s", b, code, msg)
			}
		}
		fast := append(env[:len(env):len(env)], "COUNTFLOW_PACE=0") // the resumed runs need not be slow
		out2, code := runCmd(t, dir, fast, "countflow", args(b)...)
		if code != 0 {
			t.Fatalf("run resumed from %s: exit %d", b, code)
		}
		// A run resumed from a backup prints every key again (the input
		// is far from its end), so its last line per key is the final state.
		got := lastPerKey(completeLines(out2))
		if b == "db" {
			got = lastPerKey(append(first, completeLines(out2)...))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("resumed from %s: final state per key (-want +got):\n%s", filepath.Base(b), diff)
		}
	}
}
