package op_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// joinEvent is one scripted join input: a value for a key on side L or R.
type joinEvent struct {
	Side string
	Key  string
	Val  int
}

// joinScript feeds both sides of a join from one source through Branch,
// so that on one worker the join sees the events in script order.
func joinScript(flow *runnel.Dataflow, events []joinEvent) (left, right runnel.Stream[runnel.KV[string, int]]) {
	s := op.Input("inp", flow, runneltest.NewSource(events))
	l, r := op.Branch("side", s, func(e joinEvent) bool { return e.Side == "L" })
	key := func(e joinEvent) runnel.KV[string, int] { return kv2(e.Key, e.Val) }
	return op.Map("left", l, key), op.Map("right", r, key)
}

func TestJoinModes(t *testing.T) {
	events := []joinEvent{
		{"L", "a", 1}, {"R", "a", 10}, {"L", "a", 2}, {"R", "a", 20}, {"L", "b", 3},
		{"L", "c", 5}, {"L", "c", 6}, {"R", "c", 60},
	}
	type want = map[string][]string
	tests := []struct {
		insert op.JoinInsert
		emit   op.JoinEmit
		want   want
	}{
		{op.JoinInsertLast, op.JoinEmitComplete, want{"a": {"(1, 10)", "(2, 20)"}, "c": {"(6, 60)"}}},
		{op.JoinInsertFirst, op.JoinEmitComplete, want{"a": {"(1, 10)", "(2, 20)"}, "c": {"(5, 60)"}}},
		{op.JoinInsertProduct, op.JoinEmitComplete, want{"a": {"(1, 10)", "(2, 20)"}, "c": {"(5, 60)", "(6, 60)"}}},
		{op.JoinInsertLast, op.JoinEmitFinal, want{"a": {"(2, 20)"}, "b": {"(3, None)"}, "c": {"(6, 60)"}}},
		{op.JoinInsertFirst, op.JoinEmitFinal, want{"a": {"(1, 10)"}, "b": {"(3, None)"}, "c": {"(5, 60)"}}},
		{op.JoinInsertProduct, op.JoinEmitFinal, want{
			"a": {"(1, 10)", "(1, 20)", "(2, 10)", "(2, 20)"}, "b": {"(3, None)"}, "c": {"(5, 60)", "(6, 60)"}}},
		{op.JoinInsertLast, op.JoinEmitRunning, want{
			"a": {"(1, None)", "(1, 10)", "(2, 10)", "(2, 20)"}, "b": {"(3, None)"},
			"c": {"(5, None)", "(6, None)", "(6, 60)"}}},
		{op.JoinInsertFirst, op.JoinEmitRunning, want{
			"a": {"(1, None)", "(1, 10)", "(1, 10)", "(1, 10)"}, "b": {"(3, None)"},
			"c": {"(5, None)", "(5, None)", "(5, 60)"}}},
		{op.JoinInsertProduct, op.JoinEmitRunning, want{
			"a": {"(1, None)", "(1, 10)", "(1, 10)", "(2, 10)", "(1, 10)", "(1, 20)", "(2, 10)", "(2, 20)"},
			"b": {"(3, None)"},
			"c": {"(5, None)", "(5, None)", "(6, None)", "(5, 60)", "(6, 60)"}}},
	}
	for _, tc := range tests {
		t.Run(tc.insert.String()+"/"+tc.emit.String(), func(t *testing.T) {
			flow := runnel.NewDataflow("f")
			l, r := joinScript(flow, events)
			j := op.Join("join", l, r, op.JoinOpts{Insert: tc.insert, Emit: tc.emit})
			rows := op.MapValue("str", j, func(v op.Joined2[int, int]) string { return v.String() })
			sink := runneltest.NewSink[runnel.KV[string, string]]()
			op.Output("out", rows, sink)
			if err := runneltest.Run(flow, 1); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tc.want, perKey(sink.Items())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinBadMode(t *testing.T) {
	flow := runnel.NewDataflow("f")
	l, r := joinScript(flow, nil)
	j := op.Join("j", l, r, op.JoinOpts{Emit: op.JoinEmit(9)})
	op.Output("out", j, runneltest.NewSink[runnel.KV[string, op.Joined2[int, int]]]())
	if err := runneltest.Run(flow, 1); err == nil || !strings.Contains(err.Error(), "f.j: unknown join emit mode 9") {
		t.Errorf("err = %v", err)
	}
}

func TestJoin3AndJoinN(t *testing.T) {
	events := []joinEvent{{"L", "a", 1}, {"R", "a", 10}, {"L", "b", 2}, {"R", "a", 11}}
	flow := runnel.NewDataflow("f")
	l, r := joinScript(flow, events)
	names := op.Input("names", flow, runneltest.NewSource([]runnel.KV[string, string]{kv2("a", "alice"), kv2("c", "carol")}))
	j3 := op.Join3("j3", l, r, names, op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal})
	jn := op.JoinN("jn", []runnel.Stream[runnel.KV[string, int]]{l, r, l}, op.JoinOpts{Emit: op.JoinEmitFinal})
	s3 := op.MapValue("s3", j3, func(v op.Joined3[int, int, string]) string { return v.String() })
	sn := op.MapValue("sn", jn, func(v []op.Option[int]) string { return fmt.Sprint(v) })
	sink := runneltest.NewSink[runnel.KV[string, string]]()
	op.Output("out", op.Merge("m", s3, sn), sink)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	got := perKey(sink.Items())
	for _, v := range got {
		slices.Sort(v)
	}
	want := map[string][]string{
		"a": {"(1, 10, 'alice')", "(1, 11, 'alice')", "[1 11 1]"},
		"b": {"(2, None, None)", "[2 None 2]"},
		"c": {"(None, None, 'carol')"},
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestJoinOnWorkers checks the modes whose output does not depend on how
// the two sides interleave: final (every insert mode), and complete with
// one value per side and key.
func TestJoinOnWorkers(t *testing.T) {
	type row = runnel.KV[int, string]
	for _, opts := range []op.JoinOpts{
		{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal},
		{Insert: op.JoinInsertFirst, Emit: op.JoinEmitFinal},
		{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal},
		{Insert: op.JoinInsertLast, Emit: op.JoinEmitComplete},
	} {
		one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[row] {
			n := 300
			if opts.Emit == op.JoinEmitComplete {
				n = 40 // one value per key on each side
			}
			ls := op.Input("l", flow, runneltest.NewSource(ints(n), runneltest.BatchSize(7)))
			rs := op.Input("r", flow, runneltest.NewSource(ints(n), runneltest.BatchSize(5)))
			l := op.KeyOn("lk", ls, func(x int) int { return x % 40 })
			r := op.KeyOn("rk", op.Filter("odd", rs, func(x int) bool { return x%2 == 1 }), func(x int) int { return x % 40 })
			rv := op.MapValue("rv", r, func(x int) string { return fmt.Sprint("r", x) })
			j := op.Join("join", l, rv, opts)
			out := op.MapValue("str", j, func(v op.Joined2[int, string]) string { return v.String() })
			sink := runneltest.NewSink[row]()
			op.Output("out", out, sink)
			return sink
		})
		if len(one) == 0 {
			t.Fatalf("%v: no output", opts)
		}
		sameMultiset(t, one, four, kvCompare)
	}
}
