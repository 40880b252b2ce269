package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/recovery"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInitAndInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db_dir")
	code, out, errs := runCLI("recovery", "init", dir, "2")
	if code != 0 || out != "" || errs != "" {
		t.Fatalf("init: code %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCLI("recovery", "init", dir, "2")
	if code != 1 || !strings.Contains(errs, "already initialized") {
		t.Errorf("re-init: code %d, stderr %q", code, errs)
	}
	code, out, errs = runCLI("recovery", "inspect", dir)
	if code != 0 || errs != "" {
		t.Fatalf("inspect: code %d, stderr %q", code, errs)
	}
	for _, want := range []string{"2 partition(s)", "dataflow (none yet)", "next run resumes at epoch 1", "executions:\n  (none)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	code, _, errs = runCLI("recovery", "inspect", dir, "--step", "f.s", "--key", "k")
	if code != 1 || !strings.Contains(errs, `no state stored for step f.s key "k"`) {
		t.Errorf("inspect missing key: code %d, stderr %q", code, errs)
	}
}

func TestInspectKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := recovery.Init(dir, 1); err != nil {
		t.Fatal(err)
	}
	s, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin("f", 1, recovery.MakePlan(nil, map[string]recovery.StepState{"f.s": {Type: "map[string]int"}}, nil)); err != nil {
		t.Fatal(err)
	}
	v, _ := codec.Marshal(map[string]int{"sum": 3})
	if err := s.WriteEpoch(1, []recovery.Row{{Step: "f.s", Key: "ALL", Value: v}, {Step: "f.s", Key: "gone", Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, errs := runCLI("recovery", "inspect", dir, "--step=f.s", "--key", "ALL")
	if want := "step f.s key \"ALL\": epoch 1\n{\n  \"sum\": 3\n}\n"; code != 0 || out != want {
		t.Errorf("inspect key: code %d, stdout %q (want %q), stderr %q", code, out, want, errs)
	}
	code, out, _ = runCLI("recovery", "inspect", dir, "--step", "f.s", "--key", "gone")
	if code != 0 || !strings.Contains(out, "deleted in epoch 1") {
		t.Errorf("inspect deleted key: code %d, stdout %q", code, out)
	}
	// The step id as the program writes it, without the flow prefix.
	code, out, errs = runCLI("recovery", "inspect", dir, "--step", "s", "--key", "ALL")
	if want := "step f.s key \"ALL\": epoch 1\n"; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("inspect --step without the flow prefix: code %d, stdout %q (want %q), stderr %q", code, out, want, errs)
	}
	// An unknown step lists the stored ones.
	code, _, errs = runCLI("recovery", "inspect", dir, "--step", "running_count", "--key", "ALL")
	if want := "no state stored for step running_count in " + dir + "; stored step ids (give one in full): f.s"; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("inspect unknown step: code %d, stderr %q, want %q", code, errs, want)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "missing command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"recovery"}, 2, "missing recovery command"},
		{[]string{"recovery", "nope"}, 2, `unknown recovery command "nope"`},
		{[]string{"recovery", "init", dir}, 2, "recovery init takes DIR and N"},
		{[]string{"recovery", "init", dir, "0"}, 2, "N must be a positive integer"},
		{[]string{"recovery", "init", dir, "-3"}, 2, "N must be a positive integer"},
		{[]string{"recovery", "init", dir, "two"}, 2, "N must be a positive integer"},
		{[]string{"recovery", "init", "", "1"}, 1, "runnel: recovery: init: the directory is empty; name the directory to create"},
		{[]string{"recovery", "inspect"}, 2, "recovery inspect takes DIR"},
		{[]string{"recovery", "inspect", dir, "--step", "s"}, 2, "--step and --key go together"},
		{[]string{"recovery", "inspect", dir, "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"recovery", "inspect", filepath.Join(dir, "missing")}, 1, "runnel recovery init"},
	}
	for _, c := range cases {
		code, _, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: code %d, stderr %q; want code %d and %q", c.args, code, errs, c.code, c.want)
		}
		if c.code == 2 && !strings.Contains(errs, "usage:") {
			t.Errorf("%q: stderr lacks usage: %q", c.args, errs)
		}
	}
	if code, out, _ := runCLI("help"); code != 0 || !strings.Contains(out, "runnel recovery init DIR N") {
		t.Errorf("help: code %d, stdout %q", code, out)
	}
}

func TestVerifyCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("recovery", "verify", dir)
	if code != 0 || errs != "" || !strings.Contains(out, "ok, 0 warning(s)") {
		t.Fatalf("verify healthy: code %d, stdout %q, stderr %q", code, out, errs)
	}
	// A crashed run's uncommitted rows: a warning, fatal only with --strict.
	s, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin("f", 1, recovery.MakePlan(nil, map[string]recovery.StepState{"f.s": {Type: "int"}}, nil)); err != nil {
		t.Fatal(err)
	}
	v, _ := codec.Marshal(3)
	if err := s.WriteEpoch(1, []recovery.Row{{Step: "f.s", Key: "k", Value: v}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, _ = runCLI("recovery", "verify", dir)
	if code != 0 || !strings.Contains(out, "warning: 1 row(s) at epochs 1 to 1") {
		t.Errorf("verify uncommitted: code %d, stdout %q", code, out)
	}
	code, _, errs = runCLI("recovery", "verify", "--strict", dir)
	if code != 1 || !strings.Contains(errs, "1 warning(s) and --strict") {
		t.Errorf("verify --strict: code %d, stderr %q", code, errs)
	}
	if err := os.Remove(filepath.Join(dir, "part-1.sqlite3")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI("recovery", "verify", dir)
	if code != 1 || !strings.Contains(out, "PROBLEM: missing") || !strings.Contains(errs, "1 problem(s) found") {
		t.Errorf("verify missing partition: code %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs = runCLI("recovery", "verify"); code != 2 || !strings.Contains(errs, "recovery verify takes DIR") {
		t.Errorf("verify without DIR: code %d, stderr %q", code, errs)
	}
}
