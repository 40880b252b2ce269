package runnel_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/testflow"

	"github.com/runnel-dev/runnel/internal/proctest"
)

// These tests build real binaries and run them as OS processes: the
// tutorial commands, SIGKILL at random moments, and SIGTERM.

var binaries = proctest.Binaries{Pkgs: map[string]string{
	"runnel":    "./cmd/runnel",
	"recovery":  "./examples/recovery",
	"countflow": "./internal/testprog/countflow",
	"families":  "./internal/testprog/families",
	"sumflow":   "./internal/testprog/sumflow",
	"wordcount": "./examples/wordcount",
	"windowing": "./examples/windowing",
	"join":      "./examples/join",
	"migrate":   "./examples/migrate",
}}

// bin returns the path of a built binary, building all of them once.
func bin(t *testing.T, name string) string {
	t.Helper()
	return binaries.Path(t, name)
}

func runCmd(t *testing.T, dir string, env []string, name string, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	if code != 0 {
		t.Logf("%s %v: exit %d, stderr:\n%s", name, args, code, errb.String())
	}
	return out.String(), code
}

// TestTutorial runs the recovery tutorial's commands, exactly.
func TestTutorial(t *testing.T) {
	dir := t.TempDir()
	if out, code := runCmd(t, dir, nil, "runnel", "recovery", "init", "db_dir/", "1"); code != 0 || out != "" {
		t.Fatalf("init: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "db_dir", "part-0.sqlite3")); err != nil {
		t.Fatal(err)
	}
	// What a terminal shows: standard output and standard error together.
	terminal := func(args ...string) (string, int) {
		cmd := exec.Command(bin(t, "recovery"), args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil && cmd.ProcessState.ExitCode() == 0 {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := terminal("-r", "db_dir/", "-s", "30", "-b", "0")
	if want := "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n"; code != 0 || out != want {
		t.Fatalf("first run: exit %d, terminal %q, want %q", code, out, want)
	}
	out, code = terminal("-r", "db_dir/", "-s", "30", "-b", "0", "0", "1", "2", "3", "4")
	if want := "('ALL', 6)\n('ALL', 10)\n"; code != 0 || out != want {
		t.Fatalf("second run: exit %d, terminal %q, want %q", code, out, want)
	}
	// Re-initialising would lose the state: refused.
	if _, code := runCmd(t, dir, nil, "runnel", "recovery", "init", "db_dir/", "1"); code == 0 {
		t.Error("init over existing partitions succeeded")
	}
	// Bad flags exit 2 and name the flag.
	if _, code := runCmd(t, dir, nil, "recovery", "-r", "db_dir/", "-s", "0", "-b", "0"); code != 2 {
		t.Errorf("-s 0: exit %d, want 2", code)
	}
}

// countLines is what countflow prints for items [0, n) with keys keys.
func countLines(n, keys int) []string {
	count, sum := make([]int, keys), make([]int, keys)
	var out []string
	for x := range n {
		k := x % keys
		count[k]++
		sum[k] += x
		out = append(out, fmt.Sprintf("%d %d %d", k, count[k], sum[k]))
	}
	return out
}

// completeLines drops a last line cut short by a kill.
func completeLines(s string) []string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i+1]
	} else {
		s = ""
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), " ", "_"))
}

func lastPerKey(lines []string) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		k, _, _ := strings.Cut(l, "_")
		m[k] = l
	}
	return m
}

func startCount(t *testing.T, dir string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin(t, "countflow"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// TestKillAndResume SIGKILLs a running flow at a random moment, resumes it,
// and checks the final state per key equals an uninterrupted run's.
func TestKillAndResume(t *testing.T) {
	const n, keys = 4000, 7
	want := lastPerKey(completeLines(strings.Join(countLines(n, keys), "\n") + "\n"))
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			dir := t.TempDir()
			runCmd(t, dir, nil, "runnel", "recovery", "init", "db", "3")
			env := []string{fmt.Sprint("COUNTFLOW_N=", n), fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PARTS=2", "COUNTFLOW_PACE=500"}
			args := []string{"-w", "2", "-r", "db", "-s", "0.02", "-b", "0"}
			cmd, out := startCount(t, dir, env, args...)
			delay := time.Duration(50+rand.New(rand.NewPCG(seed, 42)).IntN(250)) * time.Millisecond
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			first := completeLines(out.String())
			out2, code := runCmd(t, dir, env, "countflow", args...)
			if code != 0 {
				t.Fatalf("resumed run exit %d", code)
			}
			second := completeLines(out2)
			got := lastPerKey(append(first, second...))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("killed after %v (%d lines), resumed (%d lines): final state (-want +got):\n%s", delay, len(first), len(second), diff)
			}
			t.Logf("killed after %v: %d lines before, %d after (of %d)", delay, len(first), len(second), n)
		})
	}
}

