package file_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func initDir(t *testing.T, parts int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, parts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readAll runs src into a collecting sink and returns what it collected.
func readAll(t *testing.T, src runnel.Source[string], cfg runnel.Config) ([]string, error) {
	t.Helper()
	flow := runnel.NewDataflow("read")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("inp", flow, src), sink)
	err := runnel.Run(context.Background(), flow, cfg)
	return sink.Items(), err
}

func TestSourceLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // beyond bufio.Scanner's 64 KiB limit
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"trailing newline", "a\nbb\nccc\n", []string{"a", "bb", "ccc"}},
		{"no trailing newline", "a\nbb\nccc", []string{"a", "bb", "ccc"}},
		{"crlf", "a\r\nbb\r\nccc", []string{"a", "bb", "ccc"}},
		{"lone cr kept", "a\rb\nc\r", []string{"a\rb", "c\r"}},
		{"empty lines", "\n\na\n\n", []string{"", "", "a", ""}},
		{"empty file", "", nil},
		{"only newline", "\n", []string{""}},
		{"long line", "s\n" + long + "\r\nt", []string{"s", long, "t"}},
		{"long last line", long, []string{long}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.txt")
			writeFile(t, path, tc.content)
			got, err := readAll(t, file.NewSource(path, file.BatchSize(2)), runneltest.Config(1, time.Hour, ""))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSourceMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.txt")
	_, err := readAll(t, file.NewSource(path), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a not-exist error naming %s", err, path)
	}
}

func TestSourceBadBatchSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "a\n")
	_, err := readAll(t, file.NewSource(path, file.BatchSize(0)), runneltest.Config(1, time.Hour, ""))
	if err == nil || !strings.Contains(err.Error(), "batch size 0") {
		t.Fatalf("err = %v, want a batch size error", err)
	}
}

// TestSourceGrowsBetweenRuns reads a file to its end with recovery, appends
// to it, and runs again: the second run emits only the new lines.
func TestSourceGrowsBetweenRuns(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "a\nb\r\nc\n")
	cfg := runneltest.Config(1, time.Hour, db)
	got, err := readAll(t, file.NewSource(path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Fatalf("first run (-want +got):\n%s", diff)
	}
	got, err = readAll(t, file.NewSource(path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("run without new lines emitted %q", got)
	}
	appendFile(t, path, "d\n\ne")
	got, err = readAll(t, file.NewSource(path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"d", "", "e"}, got); diff != "" {
		t.Fatalf("run after the file grew (-want +got):\n%s", diff)
	}
}

// TestSourceShrunkBetweenRuns refuses to resume a file shorter than its
// recovered position.
func TestSourceShrunkBetweenRuns(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "aaa\nbbb\n")
	cfg := runneltest.Config(1, time.Hour, db)
	if _, err := readAll(t, file.NewSource(path), cfg); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "a\n")
	_, err := readAll(t, file.NewSource(path), cfg)
	if !errors.Is(err, file.ErrPastEnd) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--drop-state read.inp") {
		t.Fatalf("err = %v, want ErrPastEnd naming %s and pointing to --drop-state", err, path)
	}
}

func makeDir(t *testing.T) (dir string, want []string) {
	t.Helper()
	dir = t.TempDir()
	for i, name := range []string{"a.log", "b.log", "c.log", "d.log", "e.log"} {
		var b strings.Builder
		for j := range 7 * (i + 1) {
			line := name + ":" + strings.Repeat("-", j)
			b.WriteString(line + "\n")
			want = append(want, line)
		}
		writeFile(t, filepath.Join(dir, name), b.String())
	}
	writeFile(t, filepath.Join(dir, "skip.txt"), "not a log\n")
	if err := os.Mkdir(filepath.Join(dir, "sub.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	return dir, want
}

func TestDirSource(t *testing.T) {
	dir, want := makeDir(t)
	for _, workers := range []int{1, 3} {
		got, err := readAll(t, file.NewDirSource(dir, "*.log", file.BatchSize(4)), runneltest.Config(workers, time.Hour, ""))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d workers (-want +got):\n%s", workers, diff)
		}
	}
}

// TestDirSourceResume reads a directory with recovery on 3 workers, adds
// lines to two files, and resumes on 2 workers: only the new lines come.
func TestDirSourceResume(t *testing.T) {
	dir, want := makeDir(t)
	db := initDir(t, 2)
	got, err := readAll(t, file.NewDirSource(dir, "*.log"), runneltest.Config(3, time.Hour, db))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first run (-want +got):\n%s", diff)
	}
	appendFile(t, filepath.Join(dir, "a.log"), "new a\n")
	appendFile(t, filepath.Join(dir, "e.log"), "new e\n")
	got, err = readAll(t, file.NewDirSource(dir, "*.log"), runneltest.Config(2, time.Hour, db))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"new a", "new e"}, got); diff != "" {
		t.Fatalf("resumed run (-want +got):\n%s", diff)
	}
}

func TestDirSourceErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := readAll(t, file.NewDirSource(missing, "*"), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing dir: err = %v, want a not-exist error naming %s", err, missing)
	}
	_, err = readAll(t, file.NewDirSource(dir, "[a-"), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, filepath.ErrBadPattern) {
		t.Errorf("bad glob: err = %v, want ErrBadPattern", err)
	}
	got, err := readAll(t, file.NewDirSource(dir, "*.none"), runneltest.Config(2, time.Hour, ""))
	if err != nil || len(got) != 0 {
		t.Errorf("no match: got %q, %v; want nothing and no error", got, err)
	}
}

// TestDirSourceRecursiveGlob: "**" matches any number of directories, as
// in Bytewax's DirSource (Python's Path.glob).
func TestDirSourceRecursiveGlob(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"sub/deep", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a.log", "sub/b.log", "sub/deep/c.log", "sub/x.txt", "other/d.log"} {
		writeFile(t, filepath.Join(dir, f), f+"\n")
	}
	for _, tc := range []struct {
		glob string
		want []string
	}{
		{"**/*.log", []string{"a.log", "other/d.log", "sub/b.log", "sub/deep/c.log"}},
		{"sub/**/*.log", []string{"sub/b.log", "sub/deep/c.log"}},
		{"**/deep/*", []string{"sub/deep/c.log"}},
		{"**", []string{"a.log", "other/d.log", "sub/b.log", "sub/deep/c.log", "sub/x.txt"}},
		{"*/*.log", []string{"other/d.log", "sub/b.log"}},
	} {
		got, err := readAll(t, file.NewDirSource(dir, tc.glob), runneltest.Config(2, time.Hour, ""))
		if err != nil {
			t.Fatalf("%s: %v", tc.glob, err)
		}
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.glob, diff)
		}
	}
	_, err := readAll(t, file.NewDirSource(dir, "**/[a-"), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, filepath.ErrBadPattern) {
		t.Errorf("bad glob: err = %v, want ErrBadPattern", err)
	}
}
