package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
)

const (
	joinItems = 1_000_000
	joinKeys  = 100_000
)

// handJoin is the baseline: a map join that keeps the last value of each
// side per key and emits one row per key at the end (op.Join with
// JoinInsertLast and JoinEmitFinal). It returns the sum of both sides over
// the rows, as the flow's sink does.
func handJoin(n int) int64 {
	type pair struct{ a, b int }
	m := make(map[int]*pair)
	for i := range n { // left
		p := m[i%joinKeys]
		if p == nil {
			p = &pair{}
			m[i%joinKeys] = p
		}
		p.a = i
	}
	for i := range n { // right
		p := m[i%joinKeys]
		if p == nil {
			p = &pair{}
			m[i%joinKeys] = p
		}
		p.b = 2 * i
	}
	var rows int64
	for _, p := range m {
		if p.b >= p.a {
			rows++
		}
	}
	return rows
}

type joinRow = runnel.KV[int, op.Joined2[int, int]]

type joinSink struct{ total *atomic.Int64 }

func (s joinSink) Build(runnel.BuildContext) (runnel.SinkPartition[joinRow], error) {
	return &joinPart{total: s.total}, nil
}

type joinPart struct {
	total *atomic.Int64
	sum   int64
}

func (p *joinPart) WriteBatch(rows []joinRow) error {
	for _, r := range rows {
		if r.Value.A.OK && r.Value.B.OK {
			p.sum++
		}
	}
	return nil
}

func (p *joinPart) Close() error { p.total.Add(p.sum); return nil }

func joinFlow(n, workers int, total *atomic.Int64) *runnel.Dataflow {
	flow := runnel.NewDataflow("join")
	key := func(i int) int { return i % joinKeys }
	left := op.KeyOn("lkey", op.Input("left", flow, runnel.PartitionedInput[int, int](genSource{n: n, parts: workers})), key)
	right := op.KeyOn("rkey", op.Map("double", op.Input("right", flow, runnel.PartitionedInput[int, int](genSource{n: n, parts: workers})),
		func(i int) int { return i }), key)
	right = op.MapValue("times2", right, func(i int) int { return 2 * i })
	j := op.Join("join", left, right, op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal})
	op.Output("out", j, runnel.DynamicOutput[joinRow](joinSink{total}))
	return flow
}

// BenchmarkJoin joins two 1M-item streams on 100k keys (keep the last value
// per side, emit at the end) against a hand-written map join. Sub-benchmarks:
// hand, w1, w2. Each reports items/s over both inputs.
func BenchmarkJoin(b *testing.B) {
	want := handJoin(joinItems)
	run := func(b *testing.B, f func() int64) {
		for b.Loop() {
			if got := f(); got != want {
				b.Fatalf("%d complete rows, want %d", got, want)
			}
		}
		b.ReportMetric(2*float64(joinItems)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
	}
	b.Run("hand", func(b *testing.B) { run(b, func() int64 { return handJoin(joinItems) }) })
	for _, w := range []int{1, 2} {
		b.Run("w"+string(rune('0'+w)), func(b *testing.B) {
			run(b, func() int64 {
				var total atomic.Int64
				cfg := runnel.DefaultConfig()
				cfg.WorkersPerProcess = w
				cfg.SnapshotInterval = time.Hour
				if err := runnel.Run(context.Background(), joinFlow(joinItems, w, &total), cfg); err != nil {
					b.Fatal(err)
				}
				return total.Load()
			})
		})
	}
}

// BenchmarkJoinRecovery is BenchmarkJoin's w1 flow with recovery on and a
// snapshot interval longer than the run (-s 30): every one of the 100k keys
// changes in the one epoch, so the final snapshot writes the whole join
// state (both sides of every key) and the run waits for its commit. Each
// iteration also runs the flow with recovery off, outside the measured
// time, before or after it (alternating); x-off is off's time over
// recovery's, cpu-x-off the same in CPU time.
func BenchmarkJoinRecovery(b *testing.B) {
	want := handJoin(joinItems)
	one := func(b *testing.B, recover bool) (time.Duration, time.Duration) {
		cfg := runnel.DefaultConfig()
		cfg.SnapshotInterval = time.Hour
		if recover {
			cfg = recoveryConfig(initRecovery(b), 30*time.Second)
		}
		var total atomic.Int64
		start, cpu0 := time.Now(), cpuTime()
		if err := runnel.Run(context.Background(), joinFlow(joinItems, 1, &total), cfg); err != nil {
			b.Fatal(err)
		}
		spent, cpu := time.Since(start), cpuTime()-cpu0
		if got := total.Load(); got != want {
			b.Fatalf("%d complete rows, want %d", got, want)
		}
		return spent, cpu
	}
	var on, off, onCPU, offCPU time.Duration
	i := 0
	for b.Loop() {
		offFirst := i%2 == 0
		i++
		if offFirst {
			b.StopTimer()
			t, c := one(b, false)
			off, offCPU = off+t, offCPU+c
			b.StartTimer()
		}
		t, c := one(b, true)
		on, onCPU = on+t, onCPU+c
		if !offFirst {
			b.StopTimer()
			t, c := one(b, false)
			off, offCPU = off+t, offCPU+c
			b.StartTimer()
		}
	}
	b.ReportMetric(2*float64(joinItems)*float64(b.N)/on.Seconds(), "items/s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "x-off")
	if onCPU > 0 && offCPU > 0 {
		b.ReportMetric(offCPU.Seconds()/onCPU.Seconds(), "cpu-x-off")
	}
}

// TestJoinAgrees checks the flow against the hand join on a small input.
func TestJoinAgrees(t *testing.T) {
	const n = 3 * joinKeys / 100
	for _, w := range []int{1, 2} {
		var total atomic.Int64
		cfg := runnel.DefaultConfig()
		cfg.WorkersPerProcess = w
		if err := runnel.Run(context.Background(), joinFlow(n, w, &total), cfg); err != nil {
			t.Fatal(err)
		}
		if want := handJoin(n); total.Load() != want {
			t.Fatalf("%d workers: %d complete rows, want %d", w, total.Load(), want)
		}
	}
}
