package window_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// jv is a value of side Side ("a", "b" or "c") at second Sec.
type jv struct {
	Side string
	Name string
	Sec  int
}

func (v jv) String() string { return v.Name }

func jvTime(v jv) time.Time { return align.Add(time.Duration(v.Sec) * time.Second) }

// joinInput is one source in a fixed order (one item per batch), split
// into one keyed stream per side, so that one worker sees the sides
// interleaved exactly in that order.
func joinInput(flow *runnel.Dataflow, vals []jv, opts ...runneltest.SourceOpt) map[string]runnel.Stream[runnel.KV[string, jv]] {
	s := op.Input("inp", flow, runneltest.NewSource(vals, append([]runneltest.SourceOpt{runneltest.BatchSize(1)}, opts...)...))
	k := op.KeyOn("key", s, func(jv) string { return "k" })
	a, rest := op.Branch("a", k, func(kv runnel.KV[string, jv]) bool { return kv.Value.Side == "a" })
	b, c := op.Branch("b", rest, func(kv runnel.KV[string, jv]) bool { return kv.Value.Side == "b" })
	return map[string]runnel.Stream[runnel.KV[string, jv]]{"a": a, "b": b, "c": c}
}

var joinVals = []jv{{"a", "a1", 1}, {"b", "b1", 2}, {"a", "a2", 3}, {"b", "b2", 4}, {"a", "a3", 12}}

func eitherTime(e window.Either[jv, jv]) time.Time {
	if e.IsRight {
		return jvTime(e.Right)
	}
	return jvTime(e.Left)
}

