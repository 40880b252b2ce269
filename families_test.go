package runnel_test

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/window"
)

// This file holds a flow with one step of every stateful operator family
// (running state, end-of-input hooks, *Final, Collect, joins, windows), a
// source that can crash or stop the run at an input index, and a sink whose
// output is exactly-once across crashes. Together they let tests compare
// the whole output stream of interrupted and resumed runs with an
// uninterrupted run: a duplicate, a missing item or a result emitted early
// (a "final" at a stop) all show.

// rec is one output item of the families flow: the step that emitted it,
// the key, and the value as text.
type rec struct {
	Step string
	Key  int
	Val  string
}

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

func (s *ctlSource) ListParts() ([]string, error) {
	names := make([]string, s.parts)
	for i := range names {
		names[i] = fmt.Sprint("p", i)
	}
	return names, nil
}

func (s *ctlSource) BuildPart(_, part string, resume *int) (runnel.StatefulSourcePartition[int, int], error) {
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

func (s *memSink) ListParts() ([]string, error) {
	names := make([]string, len(s.parts))
	for i := range names {
		names[i] = fmt.Sprint("out", i)
	}
	return names, nil
}

func (s *memSink) PartFor(r rec) int { return r.Key }

func (s *memSink) BuildPart(_, part string, resume *int) (runnel.StatefulSinkPartition[rec, int], error) {
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

// familyBase is the event time of the first item of every key.
var familyBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// familyTime is the event time of item x: a key's items are an hour apart,
// with a 10-hour gap after every fifth (so that sessions close mid-input).
// Hours of event time against milliseconds of run time keep the event
// clock's system-time advance far from mattering.
func familyTime(x, keys int) time.Time {
	i := x / keys
	return familyBase.Add(time.Duration(i+(i/5)*10) * time.Hour)
}

// finalSteps are the family steps that emit only at the end of input.
var finalSteps = []string{"eof_hook", "fold_final", "reduce_final", "count_final", "max_final", "min_final", "join_final"}

// familiesFlow runs every stateful operator family over the items of src,
// keyed by x mod keys, into sink. Items of one key must come from one
// source partition (keys a multiple of the partition count), so that each
// step's output per key does not depend on how workers interleave.
func familiesFlow(src runnel.Source[int], keys int, sink *memSink) *runnel.Dataflow {
	flow := runnel.NewDataflow("families")
	inp := op.Input("inp", flow, src)
	kv := op.KeyOn("key", inp, func(x int) int { return x % keys })
	var outs []runnel.Stream[rec]
	add := func(step string, s runnel.Stream[runnel.KV[int, string]]) {
		outs = append(outs, op.Map("fmt_"+step, s, func(kv runnel.KV[int, string]) rec {
			return rec{Step: step, Key: kv.Key, Val: kv.Value}
		}))
	}
	str := func(step string, s runnel.Stream[runnel.KV[int, int]]) {
		add(step, op.MapValue("str_"+step, s, func(v int) string { return fmt.Sprint(v) }))
	}
	str("stateful_map", op.StatefulMap("stateful_map", kv, func(c int, _ bool, x int) (int, bool, int) { return c + 1, true, c*1000 + x }))
	add("stateful_flat_map", op.StatefulFlatMap("stateful_flat_map", kv, func(s string, _ bool, x int) (string, bool, []string) {
		s += fmt.Sprint(x % 10)
		if len(s) < 4 {
			return s, true, nil
		}
		return "", false, []string{s, "!"}
	}))
	str("eof_hook", op.Stateful("eof_hook", kv,
		func(c *op.Context[int, int], sum int, _ bool, x int) (int, bool) {
			// A wake-up far in the future: it must survive stops and
			// crashes without firing.
			c.NotifyAt(c.Now().Add(1000 * time.Hour))
			return sum + x, true
		},
		op.OnNotify(func(c *op.Context[int, int], sum int) (int, bool) { c.Emit(-1); return sum, true }),
		op.OnEOF(func(c *op.Context[int, int], sum int) (int, bool) { c.Emit(sum); return 0, false })))
	str("fold_final", op.FoldFinal("fold_final", kv, func() int { return 0 }, func(a, x int) int { return a*31 + x }))
	str("reduce_final", op.ReduceFinal("reduce_final", kv, func(a, b int) int { return a + b }))
	str("count_final", op.CountFinal("count_final", inp, func(x int) int { return x % keys }))
	str("max_final", op.MaxFinal("max_final", kv))
	str("min_final", op.MinFinal("min_final", kv))
	add("collect", op.MapValue("str_collect", op.Collect("collect", kv, 0, 3), func(v []int) string { return fmt.Sprint(v) }))
	left := op.FilterValue("left", kv, func(x int) bool { return (x/keys)%2 == 0 })
	right := op.FilterValue("right", kv, func(x int) bool { return (x/keys)%2 == 1 })
	add("join_final", op.MapValue("str_join_final", op.Join("join_final", left, right, op.JoinOpts{Emit: op.JoinEmitFinal}),
		func(j op.Joined2[int, int]) string { return j.String() }))

	ts := func(x int) time.Time { return familyTime(x, keys) }
	cw := window.CountWindow("count_window", inp, window.EventClock(ts, 0), window.Tumbling(3*time.Hour, familyBase), func(x int) int { return x % keys })
	add("count_window", op.MapValue("str_count_window", cw.Down, func(r window.Result[int]) string { return r.String() }))
	add("count_window_meta", op.MapValue("str_count_window_meta", cw.Meta, func(m window.Meta) string { return m.String() }))
	add("count_window_late", op.MapValue("str_count_window_late", cw.Late, func(l window.Late[int]) string { return l.String() }))
	sw := window.FoldWindow("session_window", kv, window.EventClock(ts, 0), window.Session(2*time.Hour),
		func() []int { return nil }, func(a []int, x int) []int { return append(a, x) }, func(a, b []int) []int { return append(a, b...) })
	add("session_window", op.MapValue("str_session_window", sw.Down, func(r window.Result[[]int]) string { return fmt.Sprint(r.Value) }))
	rw := window.ReduceWindow("sliding_window", kv, window.EventClock(ts, time.Hour), window.Sliding(4*time.Hour, 2*time.Hour, familyBase),
		func(a, b int) int { return a + b })
	add("sliding_window", op.MapValue("str_sliding_window", rw.Down, func(r window.Result[int]) string { return r.String() }))
	add("sliding_window_late", op.MapValue("str_sliding_window_late", rw.Late, func(l window.Late[int]) string { return l.String() }))
	// The two sides of a join come in an order that depends on batch
	// boundaries: a long wait keeps that from making items late.
	jclock := window.EventClock(func(e window.Either[int, int]) time.Time {
		if e.IsRight {
			return ts(e.Right)
		}
		return ts(e.Left)
	}, 1000*time.Hour)
	jw := window.JoinWindow("join_window", left, right, jclock, window.Tumbling(5*time.Hour, familyBase))
	add("join_window", op.MapValue("str_join_window", jw.Down, func(r window.Result[window.Joined[int, int]]) string { return r.String() }))

	op.Output("out", op.Merge("all", outs...), runnel.PartitionedOutput[rec, int](sink))
	return flow
}

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
		if slices.Contains(finalSteps, r.Step) {
			out = append(out, r)
		}
	}
	return out
}
