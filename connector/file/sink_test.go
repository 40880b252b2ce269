package file_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

var errCrash = errors.New("simulated crash")

const (
	epoch       = 5 * time.Millisecond
	linesPerEp  = 8 // the map step advances the clock by one epoch every 8 lines
	copyLines   = 400
	copyCrashAt = 20*linesPerEp + 5 // in the second batch of an epoch
	// minCommitted is the frontier the crashing run waits for: epochs 1
	// and 2 committed.
	minCommitted = 3
)

// waitCommitted waits until the running execution has committed epochs
// up to front-1 on every worker, for at most 10 seconds. Inspect takes no
// lock, so it reads the store while the run writes it.
func waitCommitted(db string, front uint64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := recovery.Inspect(db)
		if err != nil {
			return err
		}
		if rep.ResumeEpoch >= front {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("epochs before %d not committed after 10s (frontier %d)", front, rep.ResumeEpoch)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeInput writes "line 000" … to a file and returns its path.
func writeInput(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %03d\n", i)
	}
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, b.String())
	return path
}

// copyFlow reads in, upper-cases every line and writes it to sink. Its map
// step moves clock on by one epoch every linesPerEp lines, so that epochs
// close at the same lines in every run, and pauses briefly after every
// batch, so that the other workers and the committer keep up. At line
// crashAt, the first time crashed is false, it waits until epochs before
// minCommitted are committed in db (when db is set), then fails with
// errCrash.
func copyFlow(in string, sink runnel.Sink[string], clock *runneltest.Clock, crashAt int, crashed *atomic.Bool, db string) *runnel.Dataflow {
	flow := runnel.NewDataflow("copy")
	lines := op.Input("inp", flow, file.NewSource(in, file.BatchSize(4)))
	upper := op.TryMap("upper", lines, func(s string) (string, error) {
		i, err := strconv.Atoi(strings.TrimPrefix(s, "line "))
		if err != nil {
			return "", err
		}
		if i == crashAt && crashed.CompareAndSwap(false, true) {
			if db != "" {
				if err := waitCommitted(db, minCommitted); err != nil {
					return "", err
				}
			}
			return "", errCrash
		}
		if i%linesPerEp == linesPerEp-1 {
			clock.Advance(epoch)
		}
		if i%4 == 3 {
			time.Sleep(200 * time.Microsecond) // let other goroutines run
		}
		return strings.ToUpper(s), nil
	})
	op.Output("out", upper, sink)
	return flow
}

func runCopy(t *testing.T, in string, sink runnel.Sink[string], workers int, db string, crashAt int, crashed *atomic.Bool) error {
	t.Helper()
	clock := runneltest.NewClock(time.Unix(1_700_000_000, 0))
	flow := copyFlow(in, sink, clock, crashAt, crashed, db)
	return runnel.Run(context.Background(), flow, runneltest.Config(workers, epoch, db), runnel.WithClock(clock))
}

// committedPart is the part of an uninterrupted run's output file that
// epochs before resume cover: its lines of input lines before
// linesPerEp*(resume-1), since epochs close every linesPerEp lines.
func committedPart(t *testing.T, content string, resume uint64) string {
	t.Helper()
	n := 0
	for line := range strings.Lines(content) {
		i, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "LINE ")))
		if err != nil {
			t.Fatal(err)
		}
		if uint64(i) >= linesPerEp*(resume-1) {
			break
		}
		n += len(line)
	}
	return content[:n]
}

func readFiles(t *testing.T, paths []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(p)] = string(b)
	}
	return m
}

// exactlyOnce crashes the copy flow mid-way and resumes it; the output
// files must equal an uninterrupted run's, byte for byte.
func exactlyOnce(t *testing.T, workers int, newSink func(out string) runnel.Sink[string], files func(out string) []string) {
	in := writeInput(t, copyLines)

	// An uninterrupted run, without recovery.
	ref := filepath.Join(t.TempDir(), "ref")
	if err := os.Mkdir(ref, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runCopy(t, in, newSink(ref), workers, "", -1, new(atomic.Bool)); err != nil {
		t.Fatal(err)
	}
	want := readFiles(t, files(ref))
	total := 0
	for _, c := range want {
		total += strings.Count(c, "\n")
	}
	if total != copyLines {
		t.Fatalf("uninterrupted run wrote %d lines, want %d", total, copyLines)
	}

	// A run that crashes, then a resumed run.
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	db := initDir(t, 2)
	crashed := new(atomic.Bool)
	err := runCopy(t, in, newSink(out), workers, db, copyCrashAt, crashed)
	if !errors.Is(err, errCrash) || !strings.Contains(err.Error(), "copy.upper") {
		t.Fatalf("first run: err = %v, want the simulated crash in copy.upper", err)
	}
	rep, err := recovery.Inspect(db)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ResumeEpoch < minCommitted {
		t.Errorf("resume epoch %d, want at least %d", rep.ResumeEpoch, minCommitted)
	}
	cut := 0
	for name, c := range readFiles(t, files(out)) {
		committed := committedPart(t, want[name], rep.ResumeEpoch)
		if !strings.HasPrefix(c, committed) || !strings.HasPrefix(want[name], c) {
			t.Errorf("%s after the crash does not lie between the committed epochs' output and the whole output:\n%q", name, c)
		}
		cut += len(c) - len(committed)
	}
	t.Logf("crashed run: resume epoch %d, %d bytes past the committed positions", rep.ResumeEpoch, cut)
	if workers == 1 && cut == 0 {
		t.Errorf("the crashed run left nothing past the committed position: the test does not exercise truncation")
	}

	if err := runCopy(t, in, newSink(out), workers, db, copyCrashAt, crashed); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if diff := cmp.Diff(want, readFiles(t, files(out))); diff != "" {
		t.Errorf("output after the resume (-uninterrupted +resumed):\n%s", diff)
	}
}

func TestSinkExactlyOnce(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("w", workers), func(t *testing.T) {
			exactlyOnce(t, workers,
				func(out string) runnel.Sink[string] { return file.NewSink(filepath.Join(out, "out.txt")) },
				func(out string) []string { return []string{filepath.Join(out, "out.txt")} })
		})
	}
}

