package runnel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// fileSink is a partitioned sink of lines, one file per partition, whose
// position is the file's length: resuming truncates what was written after
// the last committed epoch, which makes its output exactly-once.
type fileSink struct {
	dir   string
	parts int
}

func (s fileSink) ListParts(context.Context) ([]string, error) {
	names := make([]string, s.parts)
	for i := range names {
		names[i] = fmt.Sprintf("out-%d.txt", i)
	}
	return names, nil
}

func (s fileSink) PartFor(line string) int {
	k, _, _ := strings.Cut(line, " ")
	var n int
	fmt.Sscan(k, &n)
	return n
}

func (s fileSink) BuildPart(_ runnel.BuildContext, part string, resume *int64) (runnel.StatefulSinkPartition[string, int64], error) {
	path := filepath.Join(s.dir, part)
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resume != nil {
		flags = os.O_CREATE | os.O_WRONLY
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	var at int64
	if resume != nil {
		at = *resume
		if err := f.Truncate(at); err != nil {
			return nil, err
		}
	}
	if _, err := f.Seek(at, 0); err != nil {
		return nil, err
	}
	return &filePart{f: f, w: bufio.NewWriter(f), at: at}, nil
}

type filePart struct {
	f  *os.File
	w  *bufio.Writer
	at int64
}

func (p *filePart) WriteBatch(lines []string) error {
	for _, l := range lines {
		n, err := p.w.WriteString(l + "\n")
		p.at += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *filePart) Snapshot() (int64, error) {
	return p.at, p.w.Flush()
}

func (p *filePart) Close() error {
	if err := p.w.Flush(); err != nil {
		return err
	}
	return p.f.Close()
}

func linesFlow(n, keys int, sink fileSink, opts ...runneltest.SourceOpt) *runnel.Dataflow {
	flow := runnel.NewDataflow("lines")
	s := op.Input("inp", flow, runneltest.NewSource(seq(n), opts...))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(c int, _ bool, _ int) (int, bool, int) { return c + 1, true, c + 1 })
	l := op.Map("fmt", c, func(kv runnel.KV[int, int]) string { return fmt.Sprintf("%d %d", kv.Key, kv.Value) })
	op.Output("out", l, runnel.PartitionedOutput[string, int64](sink))
	return flow
}

// readParts reads each partition's lines grouped by key, in file order:
// the order between keys depends on the worker count, the order within a
// key does not.
func readParts(t *testing.T, dir string, parts int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i := range parts {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if line == "" {
				continue
			}
			k, _, _ := strings.Cut(line, " ")
			out[fmt.Sprintf("part %d key %s", i, k)] = append(out[fmt.Sprintf("part %d key %s", i, k)], line)
		}
	}
	return out
}

// TestPartitionedSinkExactlyOnce crashes a flow writing to a partitioned
// sink whose position is recovered: after the resume, every partition's
// file equals an uninterrupted run's, with no duplicate and no gap.
func TestPartitionedSinkExactlyOnce(t *testing.T) {
	const n, keys, parts = 400, 6, 3
	clean := t.TempDir()
	if err := runneltest.Run(linesFlow(n, keys, fileSink{clean, parts}), 2); err != nil {
		t.Fatal(err)
	}
	want := readParts(t, clean, parts)

	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("w", workers), func(t *testing.T) {
			out := t.TempDir()
			dir := initDir(t, 2)
			cfg := runneltest.Config(workers, 3*time.Millisecond, dir)
			flow := linesFlow(n, keys, fileSink{out, parts}, runneltest.BatchSize(4), runneltest.Pace(time.Millisecond), runneltest.FailAt(n*2/3))
			if err := run(t, flow, cfg); !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("first run: %v", err)
			}
			if err := run(t, linesFlow(n, keys, fileSink{out, parts}, runneltest.BatchSize(4)), cfg); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if diff := cmp.Diff(want, readParts(t, out, parts)); diff != "" {
				t.Errorf("output files (-uninterrupted +crashed and resumed):\n%s", diff)
			}
		})
	}
}

type failingSnapshot struct{ filePart }

func (f *failingSnapshot) Snapshot() (int64, error) { return 0, errDisk }

var errDisk = errors.New("disk on fire")

type failingSink struct{ fileSink }

func (s failingSink) BuildPart(bc runnel.BuildContext, part string, resume *int64) (runnel.StatefulSinkPartition[string, int64], error) {
	p, err := s.fileSink.BuildPart(bc, part, resume)
	if err != nil {
		return nil, err
	}
	return &failingSnapshot{*p.(*filePart)}, nil
}

// TestSinkSnapshotError: a sink that cannot make its output durable stops
// the run at the barrier, naming the output step and partition, with the
// cause reachable through errors.Is.
func TestSinkSnapshotError(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Map("fmt", op.Input("inp", flow, runneltest.NewSource(seq(5))), func(x int) string { return fmt.Sprint(x, " x") })
	op.Output("out", s, runnel.PartitionedOutput[string, int64](failingSink{fileSink{t.TempDir(), 1}}))
	err := run(t, flow, runneltest.Config(1, time.Hour, initDir(t, 1)))
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "step f.out") || !strings.Contains(err.Error(), "out-0.txt") {
		t.Errorf("err = %v, want the disk error at step f.out, partition out-0.txt", err)
	}
}
