package runnel_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
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

// TestRepartitionKilled SIGKILLs `runnel recovery repartition` at random
// moments, N→M→N: after every kill the directory holds either all the old
// partitions or all the new ones, with exactly the committed state of
// before, and a resumed run ends in the state of an uninterrupted one.
func TestRepartitionKilled(t *testing.T) {
	const n, keys = 6000, 3000
	dir := t.TempDir()
	runCmd(t, dir, nil, "runnel", "recovery", "init", "db", "3")
	env := []string{fmt.Sprint("COUNTFLOW_N=", n), fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PARTS=2"}
	args := []string{"-w", "2", "-r", "db", "-s", "0.02", "-b", "0"}
	// A first run over half the input, stopped by SIGKILL.
	cmd, out := startCount(t, dir, append(env[:len(env):len(env)], "COUNTFLOW_PACE=500"), args...)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	first := completeLines(out.String())
	want, code := runCmd(t, dir, nil, "runnel", "recovery", "dump", "db")
	if code != 0 {
		t.Fatal("dump failed")
	}
	rng := rand.New(rand.NewPCG(3, 9))
	counts := map[string]int{}
	for i, to := range []int{5, 3, 8, 3} {
		for try := range 3 {
			c := exec.Command(bin(t, "runnel"), "recovery", "repartition", "db", "--to", fmt.Sprint(to))
			c.Dir = dir
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
			c.Process.Signal(syscall.SIGKILL)
			c.Wait()
			insp, _ := runCmd(t, dir, nil, "runnel", "recovery", "inspect", "db", "--json")
			parts := strings.Count(insp, `"index":`)
			counts[fmt.Sprint(parts)]++
			if msg, code := runCmd(t, dir, nil, "runnel", "recovery", "verify", "db"); code != 0 {
				t.Fatalf("step %d try %d: after a killed repartition to %d, verify fails:\n%s", i, try, to, msg)
			}
			if got, _ := runCmd(t, dir, nil, "runnel", "recovery", "dump", "db"); got != want {
				t.Fatalf("step %d try %d: after a killed repartition to %d (%d partitions now), the state differs", i, try, to, parts)
			}
		}
		if msg, code := runCmd(t, dir, nil, "runnel", "recovery", "repartition", "db", "--to", fmt.Sprint(to)); code != 0 {
			t.Fatalf("repartition to %d: exit %d %s", to, code, msg)
		}
		if got, _ := runCmd(t, dir, nil, "runnel", "recovery", "dump", "db"); got != want {
			t.Fatalf("after repartition to %d, the state differs", to)
		}
	}
	t.Logf("partition counts seen after kills: %v", counts)
	out2, code := runCmd(t, dir, env, "countflow", args...)
	if code != 0 {
		t.Fatalf("resumed run: exit %d", code)
	}
	wantFinal := lastPerKey(completeLines(strings.Join(countLines(n, keys), "\n") + "\n"))
	got := lastPerKey(append(first, completeLines(out2)...))
	if diff := cmp.Diff(wantFinal, got); diff != "" {
		t.Errorf("final state per key after repartitions (-want +got):\n%s", diff)
	}
}
