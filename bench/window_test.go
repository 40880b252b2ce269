package bench

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

const (
	winEvents = 10_000_000
	winKeys   = 10_000
)

// winEvent is a generated event: its key and its event time in ms.
type winEvent struct {
	Key int64
	Ms  int64
}

// winGenSource generates winEvents events, event i at i ms with key i mod
// winKeys, in 1024-item batches that reuse one buffer. With several
// partitions, partition p generates the events i with i mod parts = p, so
// each worker reads its share in event-time order.
type winGenSource struct{ n, parts int }

func (g winGenSource) ListParts(context.Context) ([]string, error) {
	names := make([]string, g.parts)
	for i := range names {
		names[i] = fmt.Sprint("gen-", i)
	}
	return names, nil
}

func (g winGenSource) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[winEvent, int], error) {
	var idx int
	fmt.Sscanf(part, "gen-%d", &idx)
	p := &winGenPart{n: g.n, step: g.parts, next: idx, buf: make([]winEvent, 1024)}
	if resume != nil {
		p.next = *resume
	}
	return p, nil
}

type winGenPart struct {
	n, next, step int
	buf           []winEvent
}

func (p *winGenPart) NextBatch() ([]winEvent, error) {
	if p.next >= p.n {
		return nil, io.EOF
	}
	b := p.buf[:0]
	for p.next < p.n && len(b) < cap(b) {
		j := int64(p.next)
		b = append(b, winEvent{Key: j % winKeys, Ms: j})
		p.next += p.step
	}
	return b, nil
}

func (p *winGenPart) NextAwake() time.Time   { return time.Time{} }
func (p *winGenPart) Snapshot() (int, error) { return p.next, nil }
func (p *winGenPart) Close() error           { return nil }

// winCountSink counts what reaches it.
type winCountSink[T any] struct{ n *atomic.Int64 }

func (s winCountSink[T]) Build(runnel.BuildContext) (runnel.SinkPartition[T], error) { return s, nil }
func (s winCountSink[T]) WriteBatch(items []T) error                                 { s.n.Add(int64(len(items))); return nil }
func (s winCountSink[T]) Close() error                                               { return nil }

// winHandCount is the hand-written baseline: the same tumbling 1s counts per
// key, closing a key's window when its next event falls in a later one.
func winHandCount(n int) int64 {
	type state struct{ win, count int64 }
	m := make(map[int64]*state, winKeys)
	out := make([][3]int64, 0, 1024)
	var emitted int64
	for i := range n {
		e := winEvent{Key: int64(i) % winKeys, Ms: int64(i)}
		win := e.Ms / 1000
		st := m[e.Key]
		if st == nil {
			st = &state{win: win}
			m[e.Key] = st
		}
		if st.win != win {
			out = append(out, [3]int64{e.Key, st.win, st.count})
			if len(out) == cap(out) {
				emitted += int64(len(out))
				out = out[:0]
			}
			st.win, st.count = win, 0
		}
		st.count++
	}
	for k, st := range m {
		out = append(out, [3]int64{k, st.win, st.count})
	}
	return emitted + int64(len(out))
}

func BenchmarkCountWindow(b *testing.B) {
	report := func(b *testing.B) {
		b.ReportMetric(float64(winEvents)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
	}
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			if got := winHandCount(winEvents); got != winEvents {
				b.Fatalf("%d windows, want %d", got, winEvents)
			}
		}
		report(b)
	})
	for _, w := range []struct {
		name    string
		workers int
	}{{"w1", 1}, {"w2", 2}} {
		b.Run(w.name, func(b *testing.B) {
			for b.Loop() {
				var n atomic.Int64
				flow := runnel.NewDataflow("bench")
				s := op.Input("gen", flow, runnel.PartitionedInput[winEvent, int](winGenSource{winEvents, w.workers}))
				clock := window.EventClock(func(e winEvent) time.Time { return time.UnixMilli(e.Ms) }, 0)
				out := window.CountWindow("count", s, clock, window.Tumbling(time.Second, time.Unix(0, 0)),
					func(e winEvent) int64 { return e.Key })
				op.Output("out", out.Down, runnel.DynamicOutput[runnel.KV[int64, window.Result[int]]](winCountSink[runnel.KV[int64, window.Result[int]]]{&n}))
				if err := runnel.Run(context.Background(), flow, runneltest.Config(w.workers, 10*time.Second, "")); err != nil {
					b.Fatal(err)
				}
				if n.Load() != winEvents {
					b.Fatalf("%d windows, want %d", n.Load(), winEvents)
				}
			}
			report(b)
		})
	}
}
