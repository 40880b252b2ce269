package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-dev/runnel"
)

// transcript is one fenced block of docs/recovery.md: the commands it
// shows, each with its output, run after setup.
type transcript struct {
	setup string
	line  int // of the opening fence, for messages
	steps []transcriptStep
}

type transcriptStep struct {
	args []string // without the "$ "
	want string
}

// livingTranscripts parses the "Living with your state" section: every
// fenced block that starts with a "$ " command must follow a
// "<!-- transcript: SETUP -->" line naming how to prepare its directory.
func livingTranscripts(t *testing.T, doc string) []transcript {
	t.Helper()
	start := strings.Index(doc, "\n## Living with your state\n")
	if start < 0 {
		t.Fatal(`docs/recovery.md has no "## Living with your state" section`)
	}
	end := strings.Index(doc[start+1:], "\n## ")
	if end < 0 {
		end = len(doc) - start - 1
	}
	base := strings.Count(doc[:start+1], "\n")
	lines := strings.Split(doc[start+1:start+1+end], "\n")
	var out []transcript
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```" || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "$ ") {
			continue
		}
		tr := transcript{line: base + i + 1}
		j := i - 1
		for j >= 0 && lines[j] == "" {
			j--
		}
		if j < 0 || !strings.HasPrefix(lines[j], "<!-- transcript: ") {
			t.Errorf("docs/recovery.md:%d: a transcript without a <!-- transcript: SETUP --> line before it", tr.line)
			continue
		}
		tr.setup = strings.TrimSuffix(strings.TrimPrefix(lines[j], "<!-- transcript: "), " -->")
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			if cmd, ok := strings.CutPrefix(lines[i], "$ "); ok {
				tr.steps = append(tr.steps, transcriptStep{args: strings.Fields(cmd)})
				continue
			}
			tr.steps[len(tr.steps)-1].want += lines[i] + "\n"
		}
		out = append(out, tr)
	}
	return out
}

var (
	buildExamples sync.Once
	examplesDir   string
	examplesErr   error
)

// exampleBinary builds the example program name (examples/NAME) once per
// test binary and returns its path.
func exampleBinary(t *testing.T, name string) string {
	t.Helper()
	buildExamples.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			examplesErr = err
			return
		}
		if examplesDir, examplesErr = os.MkdirTemp("", "runnel-examples-"); examplesErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", examplesDir+string(filepath.Separator), "./examples/migrate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			examplesErr = err
			examplesDir = string(out)
		}
	})
	if examplesErr != nil {
		t.Fatalf("go build ./examples/...: %v\n%s", examplesErr, examplesDir)
	}
	return filepath.Join(examplesDir, name)
}

// TestLivingWithYourStateTranscripts runs every transcript of the "Living
// with your state" section of docs/recovery.md, on a fresh directory made by
// its setup, with the real CLI (in process) and example programs (built and
// run as processes), and compares what they print (standard output, then
// standard error) with the document, byte for byte.
func TestLivingWithYourStateTranscripts(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "recovery.md"))
	if err != nil {
		t.Fatal(err)
	}
	trs := livingTranscripts(t, string(doc))
	seen := map[string]bool{}
	for _, tr := range trs {
		for _, st := range tr.steps {
			seen[strings.Join(st.args[:min(3, len(st.args))], " ")] = true
		}
	}
	for _, cmd := range []string{"runnel recovery dump", "runnel recovery verify", "runnel recovery backup", "runnel recovery repartition"} {
		if !seen[cmd] {
			t.Errorf("docs/recovery.md shows no transcript of %s in \"Living with your state\"", cmd)
		}
	}
	if !seen["migrate -r db_dir/"] {
		t.Errorf("docs/recovery.md shows no transcript of a migration")
	}
	defer func() {
		if examplesDir != "" && examplesErr == nil {
			os.RemoveAll(examplesDir)
		}
	}()
	for _, tr := range trs {
		var bin string
		for _, st := range tr.steps {
			if st.args[0] == "migrate" {
				bin = exampleBinary(t, "migrate") // before the setup changes the working directory
			}
		}
		t.Run(fmt.Sprintf("line%d", tr.line), func(t *testing.T) {
			switch tr.setup {
			case "tutorial":
				tutorialDir(t)
			case "damaged":
				damagedDir(t)
			default:
				t.Fatalf("docs/recovery.md:%d: unknown transcript setup %q", tr.line, tr.setup)
			}
			for _, st := range tr.steps {
				var got string
				switch st.args[0] {
				case "runnel":
					_, out, errs := runCLI(st.args[1:]...)
					got = out + errs
				case "migrate":
					var out, errs bytes.Buffer
					cmd := exec.Command(bin, st.args[1:]...)
					cmd.Stdout, cmd.Stderr = &out, &errs
					_ = cmd.Run() // the exit status is not part of the transcript
					got = out.String() + errs.String()
				default:
					t.Fatalf("docs/recovery.md:%d: no way to run %q", tr.line, st.args[0])
				}
				if got != st.want {
					t.Errorf("docs/recovery.md:%d: $ %s\ngot:\n%s\nthe document shows:\n%s", tr.line, strings.Join(st.args, " "), got, st.want)
				}
			}
		})
	}
}

// damagedDir is tutorialDir on two partitions, with part-1.sqlite3 then
// cut to its first 4096 bytes.
func damagedDir(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
	dir := "db_dir/"
	if code, _, errs := runCLI("recovery", "init", dir, "2"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	cfg, _, err := runnel.ParseConfig("recovery", []string{"-r", dir, "-s", "30s", "-b", "0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, inp := range [][]int{{0, 1, 2}, {0, 1, 2, 3, 4}} {
		flow, _ := tutorialFlow(inp)
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(filepath.Join(dir, "part-1.sqlite3"), 4096); err != nil {
		t.Fatal(err)
	}
}
