// Package testflow holds flows that Runnel's own tests run in-process and
// as real processes (internal/testprog), so that both check the same
// thing.
package testflow

import (
	"fmt"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/window"
)

// Rec is one output item of the families flow: the step that emitted it,
// the key, and the value as text.
type Rec struct {
	Step string
	Key  int
	Val  string
}

// String is the item as a line of text: "step key value".
func (r Rec) String() string { return fmt.Sprintf("%s %d %s", r.Step, r.Key, r.Val) }

// Base is the event time of the first item of every key.
var Base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// EventTime is the event time of item x: a key's items are an hour apart,
// with a 10-hour gap after every fifth (so that sessions close mid-input).
// Hours of event time against milliseconds of run time keep the event
// clock's system-time advance far from mattering.
func EventTime(x, keys int) time.Time {
	i := x / keys
	return Base.Add(time.Duration(i+(i/5)*10) * time.Hour)
}

// FinalSteps are the family steps that emit only at the end of input.
var FinalSteps = []string{"eof_hook", "fold_final", "reduce_final", "count_final", "max_final", "min_final", "join_final", "join3_final", "joinn_final"}

// Families runs every stateful operator family over the items of src,
// keyed by x mod keys, and hands the merged output to output (which adds
// the output step). Items of one key must come from one source partition
// (keys a multiple of the partition count), so that each step's output per
// key does not depend on how workers interleave.
func Families(src runnel.Source[int], keys int, output func(runnel.Stream[Rec])) *runnel.Dataflow {
	return FamiliesFrom(func(flow *runnel.Dataflow) runnel.Stream[int] { return op.Input("inp", flow, src) }, keys, output)
}

// FamiliesFrom is Families over the stream that input adds to the flow
// (a Kafka source and a parse step, say).
func FamiliesFrom(input func(*runnel.Dataflow) runnel.Stream[int], keys int, output func(runnel.Stream[Rec])) *runnel.Dataflow {
	flow := runnel.NewDataflow("families")
	inp := input(flow)
	kv := op.KeyOn("key", inp, func(x int) int { return x % keys })
	var outs []runnel.Stream[Rec]
	add := func(step string, s runnel.Stream[runnel.KV[int, string]]) {
		outs = append(outs, op.Map("fmt_"+step, s, func(kv runnel.KV[int, string]) Rec {
			return Rec{Step: step, Key: kv.Key, Val: kv.Value}
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
	// One result per value, so the output does not depend on how the
	// input is cut into batches.
	str("stateful_batch", op.StatefulBatch("stateful_batch", kv, func(c *op.Context[int, int], n int, _ bool, xs []int) (int, bool) {
		for _, x := range xs {
			n++
			c.Emit(n*1000 + x)
		}
		return n, true
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

	thirds := make([]runnel.Stream[runnel.KV[int, int]], 3)
	for i := range thirds {
		thirds[i] = op.FilterValue(fmt.Sprint("third", i), kv, func(x int) bool { return (x/keys)%3 == i })
	}
	add("join3_final", op.MapValue("str_join3_final", op.Join3("join3_final", thirds[0], thirds[1], thirds[2],
		op.JoinOpts{Insert: op.JoinInsertFirst, Emit: op.JoinEmitFinal}), func(j op.Joined3[int, int, int]) string { return j.String() }))
	add("joinn_final", op.MapValue("str_joinn_final", op.JoinN("joinn_final", thirds, op.JoinOpts{Emit: op.JoinEmitFinal}),
		func(j []op.Option[int]) string { return fmt.Sprint(j) }))

	ts := func(x int) time.Time { return EventTime(x, keys) }
	cw := window.CountWindow("count_window", inp, window.EventClock(ts, 0), window.Tumbling(3*time.Hour, Base), func(x int) int { return x % keys })
	add("count_window", op.MapValue("str_count_window", cw.Down, func(r window.Result[int]) string { return r.String() }))
	add("count_window_meta", op.MapValue("str_count_window_meta", cw.Meta, func(m window.Meta) string { return m.String() }))
	add("count_window_late", op.MapValue("str_count_window_late", cw.Late, func(l window.Late[int]) string { return l.String() }))
	clw := window.CollectWindow("collect_window", kv, window.EventClock(ts, 0), window.Tumbling(4*time.Hour, Base))
	add("collect_window", op.MapValue("str_collect_window", clw.Down, func(r window.Result[[]int]) string { return r.String() }))
	sw := window.FoldWindow("session_window", kv, window.EventClock(ts, 0), window.Session(2*time.Hour),
		func() []int { return nil }, func(a []int, x int) []int { return append(a, x) }, func(a, b []int) []int { return append(a, b...) })
	add("session_window", op.MapValue("str_session_window", sw.Down, func(r window.Result[[]int]) string { return fmt.Sprint(r.Value) }))
	rw := window.ReduceWindow("sliding_window", kv, window.EventClock(ts, time.Hour), window.Sliding(4*time.Hour, 2*time.Hour, Base),
		func(a, b int) int { return a + b })
	add("sliding_window", op.MapValue("str_sliding_window", rw.Down, func(r window.Result[int]) string { return r.String() }))
	add("sliding_window_late", op.MapValue("str_sliding_window_late", rw.Late, func(l window.Late[int]) string { return l.String() }))
	// The two sides of a join come on two edges, whose interleaving is
	// not defined: barrier alignment can hold one side back by a whole
	// epoch (a worker ahead of the others queues on both edges, and the
	// queues replay one edge after the other). With a watermark shared by
	// both sides, any finite wait can then make the held-back side late
	// in one run and not in another; an endless wait keeps every window
	// open until the end of input, where JoinWindow's results are defined.
	jclock := window.EventClock(func(e window.Either[int, int]) time.Time {
		if e.IsRight {
			return ts(e.Right)
		}
		return ts(e.Left)
	}, 1_000_000*time.Hour)
	jw := window.JoinWindow("join_window", left, right, jclock, window.Tumbling(5*time.Hour, Base))
	add("join_window", op.MapValue("str_join_window", jw.Down, func(r window.Result[window.Joined[int, int]]) string { return r.String() }))
	add("join_window_late", op.MapValue("str_join_window_late", jw.Late, func(l window.Late[window.Either[int, int]]) string { return fmt.Sprint(l) }))

	output(op.Merge("all", outs...))
	return flow
}