func TestJoinWindowModes(t *testing.T) {
	type modes = op.JoinOpts
	cases := []struct {
		modes *modes
		want  []string
	}{
		{nil, []string{"(0, (a2, b2))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal}, []string{"(0, (a2, b2))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertFirst, Emit: op.JoinEmitFinal}, []string{"(0, (a1, b1))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal}, []string{
			"(0, (a1, b1))", "(0, (a1, b2))", "(0, (a2, b1))", "(0, (a2, b2))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertLast, Emit: op.JoinEmitComplete}, []string{"(0, (a1, b1))", "(0, (a2, b2))"}},
		{&modes{Insert: op.JoinInsertProduct, Emit: op.JoinEmitComplete}, []string{"(0, (a1, b1))", "(0, (a2, b2))"}},
		{&modes{Insert: op.JoinInsertLast, Emit: op.JoinEmitRunning}, []string{
			"(0, (a1, None))", "(0, (a1, b1))", "(0, (a2, b1))", "(0, (a2, b2))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertFirst, Emit: op.JoinEmitRunning}, []string{
			"(0, (a1, None))", "(0, (a1, b1))", "(0, (a1, b1))", "(0, (a1, b1))", "(1, (a3, None))"}},
		{&modes{Insert: op.JoinInsertProduct, Emit: op.JoinEmitRunning}, []string{
			"(0, (a1, None))", "(0, (a1, b1))", "(0, (a1, b1))", "(0, (a2, b1))",
			"(0, (a1, b1))", "(0, (a1, b2))", "(0, (a2, b1))", "(0, (a2, b2))", "(1, (a3, None))"}},
	}
	for _, c := range cases {
		name := "default"
		var opts []window.Option
		if c.modes != nil {
			name = c.modes.Insert.String() + "/" + c.modes.Emit.String()
			opts = append(opts, window.JoinModes(*c.modes))
		}
		t.Run(name, func(t *testing.T) {
			flow := runnel.NewDataflow("join")
			in := joinInput(flow, joinVals)
			out := window.JoinWindow("join", in["a"], in["b"], window.EventClock(eitherTime, time.Hour), window.Tumbling(10*time.Second, align), opts...)
			sink := runneltest.NewSink[runnel.KV[string, window.Result[window.Joined[jv, jv]]]]()
			op.Output("out", out.Down, sink)
			op.Output("c", in["c"], runneltest.NewSink[runnel.KV[string, jv]]())
			run(t, flow, 1)
			var got []string
			for _, kv := range sink.Items() {
				got = append(got, kv.Value.String())
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinWindowN(t *testing.T) {
	vals := append(slices.Clone(joinVals), jv{"c", "c1", 5}, jv{"c", "c2", 6})
	for _, c := range []struct {
		opts []window.Option
		want []string
	}{
		{nil, []string{"(0, [a2, b2, c2])", "(1, [a3, None, None])"}},
		{[]window.Option{window.JoinModes(op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal})}, []string{
			"(0, [a1, b1, c1])", "(0, [a1, b1, c2])", "(0, [a1, b2, c1])", "(0, [a1, b2, c2])",
			"(0, [a2, b1, c1])", "(0, [a2, b1, c2])", "(0, [a2, b2, c1])", "(0, [a2, b2, c2])", "(1, [a3, None, None])"}},
		{[]window.Option{window.JoinModes(op.JoinOpts{Insert: op.JoinInsertFirst, Emit: op.JoinEmitComplete})}, []string{"(0, [a1, b1, c1])"}},
	} {
		flow := runnel.NewDataflow("joinn")
		in := joinInput(flow, vals)
		out := window.JoinWindowN("join", []runnel.Stream[runnel.KV[string, jv]]{in["a"], in["b"], in["c"]},
			window.EventClock(jvTime, time.Hour), window.Tumbling(10*time.Second, align), c.opts...)
		sink := runneltest.NewSink[runnel.KV[string, window.Result[[]op.Option[jv]]]]()
		op.Output("out", out.Down, sink)
		run(t, flow, 1)
		var got []string
		for _, kv := range sink.Items() {
			got = append(got, kv.Value.String())
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

func TestJoinWindowSessionsMerge(t *testing.T) {
	// a1@1s and b1@12s open two sessions (gap 5s); b2@6s and a2@9s grow
	// the first until it reaches the second, and they merge: the product
	// holds the values of both.
	vals := []jv{{"a", "a1", 1}, {"b", "b1", 12}, {"b", "b2", 6}, {"a", "a2", 9}}
	flow := runnel.NewDataflow("join")
	in := joinInput(flow, vals)
	out := window.JoinWindow("join", in["a"], in["b"], window.EventClock(eitherTime, time.Hour), window.Session(5*time.Second),
		window.JoinModes(op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal}))
	sink := runneltest.NewSink[runnel.KV[string, window.Result[window.Joined[jv, jv]]]]()
	op.Output("out", out.Down, sink)
	op.Output("c", in["c"], runneltest.NewSink[runnel.KV[string, jv]]())
	run(t, flow, 1)
	var got []string
	for _, kv := range sink.Items() {
		got = append(got, fmt.Sprint(kv.Value.Value))
	}
	slices.Sort(got)
	want := []string{"(a1, b1)", "(a1, b2)", "(a2, b1)", "(a2, b2)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestJoinModesBuildErrors(t *testing.T) {
	flow := runnel.NewDataflow("f")
	in := joinInput(flow, joinVals)
	clock := window.EventClock(eitherTime, 0)
	window.CountWindow("count", in["a"], window.EventClock(func(kv runnel.KV[string, jv]) time.Time { return jvTime(kv.Value) }, 0),
		window.Tumbling(time.Second, align), func(kv runnel.KV[string, jv]) string { return kv.Key },
		window.JoinModes(op.JoinOpts{}))
	window.JoinWindow("bad", in["a"], in["b"], clock, window.Tumbling(time.Second, align), window.JoinModes(op.JoinOpts{Emit: 9}))
	err := runneltest.Run(flow, 1)
	for _, want := range []string{
		"step f.count: JoinModes applies to JoinWindow and JoinWindowN only",
		"step f.bad: unknown join emit mode 9",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
}

// TestJoinWindowCrashResume: a product join (final emits, whose rows do
// not depend on how the sides interleave) crashed at every point and
// resumed on another worker count emits what an uninterrupted run emits.
func TestJoinWindowCrashResume(t *testing.T) {
	var vals []jv
	for i := range 24 {
		side := []string{"a", "b", "c"}[i%3]
		vals = append(vals, jv{side, fmt.Sprintf("%s%d", side, i), i})
	}
	build := func(src ...runneltest.SourceOpt) (*runnel.Dataflow, *runneltest.Sink[runnel.KV[string, window.Result[[]op.Option[jv]]]]) {
		flow := runnel.NewDataflow("joinn")
		in := joinInput(flow, vals, src...)
		out := window.JoinWindowN("join", []runnel.Stream[runnel.KV[string, jv]]{in["a"], in["b"], in["c"]},
			window.EventClock(jvTime, time.Hour), window.Tumbling(10*time.Second, align),
			window.JoinModes(op.JoinOpts{Insert: op.JoinInsertProduct, Emit: op.JoinEmitFinal}))
		sink := runneltest.NewSink[runnel.KV[string, window.Result[[]op.Option[jv]]]]()
		op.Output("out", out.Down, sink)
		return flow, sink
	}
	lines := func(items []runnel.KV[string, window.Result[[]op.Option[jv]]]) []string {
		var out []string
		for _, kv := range items {
			out = append(out, kv.Value.String())
		}
		slices.Sort(out)
		return out
	}
	flow, sink := build()
	run(t, flow, 1)
	want := lines(sink.Items())
	for failAt := 1; failAt < len(vals); failAt += 5 {
		dir := filepath.Join(t.TempDir(), "db")
		if err := recovery.Init(dir, 2); err != nil {
			t.Fatal(err)
		}
		w1, w2 := 1+failAt%3, 1+(failAt+1)%3
		flow, s1 := build(runneltest.FailAt(failAt), runneltest.Pace(200*time.Microsecond))
		if err := runnel.Run(context.Background(), flow, runneltest.Config(w1, time.Millisecond, dir)); !errors.Is(err, runneltest.ErrCrash) {
			t.Fatalf("crash at %d: %v", failAt, err)
		}
		flow, s2 := build()
		if err := runnel.Run(context.Background(), flow, runneltest.Config(w2, time.Millisecond, dir)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, lines(append(s1.Items(), s2.Items()...))); diff != "" {
			t.Errorf("crash at %d on %d workers, resumed on %d (-want +got):\n%s", failAt, w1, w2, diff)
		}
	}
}
