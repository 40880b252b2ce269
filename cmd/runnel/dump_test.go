package main

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// tutorialFlow is examples/recovery's flow (same flow and step ids,
// operators and state), with a collecting sink instead of standard output.
func tutorialFlow(inp []int) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, int]]) {
	flow := runnel.NewDataflow("recovery")
	nums := op.Input("inp", flow, runneltest.NewSource(inp))
	keyed := op.KeyOn("key_stream", nums, func(int) string { return "ALL" })
	sums := op.StatefulMap("running_count", keyed, func(sum int, _ bool, x int) (int, bool, int) {
		sum += x
		return sum, true, sum
	})
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	op.Output("out", sums, sink)
	return flow, sink
}

// tutorialDir runs the tutorial's commands in a new temporary working
// directory: init db_dir/ 1, a run over 0 1 2 and one over 0 1 2 3 4, both
// with -s 30s -b 0. It returns "db_dir/", relative to the working directory,
// as the tutorial names it.
func tutorialDir(t *testing.T) string {
	t.Helper()
	t.Chdir(t.TempDir())
	dir := "db_dir/"
	if code, _, errs := runCLI("recovery", "init", dir, "1"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	cfg, _, err := runnel.ParseConfig("recovery", []string{"-r", dir, "-s", "30s", "-b", "0"})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, inp := range [][]int{{0, 1, 2}, {0, 1, 2, 3, 4}} {
		flow, sink := tutorialFlow(inp)
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			t.Fatal(err)
		}
		for _, kv := range sink.Items() {
			got = append(got, kv.Value)
		}
	}
	if want := []int{0, 1, 3, 6, 10}; !slices.Equal(got, want) {
		t.Fatalf("tutorial output %v, want %v", got, want)
	}
	return dir
}

// The tutorial's directory, dumped: pinned, and shown verbatim in
// docs/recovery.md.
const (
	tutorialDump = `{"step":"recovery.inp","key":"list","epoch":2,"state":5}
{"step":"recovery.running_count","key":"ALL","epoch":2,"state":{"state":10}}
`
	tutorialDumpJSON = `[
{"step":"recovery.inp","key":"list","epoch":2,"state":5},
{"step":"recovery.running_count","key":"ALL","epoch":2,"state":{"state":10}}
]
`
	tutorialDumpCSV = `step,key,epoch,state
recovery.inp,list,2,5
recovery.running_count,ALL,2,"{""state"":10}"
`
	tutorialVerify = `verify db_dir/: 1 partition file(s)
  db_dir/part-0.sqlite3: ok (frontier 3, 4 row(s))
ok, 0 warning(s): the next run resumes at epoch 3 as execution 2
`
)

