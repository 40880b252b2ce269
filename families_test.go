package runnel_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testflow"
	"github.com/runnel-dev/runnel/op"
)

// This file holds, for the flow of internal/testflow that has one step of
// every stateful operator family (running state, end-of-input hooks,
// *Final, Collect, joins, windows), a source that can crash or stop the run at an input index, and a sink whose
// output is exactly-once across crashes. Together they let tests compare
// the whole output stream of interrupted and resumed runs with an
// uninterrupted run: a duplicate, a missing item or a result emitted early
// (a "final" at a stop) all show.

// rec is one output item of the families flow.
type rec = testflow.Rec

// ctlSource reads the integers [0, n) from parts partitions (item i in
// partition i mod parts); a partition's position is the index of its next
// item. At input index cut (if >= 0) it either fails with errCut (crash)
// or, with a stop function, calls it once and then returns nothing more
// (the run must end by the stop, not by the end of input).
type ctlSource struct {
	n, parts, batch int
	pace            time.Duration
	cut             int
	stop            func()
	stopped         atomic.Bool
}

var errCut = fmt.Errorf("ctlSource: simulated crash")

func (s *ctlSource) ListParts(context.Context) ([]string, error) {
	names := make([]string, s.parts)
	for i := range names {
		names[i] = fmt.Sprint("p", i)
	}
	return names, nil
}

func (s *ctlSource) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSourcePartition[int, int], error) {
	var idx int
	if _, err := fmt.Sscanf(part, "p%d", &idx); err != nil {
		return nil, err
	}
	p := &ctlPart{src: s, idx: idx}
	if resume != nil {
		p.next = *resume
	}
	return p, nil
}

type ctlPart struct {
	src   *ctlSource
	idx   int
	next  int // position within the partition
	awake time.Time
}

func (p *ctlPart) item(j int) int { return j*p.src.parts + p.idx }

func (p *ctlPart) NextBatch() ([]int, error) {
	s := p.src
	var out []int
	for len(out) < s.batch {
		x := p.item(p.next)
		if x >= s.n {
			if len(out) == 0 {
				return nil, io.EOF
			}
			break
		}
		if s.cut >= 0 && x >= s.cut {
			if s.stop == nil {
				if len(out) == 0 {
					return nil, errCut
				}
				break // the crash comes with the next call
			}
			if s.stopped.CompareAndSwap(false, true) {
				s.stop()
			}
			p.awake = time.Now().Add(time.Millisecond)
			return out, nil
		}
		out = append(out, x)
		p.next++
	}
	if s.pace > 0 {
		p.awake = time.Now().Add(s.pace)
	}
	return out, nil
}

func (p *ctlPart) NextAwake() time.Time   { return p.awake }
func (p *ctlPart) Snapshot() (int, error) { return p.next, nil }
func (p *ctlPart) Close() error           { return nil }

// memSink is a partitioned sink kept in memory across runs: a partition's
// position is the number of items it holds, and resuming truncates what
// was written after the last committed epoch, so its contents are
// exactly-once even across crashes.
type memSink struct {
	mu    sync.Mutex
	parts [][]rec
	snap  []int // per partition: its length at its last Snapshot
}

func newMemSink(parts int) *memSink {
	return &memSink{parts: make([][]rec, parts), snap: make([]int, parts)}
}

// Unsnapshotted lists the items written after the last barrier's
// snapshot: what a run emitted past its last epoch.
func (s *memSink) Unsnapshotted() []rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rec
	for i, p := range s.parts {
		out = append(out, p[s.snap[i]:]...)
	}
	return out
}

func (s *memSink) ListParts(context.Context) ([]string, error) {
	names := make([]string, len(s.parts))
	for i := range names {
		names[i] = fmt.Sprint("out", i)
	}
	return names, nil
}

func (s *memSink) PartFor(r rec) int { return r.Key }

func (s *memSink) BuildPart(_ runnel.BuildContext, part string, resume *int) (runnel.StatefulSinkPartition[rec, int], error) {
	var idx int
	if _, err := fmt.Sscanf(part, "out%d", &idx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at := 0
	if resume != nil {
		at = *resume
	}
	if at > len(s.parts[idx]) {
		return nil, fmt.Errorf("resume position %d is past the %d items of %s", at, len(s.parts[idx]), part)
	}
	s.parts[idx] = s.parts[idx][:at:at]
	s.snap[idx] = at
	return &memPart{s: s, idx: idx}, nil
}

// Items is everything the sink holds, partition by partition.
func (s *memSink) Items() []rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rec
	for _, p := range s.parts {
		out = append(out, p...)
	}
	return out
}

type memPart struct {
	s   *memSink
	idx int
}

func (p *memPart) WriteBatch(items []rec) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.parts[p.idx] = append(p.s.parts[p.idx], items...)
	return nil
}

func (p *memPart) Snapshot() (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.snap[p.idx] = len(p.s.parts[p.idx])
	return p.s.snap[p.idx], nil
}

func (p *memPart) Close() error { return nil }

// byStepKey groups output items by step and key, keeping their order: the
// part of the output that is the same whatever the worker count, batch
// sizes and interruptions.
func byStepKey(items []rec) map[string][]string {
	m := map[string][]string{}
	for _, r := range items {
		k := fmt.Sprintf("%s/%d", r.Step, r.Key)
		m[k] = append(m[k], r.Val)
	}
	return m
}

// finalsIn lists the items of end-of-input-only steps among items.
func finalsIn(items []rec) []rec {
	var out []rec
	for _, r := range items {
		if slices.Contains(testflow.FinalSteps, r.Step) {
			out = append(out, r)
		}
	}
	return out
}

// familiesFlow is testflow.Families writing to sink.
func familiesFlow(src runnel.Source[int], keys int, sink *memSink) *runnel.Dataflow {
	return testflow.Families(src, keys, func(s runnel.Stream[rec]) {
		op.Output("out", s, runnel.PartitionedOutput[rec, int](sink))
	})
}