// TestGracefulStop sends SIGTERM mid-run: the process stops at an epoch
// boundary, and the two runs' outputs concatenated equal one uninterrupted
// run's, line for line (one worker) or key by key (three workers).
func TestGracefulStop(t *testing.T) {
	const n, keys = 3000, 5
	want := countLines(n, keys)
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprint("w", workers), func(t *testing.T) {
			dir := t.TempDir()
			runCmd(t, dir, nil, "runnel", "recovery", "init", "db", "2")
			// About 600ms of input, so that the signal at 150ms lands mid-run
			// even on a fast machine.
			env := []string{fmt.Sprint("COUNTFLOW_N=", n), fmt.Sprint("COUNTFLOW_KEYS=", keys), "COUNTFLOW_PACE=2000"}
			args := []string{"-w", fmt.Sprint(workers), "-r", "db", "-s", "0.02", "-b", "0"}
			cmd, out := startCount(t, dir, env, args...)
			time.Sleep(150 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Fatalf("stopped run exit %d, want 130", code)
			}
			out2, code := runCmd(t, dir, env, "countflow", args...)
			if code != 0 {
				t.Fatalf("resumed run exit %d", code)
			}
			got := append(strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), strings.Split(strings.TrimSuffix(out2, "\n"), "\n")...)
			got = slices.DeleteFunc(got, func(s string) bool { return s == "" })
			if workers == 1 {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("outputs of both runs (-want +got):\n%s", diff)
				}
			} else if diff := cmp.Diff(byKey(want), byKey(got)); diff != "" {
				t.Errorf("outputs of both runs per key (-want +got):\n%s", diff)
			}
			t.Logf("%d lines before the stop, %d after", strings.Count(out.String(), "\n"), strings.Count(out2, "\n"))
		})
	}
}

// TestGracefulStopEveryOperatorProcess sends SIGTERM to a real process
// running one step of every stateful operator family (internal/testflow)
// and resumes it, on other worker counts too. The stopped process prints
// no end-of-input result (it did not reach the end), and the two processes'
// stdout together equals one uninterrupted run's, per step and key and in
// order: stdout keeps no position, so a result emitted past the stop epoch
// would show as a duplicate.
func TestGracefulStopEveryOperatorProcess(t *testing.T) {
	env := []string{"FAMILIES_N=3000", "FAMILIES_PARTS=2", "FAMILIES_KEYS=2"}
	ref, code := runCmd(t, t.TempDir(), env, "families")
	if code != 0 {
		t.Fatalf("uninterrupted run: exit %d", code)
	}
	want := byStepKeyLines(t, ref)
	for _, workers := range [][2]string{{"1", "1"}, {"3", "3"}, {"2", "1"}} {
		t.Run("w"+workers[0]+"-then-w"+workers[1], func(t *testing.T) {
			dir := t.TempDir()
			runCmd(t, dir, nil, "runnel", "recovery", "init", "db", "2")
			// About 600ms of input, so that the signal at 150ms lands
			// mid-run even on a fast machine.
			paced := append(env, "FAMILIES_PACE=2000")
			cmd := exec.Command(bin(t, "families"), "-w", workers[0], "-r", "db", "-s", "0.02", "-b", "0")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), paced...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Fatalf("stopped run exit %d, want 130", code)
			}
			first := out.String()
			for _, line := range strings.Split(first, "\n") {
				step, _, _ := strings.Cut(line, " ")
				if slices.Contains(testflow.FinalSteps, step) {
					t.Errorf("the stopped process printed an end-of-input result: %q", line)
				}
			}
			second, code := runCmd(t, dir, env, "families", "-w", workers[1], "-r", "db", "-s", "0.02", "-b", "0")
			if code != 0 {
				t.Fatalf("resumed run exit %d", code)
			}
			if diff := cmp.Diff(want, byStepKeyLines(t, first+second)); diff != "" {
				t.Errorf("stdout of both runs per step and key (-uninterrupted +stopped and resumed):\n%s", diff)
			}
			t.Logf("%d lines before the stop, %d after", strings.Count(first, "\n"), strings.Count(second, "\n"))
		})
	}
}

// byStepKeyLines groups "step key value" lines by step and key, in order.
func byStepKeyLines(t *testing.T, out string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			t.Fatalf("malformed line %q", line)
		}
		m[f[0]+" "+f[1]] = append(m[f[0]+" "+f[1]], f[2])
	}
	return m
}

func byKey(lines []string) map[string][]string {
	m := map[string][]string{}
	for _, l := range lines {
		k, _, _ := strings.Cut(l, " ")
		m[k] = append(m[k], l)
	}
	return m
}

