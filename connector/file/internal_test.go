package file

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// drain reads a partition to its end, returning its batches and the
// position after each.
func drain(t *testing.T, p *sourcePart) (batches [][]string, pos []int64) {
	t.Helper()
	defer p.Close()
	for {
		b, err := p.NextBatch()
		if err == io.EOF {
			if _, err := p.NextBatch(); err != io.EOF {
				t.Fatalf("NextBatch after EOF: %v", err)
			}
			return batches, pos
		}
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, append([]string(nil), b...))
		at, _ := p.Snapshot()
		pos = append(pos, at)
	}
}

func TestBatchSize(t *testing.T) {
	var b strings.Builder
	for range 2500 {
		b.WriteString("line\n")
	}
	path := writeTemp(t, b.String())
	for _, tc := range []struct {
		opts []SourceOpt
		want []int
	}{
		{nil, []int{1000, 1000, 500}},
		{[]SourceOpt{BatchSize(1024)}, []int{1024, 1024, 452}},
		{[]SourceOpt{BatchSize(2500)}, []int{2500}},
		{[]SourceOpt{BatchSize(3000)}, []int{2500}},
	} {
		p, err := openPart(path, newSourceConfig(tc.opts), nil)
		if err != nil {
			t.Fatal(err)
		}
		batches, pos := drain(t, p)
		var sizes []int
		for _, b := range batches {
			sizes = append(sizes, len(b))
		}
		if diff := cmp.Diff(tc.want, sizes); diff != "" {
			t.Errorf("batch sizes (-want +got):\n%s", diff)
		}
		if last := pos[len(pos)-1]; last != 2500*5 {
			t.Errorf("final position %d, want %d", last, 2500*5)
		}
	}
}

func TestSourceResumeOffset(t *testing.T) {
	content := "one\r\ntwo\n\nfour\nfive"
	path := writeTemp(t, content)
	p, err := openPart(path, sourceConfig{batch: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	batches, pos := drain(t, p)
	if diff := cmp.Diff([][]string{{"one", "two"}, {"", "four"}, {"five"}}, batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{9, 15, int64(len(content))}, pos); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		at   int64
		want []string
	}{
		{0, []string{"one", "two", "", "four", "five"}},
		{5, []string{"two", "", "four", "five"}},
		{9, []string{"", "four", "five"}},
		{15, []string{"five"}},
		{int64(len(content)), nil},
	} {
		at := tc.at
		p, err := openPart(path, sourceConfig{batch: 10}, &at)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := p.Snapshot(); got != at {
			t.Errorf("resumed at %d: Snapshot before reading = %d", at, got)
		}
		batches, _ := drain(t, p)
		var got []string
		for _, b := range batches {
			got = append(got, b...)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("resumed at %d (-want +got):\n%s", at, diff)
		}
	}
	for _, at := range []int64{int64(len(content)) + 1, -1} {
		_, err := openPart(path, sourceConfig{batch: 10}, &at)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("resume at %d: err = %v, want an error naming %s", at, err, path)
		}
		if at > 0 && !errors.Is(err, ErrPastEnd) {
			t.Errorf("resume at %d: err = %v, want ErrPastEnd", at, err)
		}
	}
}

