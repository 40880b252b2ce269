package recovery

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/runnel-dev/runnel/internal/codec"
)

// Run without -race: go test -run XXX -bench . -benchtime 3x ./recovery/
// Targets (not asserted): WriteEpoch ≤ ~6µs per key including encoding a
// small int state; Load of 1M keys in under ~2s.

func benchRows(b *testing.B, n int, epoch uint64) []Row {
	rows := make([]Row, n)
	for i := range rows {
		v, err := codec.Marshal(int(epoch)*1000 + i)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = Row{Step: "flow.running_count", Key: "user-" + strconv.Itoa(i), Value: v}
	}
	return rows
}

func BenchmarkWriteEpoch(b *testing.B) {
	const keys = 100_000
	for _, parts := range []int{1, 4} {
		b.Run(fmt.Sprintf("keys=%d/partitions=%d", keys, parts), func(b *testing.B) {
			s := mustOpen(b, mustInit(b, parts))
			if _, err := s.Begin("bench", 1, MakePlan(nil, map[string]StepState{"flow.running_count": {Type: "int"}}, nil)); err != nil {
				b.Fatal(err)
			}
			epoch := uint64(0)
			for b.Loop() {
				epoch++
				rows := benchRows(b, keys, epoch) // encoding is part of the measured cost
				if err := s.WriteEpoch(epoch, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	const keys = 1_000_000
	for _, parts := range []int{1, 4} {
		b.Run(fmt.Sprintf("keys=%d/partitions=%d", keys, parts), func(b *testing.B) {
			s := mustOpen(b, mustInit(b, parts))
			if _, err := s.Begin("bench", 1, MakePlan(nil, map[string]StepState{"flow.running_count": {Type: "int"}}, nil)); err != nil {
				b.Fatal(err)
			}
			const chunk = 200_000
			for start := 0; start < keys; start += chunk {
				rows := benchRows(b, chunk, 1)
				for i := range rows {
					rows[i].Key = "user-" + strconv.Itoa(start+i)
				}
				if err := s.WriteEpoch(1, rows); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				n, sum := 0, 0
				err := s.Load(2, func(step, key string, value []byte) error {
					var v int
					if err := codec.Unmarshal(value, &v); err != nil {
						return err
					}
					n++
					sum += v
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if n != keys {
					b.Fatalf("loaded %d keys, want %d", n, keys)
				}
			}
			b.ReportMetric(float64(b.N*keys)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkEpochSteady is the steady state of a run at a short snapshot
// interval: 10k keys that all change in every epoch, 100 epochs per
// iteration, each written (WriteEpoch), committed (Commit, -b 0) and
// followed by what the committer does when idle (Compact), so that the
// cost of compaction is included. Reports ns per changed key, everything
// included (wall time, mostly waiting for fsync: 2 per epoch), cpu-ns/key,
// the CPU time this process spent per changed key (what a run's throughput
// pays; the fsync waits are the committer's, not the workers'), and the
// rows a resume would read per live key at the end.
func BenchmarkEpochSteady(b *testing.B) {
	const keys, epochs = 10_000, 100
	s := mustOpen(b, mustInit(b, 1))
	r, err := s.Begin("bench", 1, MakePlan(nil, map[string]StepState{"flow.running_count": {Type: "int"}}, nil))
	if err != nil {
		b.Fatal(err)
	}
	epoch := r.Epoch
	rows := benchRows(b, keys, 1)
	cpu0 := cpuTime()
	for b.Loop() {
		for range epochs {
			if err := s.WriteEpoch(epoch, rows); err != nil {
				b.Fatal(err)
			}
			epoch++
			if err := s.Commit(r.Execution, []int{0}, epoch, 0); err != nil {
				b.Fatal(err)
			}
			if err := s.Compact(2); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*epochs*keys), "ns/key")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*epochs*keys), "cpu-ns/key")
	}
	n, err := logEntries(s.parts[0].db)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/keys, "log-rows/key")
}

// BenchmarkLogMerge is compaction's reading in memory: 8 epochs in which
// the same 10k keys changed, indexed and merged to each key's newest
// entry (the text compaction copies). Reports ns per entry read.
func BenchmarkLogMerge(b *testing.B) {
	const keys, epochs = 10_000, 8
	rows := benchRows(b, keys, 1)
	idx := make([]int32, len(rows))
	for i := range idx {
		idx[i] = int32(i)
	}
	var sorter rowSorter
	idx = sorter.sortRows(rows, idx)
	var batches []logBatch
	seq := int64(0)
	for e := range int64(epochs) {
		for start := 0; start < len(idx); start += batchEntries {
			end := min(start+batchEntries, len(idx))
			seq++
			text := string(appendBatch(nil, rows, idx[start:end]))
			batches = append(batches, logBatch{seq: seq, epoch: e, step: rows[0].Step, n: int64(end - start), text: text})
		}
	}
	var n int
	cpu0 := cpuTime()
	for b.Loop() {
		x, err := indexBatches(slices.Clone(batches), keys*epochs, nil)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		if err := x.newest(func(i int32) error {
			n += len(x.text(i))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys*epochs), "ns/entry")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*keys*epochs), "cpu-ns/entry")
	}
}
