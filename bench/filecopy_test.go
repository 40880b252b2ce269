package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
)

// fileCopyFiles is how many files the input directory holds.
const fileCopyFiles = 8

// fileCopyBytes is the input size of BenchmarkFileCopy: 64 MiB by default,
// RUNNEL_BENCH_FILECOPY_MIB MiB when set (1024 for the 1 GiB of the
// target).
func fileCopyBytes(tb testing.TB) int64 {
	mib := int64(64)
	if s := os.Getenv("RUNNEL_BENCH_FILECOPY_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			tb.Fatalf("RUNNEL_BENCH_FILECOPY_MIB=%q: want a positive number of MiB", s)
		}
		mib = n
	}
	return mib << 20
}

// fileDigest summarises a multiset of lines: their count, total size and
// the sum of their hashes, which does not depend on their order (files of
// a directory are read in parallel, so the copy's line order differs from
// the input's).
type fileDigest struct {
	lines, bytes int64
	sum          uint64
}

func (d *fileDigest) add(line []byte) {
	d.lines++
	d.bytes += int64(len(line)) + 1
	d.sum += xxhash.Sum64(line)
}

// writeLineFiles fills dir with files of random printable lines of 10 to
// 150 bytes, about total bytes in all, and returns their digest.
func writeLineFiles(tb testing.TB, dir string, total int64) fileDigest {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var d fileDigest
	line := make([]byte, 0, 160)
	for i := range fileCopyFiles {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("in-%d.txt", i)))
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for written := int64(0); written < total/fileCopyFiles; {
			line = line[:10+r.IntN(141)]
			for j := range line {
				line[j] = byte(' ' + r.IntN(95))
			}
			d.add(line)
			w.Write(line)
			w.WriteByte('\n')
			written += int64(len(line)) + 1
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		// Written back now, so that the first sub-benchmark does not pay
		// for the input's write-back.
		if err := f.Sync(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// digestFile reads the lines of a file into a digest.
func digestFile(tb testing.TB, path string) fileDigest {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var d fileDigest
	s := bufio.NewScanner(f)
	for s.Scan() {
		d.add(s.Bytes())
	}
	if err := s.Err(); err != nil {
		tb.Fatal(err)
	}
	return d
}

// handCopy is the baseline: every file in turn through a bufio.Scanner,
// each line written through one bufio.Writer, flushed and fsynced at the
// end (as the file sink does at its last barrier).
func handCopy(dir, out string) error {
	matches, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return err
	}
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(o, 64<<10)
	for _, m := range matches {
		f, err := os.Open(m)
		if err != nil {
			return err
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			w.Write(s.Bytes())
			w.WriteByte('\n')
		}
		f.Close()
		if err := s.Err(); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := o.Sync(); err != nil {
		return err
	}
	return o.Close()
}

// runnelCopy copies with a flow: NewDirSource → NewSink.
func runnelCopy(dir, out string, cfg runnel.Config) error {
	flow := runnel.NewDataflow("copy")
	lines := op.Input("inp", flow, file.NewDirSource(dir, "*.txt"))
	op.Output("out", lines, file.NewSink(out))
	return runnel.Run(context.Background(), flow, cfg)
}

// BenchmarkFileCopy copies a directory of 8 files of lines (64 MiB, or
// RUNNEL_BENCH_FILECOPY_MIB) into one file, line by line: hand (Scanner and
// Writer), and Runnel (NewDirSource → NewSink) on 1 and 2 workers and on 1
// worker with recovery at 1s epochs (the sink flushes and fsyncs at every
// epoch). Metrics: MB/s (of input) and, for the flows, x-hand, their
// throughput over hand's in the same run (target w1: ≥ 0.50). Every copy is
// checked line for line (as a multiset) against the input.
func BenchmarkFileCopy(b *testing.B) {
	// The top level runs once; its directory outlives the sub-benchmarks.
	in := struct {
		dir    string
		digest fileDigest
	}{dir: b.TempDir()}
	in.digest = writeLineFiles(b, in.dir, fileCopyBytes(b))

	var handRate float64
	for _, tc := range []struct {
		name string
		copy func(out string) error
	}{
		{"hand", func(out string) error { return handCopy(in.dir, out) }},
		{"w1", func(out string) error {
			cfg := runnel.DefaultConfig()
			cfg.SnapshotInterval = time.Hour
			return runnelCopy(in.dir, out, cfg)
		}},
		{"w2", func(out string) error {
			cfg := runnel.DefaultConfig()
			cfg.WorkersPerProcess = 2
			cfg.SnapshotInterval = time.Hour
			return runnelCopy(in.dir, out, cfg)
		}},
		{"w1-recovery-1s", func(out string) error {
			return runnelCopy(in.dir, out, recoveryConfig(initRecovery(b), time.Second))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(in.digest.bytes)
			var spent time.Duration
			for range b.N {
				out := filepath.Join(b.TempDir(), "out.txt")
				start := time.Now()
				if err := tc.copy(out); err != nil {
					b.Fatal(err)
				}
				spent += time.Since(start)
				b.StopTimer()
				if got := digestFile(b, out); got != in.digest {
					b.Fatalf("copy has %d lines, %d bytes, sum %x; input %d lines, %d bytes, sum %x",
						got.lines, got.bytes, got.sum, in.digest.lines, in.digest.bytes, in.digest.sum)
				}
				os.Remove(out)
				b.StartTimer()
			}
			rate := float64(in.digest.bytes) * float64(b.N) / spent.Seconds()
			if tc.name == "hand" {
				handRate = rate
			} else if handRate > 0 {
				b.ReportMetric(rate/handRate, "x-hand")
			}
		})
	}
}

// TestFileCopyAgrees checks, on 1 MiB, that the flow and the baseline copy
// the same lines.
func TestFileCopyAgrees(t *testing.T) {
	dir := t.TempDir()
	want := writeLineFiles(t, dir, 1<<20)
	for name, copy := range map[string]func(string) error{
		"hand": func(out string) error { return handCopy(dir, out) },
		"w2": func(out string) error {
			cfg := runnel.DefaultConfig()
			cfg.WorkersPerProcess = 2
			cfg.SnapshotInterval = time.Hour
			return runnelCopy(dir, out, cfg)
		},
	} {
		out := filepath.Join(t.TempDir(), "out.txt")
		if err := copy(out); err != nil {
			t.Fatal(err)
		}
		if got := digestFile(t, out); got != want {
			t.Errorf("%s: copy %+v, input %+v", name, got, want)
		}
	}
}