func TestDumpTutorial(t *testing.T) {
	docPath, err := filepath.Abs(filepath.Join("..", "..", "docs", "recovery.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := tutorialDir(t)
	before := dirSums(t, dir)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"recovery", "dump", dir}, tutorialDump},
		{[]string{"recovery", "dump", dir, "--format", "jsonl"}, tutorialDump},
		{[]string{"recovery", "dump", dir, "--format=json"}, tutorialDumpJSON},
		{[]string{"recovery", "dump", dir, "--format", "csv"}, tutorialDumpCSV},
		{[]string{"recovery", "dump", dir, "--step", "running_count"}, `{"step":"recovery.running_count","key":"ALL","epoch":2,"state":{"state":10}}` + "\n"},
		{[]string{"recovery", "dump", dir, "--step", "recovery.inp"}, `{"step":"recovery.inp","key":"list","epoch":2,"state":5}` + "\n"},
		{[]string{"recovery", "dump", dir, "--key", "ALL"}, `{"step":"recovery.running_count","key":"ALL","epoch":2,"state":{"state":10}}` + "\n"},
		{[]string{"recovery", "dump", dir, "--key", "nope"}, ""},
		{[]string{"recovery", "dump", dir, "--key", "nope", "--format", "json"}, "[]\n"},
		{[]string{"recovery", "dump", dir, "--epoch", "2"}, tutorialDump},
		{[]string{"recovery", "verify", dir}, tutorialVerify},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != 0 || out != c.want {
			t.Errorf("%q: code %d, stderr %q, stdout:\n%s\nwant:\n%s", c.args, code, errs, out, c.want)
		}
	}
	fails := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"recovery", "dump", dir, "--epoch", "3"}, 1, "epoch 3 of db_dir/ is not committed: the last committed epoch is 2"},
		{[]string{"recovery", "dump", dir, "--epoch", "1"}, 1, "the state after epoch 1 of db_dir/ is no longer kept: it holds the state after epochs 2 to 2"},
		{[]string{"recovery", "dump", dir, "--step", "nope"}, 1, "no state stored for step nope in db_dir/; stored step ids (give one in full): recovery.inp, recovery.running_count"},
		{[]string{"recovery", "dump", dir, "--format", "yaml"}, 2, `--format must be jsonl, json or csv, got "yaml"`},
		{[]string{"recovery", "dump"}, 2, "recovery dump takes DIR"},
		{[]string{"recovery", "dump", "missing"}, 1, "runnel recovery init"},
		{[]string{"recovery", "inspect", dir, "--json", "--step", "s", "--key", "k"}, 2, "--json describes the whole directory"},
	}
	for _, c := range fails {
		code, _, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: code %d, stderr %q; want code %d and %q", c.args, code, errs, c.code, c.want)
		}
	}

	code, out, errs := runCLI("recovery", "inspect", dir, "--json")
	if code != 0 {
		t.Fatalf("inspect --json: code %d, stderr %q", code, errs)
	}
	var rep reportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("inspect --json is not JSON: %v\n%s", err, out)
	}
	if rep.FlowID != "recovery" || !rep.Resumable || rep.Resume != 3 || len(rep.Partitions) != 1 || rep.Partitions[0].Frontier != 3 ||
		len(rep.Executions) != 2 || !slices.Equal(rep.Executions[1].Fronts, []uint64{3}) || len(rep.Steps) != 2 ||
		rep.Steps[1].ID != "recovery.running_count" || rep.Steps[1].Keys != 1 || len(rep.DirID) != 32 {
		t.Errorf("inspect --json:\n%s", out)
	}
	if after := dirSums(t, dir); !maps.Equal(before, after) {
		t.Errorf("dump, verify or inspect changed the directory")
	}

	// docs/recovery.md shows these transcripts verbatim.
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"$ runnel recovery dump db_dir/\n" + tutorialDump,
		"$ runnel recovery dump db_dir/ --format csv\n" + tutorialDumpCSV,
		"$ runnel recovery verify db_dir/\n" + tutorialVerify,
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/recovery.md does not show:\n%s", want)
		}
	}
	// and what the sqlite3 tool shows of the change log.
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Log("no sqlite3 tool: its transcript in docs/recovery.md is not checked")
		return
	}
	const query = "SELECT c.step_id, e.key, c.epoch, e.value FROM changes AS c, json_each(c.batch) AS e ORDER BY c.seq, e.id"
	out2, err := exec.Command(bin, filepath.Join(dir, "part-0.sqlite3"), query).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out2)
	}
	want := "  $ sqlite3 db_dir/part-0.sqlite3 \"" + query + "\"\n"
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(out2), "\n"), "\n") {
		want += "  " + line
	}
	if !strings.Contains(string(doc), want+"\n") {
		t.Errorf("docs/recovery.md does not show:\n%s", want)
	}
}

func dirSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestDumpValues: what JSON cannot hold directly, several partitions,
// deletions, and the state as of an older epoch that -b kept.
func TestDumpValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := recovery.Init(dir, 3); err != nil {
		t.Fatal(err)
	}
	s, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	plan := recovery.MakePlan(nil, map[string]recovery.StepState{"f.s": {Type: "any"}, "f.in": {Type: "position int"}}, nil)
	if _, err := s.Begin("f", 1, plan); err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte {
		b, err := codec.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type pair struct {
		Bytes []byte
		F     float64
	}
	epochs := [][]recovery.Row{
		{
			{Step: "f.s", Key: "a", Value: enc(1)},
			{Step: "f.s", Key: "b", Value: enc(pair{[]byte("hi"), math.NaN()})},
			{Step: "f.s", Key: "c", Value: enc(map[int]float64{2: math.Inf(1), 1: math.Inf(-1)})},
			{Step: "f.in", Key: "part-0", Value: enc(3)},
		},
		{
			{Step: "f.s", Key: "a", Value: enc(2)},
			{Step: "f.s", Key: "c", Deleted: true},
			{Step: "f.in", Key: "part-0", Value: enc(7)},
		},
	}
	for i, rows := range epochs {
		e := uint64(i + 1)
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(0, []int{0}, e+1, 5); err != nil {
			t.Fatal(err)
		}
	}
	// Epoch 3 is written but never committed: dump does not show it.
	if err := s.WriteEpoch(3, []recovery.Row{{Step: "f.s", Key: "a", Value: enc(99)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	latest := `{"step":"f.in","key":"part-0","epoch":2,"state":7}
{"step":"f.s","key":"a","epoch":2,"state":2}
{"step":"f.s","key":"b","epoch":1,"state":{"Bytes":"aGk=","F":"NaN"}}
`
	first := `{"step":"f.in","key":"part-0","epoch":1,"state":3}
{"step":"f.s","key":"a","epoch":1,"state":1}
{"step":"f.s","key":"b","epoch":1,"state":{"Bytes":"aGk=","F":"NaN"}}
{"step":"f.s","key":"c","epoch":1,"state":{"1":"-Inf","2":"+Inf"}}
`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"recovery", "dump", dir}, latest},
		{[]string{"recovery", "dump", dir, "--epoch", "1"}, first},
		{[]string{"recovery", "dump", dir, "--epoch", "1", "--key", "c", "--key", "a", "--step", "s"}, `{"step":"f.s","key":"a","epoch":1,"state":1}
{"step":"f.s","key":"c","epoch":1,"state":{"1":"-Inf","2":"+Inf"}}
`},
	} {
		code, out, errs := runCLI(c.args...)
		if code != 0 || out != c.want {
			t.Errorf("%q: code %d, stderr %q, stdout:\n%s\nwant:\n%s", c.args, code, errs, out, c.want)
		}
	}
}

// TestBackupTutorial: a run on a backup of the tutorial's directory
// continues exactly like a run on the directory itself.
func TestBackupTutorial(t *testing.T) {
	docPath, err := filepath.Abs(filepath.Join("..", "..", "docs", "recovery.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := tutorialDir(t)
	code, out, errs := runCLI("recovery", "backup", dir, "copy")
	if want := "backed up db_dir/ to copy: 1 partition(s), state after epoch 2; a run on the copy resumes at epoch 3\n"; code != 0 || out != want {
		t.Fatalf("backup: code %d, stdout %q (want %q), stderr %q", code, out, want, errs)
	}
	if !strings.Contains(string(doc), "$ runnel recovery backup db_dir/ copy\n"+out) {
		t.Errorf("docs/recovery.md does not show the backup transcript:\n%s", out)
	}
	if code, _, errs := runCLI("recovery", "backup", dir, "copy"); code != 1 || !strings.Contains(errs, "the destination already exists") {
		t.Errorf("backup onto the copy: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCLI("recovery", "backup", dir); code != 2 || !strings.Contains(errs, "recovery backup takes DIR and DEST") {
		t.Errorf("backup without DEST: code %d, stderr %q", code, errs)
	}
	var results [][]int
	for _, d := range []string{"copy", dir} {
		cfg, _, err := runnel.ParseConfig("recovery", []string{"-r", d, "-s", "30s", "-b", "0"})
		if err != nil {
			t.Fatal(err)
		}
		flow, sink := tutorialFlow([]int{0, 1, 2, 3, 4, 5, 6})
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, kv := range sink.Items() {
			got = append(got, kv.Value)
		}
		results = append(results, got)
	}
	if want := []int{15, 21}; !slices.Equal(results[0], want) || !slices.Equal(results[1], want) {
		t.Errorf("a third run on the backup gave %v, on the directory %v; want %v for both", results[0], results[1], want)
	}
}