// TestSignalsWithoutRecovery: SIGTERM stops a run without -r cleanly, with
// exit 130 and a message saying so.
func TestSignalsWithoutRecovery(t *testing.T) {
	cmd := exec.Command(bin(t, "countflow"), "-w", "2", "-s", "0.05")
	cmd.Env = append(os.Environ(), "COUNTFLOW_N=100000", "COUNTFLOW_PACE=1000")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(errb.String(), "interrupted: stopped cleanly") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}

// TestPrintFlowTutorial pins what --print-flow prints for the tutorial's
// flow, in every format, and checks that it runs nothing.
func TestPrintFlowTutorial(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{"mermaid", "dot", "json"} {
		want, err := os.ReadFile(filepath.Join("testdata", "tutorial-flow."+format))
		if err != nil {
			t.Fatal(err)
		}
		// -r on an uninitialised directory would fail a run: printing must
		// not open it.
		out, code := runCmd(t, dir, nil, "recovery", "--print-flow", format, "-r", "missing/", "-s", "30", "-b", "0")
		if code != 0 {
			t.Fatalf("--print-flow %s: exit %d", format, code)
		}
		if diff := cmp.Diff(string(want), out); diff != "" {
			t.Errorf("--print-flow %s (-want +got):\n%s", format, diff)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("--print-flow touched the recovery directory: %v", err)
	}
	if _, code := runCmd(t, dir, nil, "recovery", "--print-flow", "svg"); code != 2 {
		t.Errorf("--print-flow svg: exit %d, want 2", code)
	}
}

// TestAPIProcess runs a real flow process with RUNNEL_API_ADDR on a free
// port and --api-pprof: its start line names the address, and metrics and
// profiles are served there. A second process asked for the same address
// fails before it runs anything, naming the flag and the cause.
func TestAPIProcess(t *testing.T) {
	dir := t.TempDir()
	env := []string{"COUNTFLOW_N=100000", "COUNTFLOW_PACE=2000", "RUNNEL_API_ADDR=127.0.0.1:0", "RUNNEL_LOG_LEVEL=info"}
	cmd := exec.Command(bin(t, "countflow"), "--api-pprof")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base string
	re := regexp.MustCompile(`msg="flow started" flow=countflow .*api=(http://127\.0\.0\.1:\d+)/`)
	for base == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the process ended before logging its start")
			}
			if m := re.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no start line with the API address")
		}
	}
	for path, want := range map[string]string{
		"/metrics":             `runnel_step_items_in_total{flow="countflow",step="countflow.inp",worker="0"}`,
		"/debug/pprof/cmdline": "countflow",
		"/dataflow":            `"flow": "countflow"`,
		"/api/state":           `"running":true`,
		"/debug/pprof/":        "goroutine",
		"/":                    "app.js",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, body lacks %q:\n%.300s", path, resp.Status, want, body)
		}
	}

	// The same address again: refused before the flow starts.
	addr := strings.TrimPrefix(base, "http://")
	second := exec.Command(bin(t, "countflow"), "--api-addr", addr)
	second.Dir = dir
	second.Env = append(os.Environ(), "COUNTFLOW_N=10", "RUNNEL_LOG_LEVEL=info")
	var out2, err2 bytes.Buffer
	second.Stdout, second.Stderr = &out2, &err2
	second.Run()
	if code := second.ProcessState.ExitCode(); code != 1 || out2.Len() != 0 ||
		!strings.Contains(err2.String(), "--api-addr "+addr) || !strings.Contains(err2.String(), "address already in use") ||
		strings.Contains(err2.String(), "flow started") {
		t.Errorf("second process on %s: exit %d, stdout %q, stderr %q", addr, code, out2.String(), err2.String())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("stopped process: exit %d, want 130", code)
	}
	for l := range lines {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("error logged: %s", l)
		}
	}
}

// TestProgressOnTerminal runs a flow under a pseudo-terminal (util-linux
// script) with --progress: the status line is drawn and erased on stderr,
// and shows the input's rate, the percent read and the epoch.
func TestProgressOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to give the flow a terminal")
	}
	flow := bin(t, "countflow")
	cmd := exec.Command(script, "-qec", flow+" --progress --log-level=warn > /dev/null", "/dev/null")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "COUNTFLOW_N=6000", "COUNTFLOW_PACE=3000")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(string(out), "\r\x1b[K")
	re := regexp.MustCompile(`^inp \d+ items/s \d+% · epoch \d+$`)
	drawn := 0
	for _, l := range lines {
		if l == "" {
			continue
		}
		if !re.MatchString(l) {
			t.Errorf("status line %q", l)
		}
		drawn++
	}
	if drawn < 2 || !strings.HasSuffix(string(out), "\r\x1b[K") {
		t.Errorf("%d status lines, or the last was not erased: %q", drawn, out)
	}
}
