package file_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/internal/recoverytest"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// crashResume reads newSrc() into a three-part NewDirSink through a step
// that formats each item, with recovery, on w1 workers. The step goes
// slowly (2 ms an item) until two epochs are committed, then fails at the
// next item, so the crash falls after a commit; the input is long enough
// (seconds at that pace) that it cannot end first. (The step never waits
// for the commit: a blocked worker would hold back the barriers its sink
// partition must align, and nothing would commit.) Epochs are short in
// the first run (8 items) and long in the second, which only has to
// finish. A second run on w2 workers (a rescale) resumes. Source and sink
// are both exactly-once, so the lines in the output files, sorted, must
// equal want, sorted: no item lost, none read or written twice.
func crashResume[T any](t *testing.T, newSrc func() runnel.Source[T], format func(T) string, want []string, w1, w2 int) {
	t.Helper()
	out := t.TempDir()
	db := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(db, 2); err != nil {
		t.Fatal(err)
	}
	crashed := new(atomic.Bool)
	run := func(workers int, itemsPerEpoch int64) error {
		clock := runneltest.NewClock(time.Unix(1_700_000_000, 0))
		committed := recoverytest.WatchCommitted(db, minCommitted)
		defer committed.Stop()
		var n atomic.Int64
		flow := runnel.NewDataflow("resume")
		items := op.Input("inp", flow, newSrc())
		lines := op.TryMap("format", items, func(x T) (string, error) {
			if !crashed.Load() {
				if committed.Done() {
					if crashed.CompareAndSwap(false, true) {
						return "", errCrash
					}
				} else {
					time.Sleep(2 * time.Millisecond)
				}
			}
			if n.Add(1)%itemsPerEpoch == 0 {
				clock.Advance(epoch)
			}
			return format(x), nil
		})
		op.Output("out", lines, file.NewDirSink(out, 3, nil))
		return runnel.Run(context.Background(), flow, runneltest.Config(workers, epoch, db), runnel.WithClock(clock))
	}
	if err := run(w1, linesPerEp); !errors.Is(err, errCrash) {
		t.Fatalf("first run on %d workers: err = %v, want the simulated crash after epoch %d was committed", w1, err, minCommitted-1)
	}
	rep, err := recovery.Inspect(db)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ResumeEpoch < minCommitted {
		t.Fatalf("resume epoch %d, want at least %d", rep.ResumeEpoch, minCommitted)
	}
	if err := run(w2, 500); err != nil {
		t.Fatalf("resumed run on %d workers: %v", w2, err)
	}
	var got []string
	for i := range 3 {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("part-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	got = slices.DeleteFunc(got, func(s string) bool { return s == "" })
	want = slices.Clone(want)
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%d→%d workers: output after crash and resume (-want +got):\n%s", w1, w2, diff)
	}
}

var rescales = []struct{ from, to int }{{1, 1}, {2, 3}, {3, 1}}

func TestDirSourceCrashResumeRescale(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for _, name := range []string{"a.log", "b.log", "c.log", "d.log"} {
		var b strings.Builder
		for i := range 1000 {
			line := fmt.Sprintf("%s:%03d", name, i)
			b.WriteString(line + "\n")
			want = append(want, line)
		}
		writeFile(t, filepath.Join(dir, name), b.String())
	}
	for _, rs := range rescales {
		t.Run(fmt.Sprintf("w%d-w%d", rs.from, rs.to), func(t *testing.T) {
			crashResume(t, func() runnel.Source[string] { return file.NewDirSource(dir, "*.log", file.BatchSize(8)) },
				func(s string) string { return s }, want, rs.from, rs.to)
		})
	}
}

type score struct {
	ID    int     `csv:"id"`
	Name  string  `csv:"name"`
	Score float64 `csv:"score"`
}

func TestCSVDirSourceCrashResumeRescale(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for _, name := range []string{"a.csv", "b.csv", "c.csv"} {
		var b strings.Builder
		b.WriteString("id,score,name\n")
		for i := range 1000 {
			fmt.Fprintf(&b, "%d,%d.5,\"%s, row %d\"\n", i, i, name, i)
			want = append(want, fmt.Sprintf("%d|%s, row %d|%g", i, name, i, float64(i)+0.5))
		}
		writeFile(t, filepath.Join(dir, name), b.String())
	}
	for _, rs := range rescales {
		t.Run(fmt.Sprintf("w%d-w%d", rs.from, rs.to), func(t *testing.T) {
			crashResume(t, func() runnel.Source[score] { return file.NewCSVDirSource[score](dir, "*.csv", file.BatchSize(8)) },
				func(s score) string { return fmt.Sprintf("%d|%s|%g", s.ID, s.Name, s.Score) },
				want, rs.from, rs.to)
		})
	}
}
