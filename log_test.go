package runnel_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// sumFlow's sink writes to stdout, the writer that Main is given as
// standard output, so that anything else Main wrote there would show.
func sumFlow(fail bool, stdout io.Writer) func([]string) (*runnel.Dataflow, error) {
	return func([]string) (*runnel.Dataflow, error) {
		flow := runnel.NewDataflow("logs")
		nums := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3}))
		nums = op.TryMap("check", nums, func(x int) (int, error) {
			if fail && x == 2 {
				return 0, errors.New("two is not allowed")
			}
			return x, nil
		})
		keyed := op.KeyOn("key", nums, func(int) string { return "ALL" })
		sums := op.StatefulMap("sum", keyed, func(s int, _ bool, x int) (int, bool, int) { return s + x, true, s + x })
		op.Output("out", sums, stdio.NewWriterSink[runnel.KV[string, int]](stdout))
		return flow, nil
	}
}

// jsonLines parses every line of s as a JSON log record.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func findRec(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// Logs go to standard error only, in the format and at the level asked
// for: the start line with the run's settings, a debug line per committed
// epoch, and the end; standard output holds the flow's output alone.
func TestMainLogs(t *testing.T) {
	dir := t.TempDir()
	if err := recovery.Init(dir, 1); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	args := []string{"prog", "-r", dir, "-s", "30", "-b", "0", "--log-format", "json", "--log-level", "debug"}
	if code := runnel.MainWith(args, nil, &out, &errb, sumFlow(false, &out)); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if want := "('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n"; out.String() != want {
		t.Errorf("stdout %q, want only the flow's output %q", out.String(), want)
	}
	recs := jsonLines(t, errb.String())
	start := findRec(recs, "flow started")
	if start == nil || start["flow"] != "logs" || start["workers"] != 1.0 || start["recovery_dir"] != dir || start["resume_epoch"] != 1.0 || start["level"] != "INFO" {
		t.Errorf("start line %v", start)
	}
	if c := findRec(recs, "epoch committed"); c == nil || c["level"] != "DEBUG" || c["epoch"] != 1.0 || c["rows"].(float64) < 1 {
		t.Errorf("commit line %v", c)
	}
	if findRec(recs, "flow finished: the input ended") == nil {
		t.Errorf("no end line in %s", errb.String())
	}

	// The default text format at info level: no debug lines.
	out.Reset()
	errb.Reset()
	if code := runnel.MainWith([]string{"prog", "-r", dir, "-s", "30", "-b", "0", "--log-level", "info"}, nil, &out, &errb, sumFlow(false, &out)); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("resumed run printed %q; the input was all read before", out.String())
	}
	for _, want := range []string{`level=INFO msg="flow started" flow=logs workers=1`, "resume_epoch=2"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "DEBUG") {
		t.Errorf("debug line at info level:\n%s", errb.String())
	}

	// By default (warn) a run that goes as planned prints only its output,
	// as Bytewax's does: the tutorial's transcript stays exact on a terminal.
	out.Reset()
	errb.Reset()
	if code := runnel.MainWith([]string{"prog", "-r", dir, "-s", "30", "-b", "0"}, nil, &out, &errb, sumFlow(false, &out)); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if errb.Len() != 0 {
		t.Errorf("a run that went as planned logged at the default level:\n%s", errb.String())
	}

	// --log-level error keeps only the failure, which names the step.
	out.Reset()
	errb.Reset()
	if code := runnel.MainWith([]string{"prog", "--log-format=json", "--log-level=error"}, nil, &out, &errb, sumFlow(true, &out)); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	recs = jsonLines(t, errb.String())
	if len(recs) != 1 || recs[0]["msg"] != "flow failed" || recs[0]["step"] != "logs.check" || recs[0]["worker"] != 0.0 ||
		recs[0]["input"] != "logs.inp" || recs[0]["partition"] == nil || !strings.Contains(recs[0]["err"].(string), "two is not allowed") {
		t.Errorf("failure log %v", recs)
	}
	if out.String() != "('ALL', 1)\n" && out.String() != "" {
		t.Errorf("stdout %q", out.String())
	}

	// --progress draws only on a terminal: here stderr is a buffer.
	out.Reset()
	errb.Reset()
	if code := runnel.MainWith([]string{"prog", "--progress", "--log-level=warn"}, nil, &out, &errb, sumFlow(false, &out)); code != 0 {
		t.Fatalf("--progress: exit %d, stderr %s", code, errb.String())
	}
	if errb.Len() != 0 || out.String() != "('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n" {
		t.Errorf("--progress without a terminal: stdout %q, stderr %q", out.String(), errb.String())
	}
}
