package runnel_test

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
)

// record is a large item, so that buffering many of them shows in the heap.
type record struct {
	ID  int
	Pad [120]byte
}

// recordGen is a one-partition source of n records, read by worker 0.
type recordGen struct{ n int }

func (g recordGen) Build(bc runnel.BuildContext) (runnel.SourcePartition[record], error) {
	if bc.Worker != 0 {
		return &genRecords{}, nil
	}
	return &genRecords{left: g.n, buf: make([]record, 1024)}, nil
}

type genRecords struct {
	next, left int
	buf        []record
}

func (g *genRecords) NextBatch() ([]record, error) {
	if g.left == 0 {
		return nil, io.EOF
	}
	n := min(g.left, len(g.buf))
	for i := range n {
		g.buf[i].ID = g.next + i
	}
	g.next += n
	g.left -= n
	return g.buf[:n], nil
}
func (g *genRecords) NextAwake() time.Time { return time.Time{} }
func (g *genRecords) Close() error         { return nil }

// slowSink is slow on worker 1 only, so worker 0 (which reads all input)
// would flood worker 1 if nothing held it back.
type slowSink struct {
	mu    sync.Mutex
	count int
}

func (s *slowSink) Build(bc runnel.BuildContext) (runnel.SinkPartition[record], error) {
	return &slowPart{s: s, slow: bc.Worker == 1}, nil
}

type slowPart struct {
	s    *slowSink
	slow bool
	n    int
}

func (p *slowPart) WriteBatch(items []record) error {
	if p.slow {
		time.Sleep(200 * time.Microsecond)
	}
	p.n += len(items)
	return nil
}

func (p *slowPart) Close() error {
	p.s.mu.Lock()
	p.s.count += p.n
	p.s.mu.Unlock()
	return nil
}

// TestSlowSinkBoundsMemory runs 1.5M 128-byte items (about 190 MB) from one
// worker to a slow sink on another: the heap must stay far below the input
// size, because the reading worker stops while too much is in flight.
func TestSlowSinkBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 190 MB of items")
	}
	const n = 1_500_000
	flow := runnel.NewDataflow("mem")
	s := op.Input("gen", flow, runnel.DynamicInput[record](recordGen{n}))
	s = op.Redistribute("spread", s)
	sink := &slowSink{}
	op.Output("slow", s, runnel.DynamicOutput[record](sink))

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	})
	cfg := runnel.DefaultConfig()
	cfg.WorkersPerProcess = 2
	err := runnel.Run(context.Background(), flow, cfg)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sink.count != n {
		t.Fatalf("sink saw %d items, want %d", sink.count, n)
	}
	grew := int64(peak) - int64(base.HeapAlloc)
	const limit = 40 << 20
	t.Logf("peak heap growth %d MB for %d MB of items", grew>>20, n*128>>20)
	if grew > limit {
		t.Errorf("heap grew by %d MB, want under %d MB: in-flight items are not bounded", grew>>20, limit>>20)
	}
}