// TestReadLineAllocs checks that a line costs one allocation, its string,
// whether it fits the read buffer or not.
func TestReadLineAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	long := strings.Repeat("y", 3*readBuffer)
	path := writeTemp(t, strings.Repeat("short line\n", 2000)+strings.Repeat(long+"\n", 20))
	p, err := openPart(path, sourceConfig{batch: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.batch = make([]string, 0, 1)
	if _, err := p.NextBatch(); err != nil { // warm up
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(1000, func() { p.NextBatch() }); a > 1 {
		t.Errorf("short lines: %v allocations per line, want 1", a)
	}
	for range 2000 - 1002 { // the rest of the short lines
		p.NextBatch()
	}
	p.NextBatch() // the first long line grows the scratch buffer
	if a := testing.AllocsPerRun(10, func() { p.NextBatch() }); a > 1 {
		t.Errorf("long lines: %v allocations per line, want 1", a)
	}
}

func TestSinkResumeTruncates(t *testing.T) {
	path := writeTemp(t, "a\nb\nuncommitted\npartial")
	at := int64(4)
	w, err := openWriter(path, &at)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.writeLine("c"); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Snapshot(); got != 6 || err != nil {
		t.Errorf("Snapshot = %d, want 6", got)
	}
	if err := w.writeLine("d"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "a\nb\nc\nd\n" {
		t.Errorf("file = %q, want %q", got, "a\nb\nc\nd\n")
	}

	at = 100
	if _, err := openWriter(path, &at); !errors.Is(err, ErrPastEnd) || !strings.Contains(err.Error(), path) {
		t.Errorf("resume past the end: err = %v, want ErrPastEnd naming %s", err, path)
	}
}

func TestSinkSnapshotFailsOnFailedFlush(t *testing.T) {
	path := writeTemp(t, "")
	w, err := openWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.writeLine("x"); err != nil { // creates the file
		t.Fatal(err) // buffered: no error yet
	}
	w.f.Close() // make the flush fail
	if _, err := w.Snapshot(); err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Snapshot = %v, want an error naming %s", err, path)
	}
	if err := w.writeLine("y"); err == nil {
		t.Error("write after a failed flush succeeded")
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Close = %v, want the flush error naming %s", err, path)
	}
}

// TestSinkCreatedLazily: without a recovered position the file is created
// (or truncated) by the first line or sync, so a run refused while it
// starts, which only builds and closes the sink, leaves an existing file as
// it was and creates none.
func TestSinkCreatedLazily(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.txt")
	w, err := openWriter(fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a sink built and closed without writing created its file: %v", err)
	}
	old := writeTemp(t, "earlier output\n")
	w, err = openWriter(old, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, _ := os.ReadFile(old); string(b) != "earlier output\n" {
		t.Errorf("a sink built and closed without writing truncated its file to %q", b)
	}
	// The first sync (an epoch's barrier) creates it, empty.
	w, err = openWriter(fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := w.Snapshot(); err != nil || pos != 0 {
		t.Fatalf("Snapshot = %d, %v", pos, err)
	}
	w.Close()
	if fi, err := os.Stat(fresh); err != nil || fi.Size() != 0 {
		t.Errorf("after the first barrier: %v, %v", fi, err)
	}
	// A missing directory is still an error when the run starts.
	missing := filepath.Join(dir, "nope", "out.txt")
	if _, err := openWriter(missing, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("sink in a missing directory: %v", err)
	}
}

// TestSinkWriteErrorNamesPathOnce: a failed write names the file once.
func TestSinkWriteErrorNamesPathOnce(t *testing.T) {
	const full = "/dev/full"
	if _, err := os.Stat(full); err != nil {
		t.Skip("no /dev/full")
	}
	w, err := openWriter(full, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.writeLine("x"); err != nil {
		t.Fatal(err)
	}
	_, err = w.Snapshot()
	if err == nil || strings.Count(err.Error(), full) != 1 || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Snapshot on a full device = %v, want the path once and the cause", err)
	}
}

// recordDirSyncs replaces syncDir for the test: it records each directory
// and then returns fail(dir) (nil: the real sync runs).
func recordDirSyncs(t *testing.T, fail func(string) error) *[]string {
	t.Helper()
	real := syncDir
	t.Cleanup(func() { syncDir = real })
	var dirs []string
	syncDir = func(dir string) error {
		dirs = append(dirs, dir)
		if fail != nil {
			if err := fail(dir); err != nil {
				return err
			}
		}
		return real(dir)
	}
	return &dirs
}

func TestSinkSyncsDirectoryAfterCreate(t *testing.T) {
	dirs := recordDirSyncs(t, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	w, err := openWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(*dirs) != 0 {
		t.Fatalf("directory synced before the file was created: %v", *dirs)
	}
	if err := w.writeLine("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := w.writeLine("b"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{dir}, *dirs); diff != "" {
		t.Errorf("directories synced (-want +got):\n%s", diff)
	}

	// A resumed writer opens with O_CREATE: it syncs the directory too.
	*dirs = nil
	off := int64(2)
	w, err = openWriter(path, &off)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if diff := cmp.Diff([]string{dir}, *dirs); diff != "" {
		t.Errorf("resume: directories synced (-want +got):\n%s", diff)
	}
}

func TestSinkDirectorySyncErrorNamesPath(t *testing.T) {
	injected := errors.New("injected sync failure")
	recordDirSyncs(t, func(string) error { return injected })
	path := filepath.Join(t.TempDir(), "out.txt")

	w, err := openWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = w.writeLine("a")
	if !errors.Is(err, injected) || !strings.Contains(err.Error(), path) {
		t.Fatalf("writeLine: got %v, want the injected error naming %s", err, path)
	}
	// The error sticks: the barrier must not report a position.
	if _, err := w.Snapshot(); !errors.Is(err, injected) {
		t.Errorf("Snapshot after a failed directory sync: %v", err)
	}
	if err := w.Close(); !errors.Is(err, injected) {
		t.Errorf("Close after a failed directory sync: %v", err)
	}

	// Same for the first barrier of a writer that wrote nothing yet, and
	// for a resumed writer.
	w, _ = openWriter(filepath.Join(t.TempDir(), "empty.txt"), nil)
	if _, err := w.Snapshot(); !errors.Is(err, injected) {
		t.Errorf("Snapshot of an unwritten file: %v", err)
	}
	off := int64(0)
	if _, err := openWriter(path, &off); !errors.Is(err, injected) || !strings.Contains(err.Error(), path) {
		t.Errorf("resume: got %v, want the injected error naming %s", err, path)
	}
}

func TestDirSinkSyncsEveryCreatedDirectory(t *testing.T) {
	dirs := recordDirSyncs(t, nil)
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := mkdirAllSynced(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{root, filepath.Join(root, "a")}
	if diff := cmp.Diff(want, *dirs); diff != "" {
		t.Errorf("directories synced (-want +got):\n%s", diff)
	}
	*dirs = nil
	if err := mkdirAllSynced(dir); err != nil || len(*dirs) != 0 {
		t.Errorf("existing directory: err %v, synced %v", err, *dirs)
	}
	file := filepath.Join(root, "f")
	os.WriteFile(file, nil, 0o644)
	if err := mkdirAllSynced(file); err == nil {
		t.Error("mkdirAllSynced of a regular file: nil error")
	}
}

func TestSyncDirReportsDirectory(t *testing.T) {
	if err := syncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := syncDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("syncDir(missing): got %v, want an error naming %s", err, missing)
	}
}