func TestDirSinkExactlyOnce(t *testing.T) {
	const parts = 3
	partFor := func(s string) int {
		i, _ := strconv.Atoi(strings.TrimPrefix(s, "LINE "))
		return i / 3 // consecutive lines go to the same file; any int will do
	}
	files := func(out string) []string {
		var fs []string
		for i := range parts {
			fs = append(fs, filepath.Join(out, fmt.Sprintf("part-%d.txt", i)))
		}
		return fs
	}
	exactlyOnce(t, 2, func(out string) runnel.Sink[string] { return file.NewDirSink(out, parts, partFor) }, files)
}

func TestSinkWithoutRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	writeFile(t, path, "old content that must go\n")
	flow := runnel.NewDataflow("write")
	op.Output("out", op.Input("inp", flow, runneltest.NewSource([]string{"a", "", "b\r", "c"}, runneltest.BatchSize(3))), file.NewSink(path))
	if err := runneltest.Run(flow, 2); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "a\n\nb\r\nc\n"; string(got) != want {
		t.Errorf("file = %q, want %q", got, want)
	}
}

func TestDirSinkRouting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "out") // created by the sink
	items := []int{0, 1, 2, 3, 4, 5, 6, -1, -2}
	flow := runnel.NewDataflow("route")
	op.Output("out", op.Input("inp", flow, runneltest.NewSource(items)),
		file.NewDirSinkFunc(dir, 3, func(x int) int { return x }, strconv.Itoa))
	if err := runneltest.Run(flow, 2); err != nil {
		t.Fatal(err)
	}
	got := readFiles(t, []string{filepath.Join(dir, "part-0.txt"), filepath.Join(dir, "part-1.txt"), filepath.Join(dir, "part-2.txt")})
	want := map[string]string{
		"part-0.txt": "0\n3\n6\n",
		"part-1.txt": "1\n4\n-2\n",
		"part-2.txt": "2\n5\n-1\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestDirSinkDefaultHash(t *testing.T) {
	dir := t.TempDir()
	var items []string
	for i := range 300 {
		items = append(items, fmt.Sprint("item ", i))
	}
	flow := runnel.NewDataflow("hash")
	op.Output("out", op.Input("inp", flow, runneltest.NewSource(items, runneltest.BatchSize(50))), file.NewDirSink(dir, 4, nil))
	if err := runneltest.Run(flow, 3); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range 4 {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("part-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Count(string(b), "\n")
		if lines < 40 {
			t.Errorf("part-%d.txt has %d of 300 lines: the default hash does not spread", i, lines)
		}
		n += lines
	}
	if n != 300 {
		t.Errorf("%d lines written, want 300", n)
	}
}

func TestSinkErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(sink runnel.Sink[string]) error {
		flow := runnel.NewDataflow("write")
		op.Output("out", op.Input("inp", flow, runneltest.NewSource([]string{"a"})), sink)
		return runneltest.Run(flow, 1)
	}
	noDir := filepath.Join(dir, "missing", "out.txt")
	if err := write(file.NewSink(noDir)); err == nil || !strings.Contains(err.Error(), noDir) {
		t.Errorf("missing directory: err = %v, want an error naming %s", err, noDir)
	}
	if err := write(file.NewSink(dir)); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("path is a directory: err = %v, want an error naming %s", err, dir)
	}
	blocker := filepath.Join(dir, "blocker")
	writeFile(t, blocker, "")
	if err := write(file.NewDirSink(filepath.Join(blocker, "out"), 2, nil)); err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("dir under a file: err = %v, want an error naming %s", err, blocker)
	}
	if err := write(file.NewDirSink(filepath.Join(dir, "zero"), 0, nil)); err == nil || !strings.Contains(err.Error(), "parts must be at least 1") {
		t.Errorf("0 parts: err = %v, want a parts error", err)
	}
}

// TestSinkShrunkBetweenRuns refuses to resume onto a file shorter than the
// committed position.
func TestSinkShrunkBetweenRuns(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "out.txt")
	run := func() error {
		flow := runnel.NewDataflow("write")
		op.Output("out", op.Input("inp", flow, runneltest.NewSource([]string{"a", "b"})), file.NewSink(path))
		return runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, db))
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "")
	if err := run(); !errors.Is(err, file.ErrPastEnd) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--drop-state write.out") {
		t.Fatalf("err = %v, want ErrPastEnd naming %s and pointing to --drop-state write.out", err, path)
	}
}
