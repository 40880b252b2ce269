package op_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ints(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// onWorkers runs the flow that build makes on 1 and on 4 workers and
// returns both outputs.
func onWorkers[T any](t *testing.T, build func(flow *runnel.Dataflow) *runneltest.Sink[T]) (one, four []T) {
	t.Helper()
	for _, w := range []int{1, 4} {
		flow := runnel.NewDataflow("test")
		sink := build(flow)
		cfg := runneltest.Config(w, 5*time.Millisecond, "")
		if err := runnel.Run(context.Background(), flow, cfg); err != nil {
			t.Fatalf("%d workers: %v", w, err)
		}
		if w == 1 {
			one = sink.Items()
		} else {
			four = sink.Items()
		}
	}
	return one, four
}

func sameMultiset[T any](t *testing.T, one, four []T, cmpFn func(a, b T) int) {
	t.Helper()
	a, b := slices.Clone(one), slices.Clone(four)
	slices.SortFunc(a, cmpFn)
	slices.SortFunc(b, cmpFn)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("1 and 4 workers differ (-1 +4):\n%s", diff)
	}
}

// perKey groups keyed output by key, keeping arrival order per key.
func perKey[K runnel.Key, V any](items []runnel.KV[K, V]) map[K][]V {
	m := map[K][]V{}
	for _, kv := range items {
		m[kv.Key] = append(m[kv.Key], kv.Value)
	}
	return m
}

func src(n int) runnel.Source[int] {
	return runneltest.NewSource(ints(n), runneltest.Parts(3), runneltest.BatchSize(7))
}

func TestStateless(t *testing.T) {
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[string] {
		s := op.Input("inp", flow, src(500))
		s = op.Redistribute("spread", s)
		s = op.Map("triple", s, func(x int) int { return x * 3 })
		s = op.Filter("no_fives", s, func(x int) bool { return x%5 != 0 })
		s = op.FlatMap("twice", s, func(x int) []int { return []int{x, -x} })
		m := op.FilterMap("small", s, func(x int) (string, bool) { return fmt.Sprint(x), x < 900 })
		var seen atomic.Int64 // functions run on every worker at once
		m = op.Inspect("look", m, func(string) { seen.Add(1) })
		sink := runneltest.NewSink[string]()
		op.Output("out", m, sink)
		return sink
	})
	if len(one) == 0 {
		t.Fatal("no output")
	}
	sameMultiset(t, one, four, strings.Compare)
}

func TestMergeAndKeys(t *testing.T) {
	type kv = runnel.KV[int, string]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		a := op.Input("a", flow, src(100))
		b := op.Input("b", flow, runneltest.NewSource([]int{1000, 1001}))
		m := op.Merge("both", a, b)
		k := op.KeyOn("key", m, func(x int) int { return x % 7 })
		v := op.MapValue("str", k, func(x int) string { return fmt.Sprint(x) })
		back := op.KeyOn("rekey", op.KeyRm("unkey", v), func(s string) int { return len(s) })
		sink := runneltest.NewSink[kv]()
		op.Output("out", back, sink)
		return sink
	})
	if len(one) != 102 {
		t.Fatalf("got %d items, want 102", len(one))
	}
	sameMultiset(t, one, four, func(a, b kv) int { return strings.Compare(a.String(), b.String()) })
}

func TestStatefulMapPerKeyOrder(t *testing.T) {
	type kv = runnel.KV[string, int]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		// One partition keeps the input order, so per-key output order is
		// defined and must not depend on the worker count.
		s := op.Input("inp", flow, runneltest.NewSource(ints(1000), runneltest.BatchSize(13)))
		k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint("k", x%10) })
		sums := op.StatefulMap("sum", k, func(sum int, _ bool, x int) (int, bool, int) {
			return sum + x, true, sum + x
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", sums, sink)
		return sink
	})
	if diff := cmp.Diff(perKey(one), perKey(four)); diff != "" {
		t.Errorf("per-key output differs (-1 +4):\n%s", diff)
	}
	if got := perKey(one)["k3"]; got[1] != 3+13 {
		t.Errorf("k3 running sum = %v", got[:2])
	}
}

func TestStatefulMapDiscard(t *testing.T) {
	type kv = runnel.KV[uint16, int]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(300), runneltest.BatchSize(50)))
		k := op.KeyOn("key", s, func(x int) uint16 { return uint16(x % 4) })
		// Count to three, emit, and start over: the state is discarded.
		counts := op.StatefulMap("count3", k, func(n int, ok bool, _ int) (int, bool, int) {
			if ok && n == 2 {
				return 0, false, 3
			}
			return n + 1, true, n + 1
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", counts, sink)
		return sink
	})
	for k, vs := range perKey(one) {
		for i, v := range vs {
			if v != i%3+1 {
				t.Fatalf("key %d: output %d is %d, want %d", k, i, v, i%3+1)
			}
		}
	}
	if diff := cmp.Diff(perKey(one), perKey(four)); diff != "" {
		t.Errorf("per-key output differs (-1 +4):\n%s", diff)
	}
}

func TestStatefulNotifyAndEOF(t *testing.T) {
	type kv = runnel.KV[string, string]
	one, four := onWorkers(t, func(flow *runnel.Dataflow) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "a", "c"}))
		k := op.KeyOn("key", s, func(x string) string { return x })
		out := op.Stateful("collect", k,
			func(c *op.Context[string, string], n int, _ bool, v string) (int, bool) {
				if n == 0 {
					c.NotifyAt(c.Now()) // due at once
				}
				return n + 1, true
			},
			op.OnNotify(func(c *op.Context[string, string], n int) (int, bool) {
				c.Emit("notified")
				return n, true
			}),
			op.OnEOF(func(c *op.Context[string, string], n int) (int, bool) {
				c.Emit(fmt.Sprint("eof:", n))
				return 0, false
			}))
		sink := runneltest.NewSink[kv]()
		op.Output("out", out, sink)
		return sink
	})
	for _, items := range [][]kv{one, four} {
		got := perKey(items)
		if eof := got["a"][len(got["a"])-1]; eof != "eof:2" {
			t.Errorf("a ends with %q, want eof:2 (got %v)", eof, got)
		}
		if len(got) != 3 {
			t.Errorf("keys = %v", got)
		}
	}
}

func TestErrorAndPanicNameStep(t *testing.T) {
	for _, w := range []int{1, 3} {
		flow := runnel.NewDataflow("f")
		s := op.Input("inp", flow, runneltest.NewSource(ints(100), runneltest.Parts(3)))
		m := op.TryMap("parse", s, func(x int) (int, error) {
			if x == 50 {
				return 0, errors.New("bad record 50")
			}
			return x, nil
		})
		op.Output("out", m, runneltest.NewSink[int]())
		err := runneltest.Run(flow, w)
		if err == nil || !strings.Contains(err.Error(), "step f.parse") || !strings.Contains(err.Error(), "bad record 50") {
			t.Errorf("%d workers: err = %v, want it to name f.parse and the cause", w, err)
		}

		flow = runnel.NewDataflow("f")
		s = op.Input("inp", flow, runneltest.NewSource(ints(100), runneltest.Parts(3)))
		k := op.KeyOn("key", s, func(x int) int { return x })
		st := op.StatefulMap("explode", k, func(_ int, _ bool, x int) (int, bool, int) {
			if x == 77 {
				panic("boom at 77")
			}
			return 0, true, x
		})
		op.Output("out", st, runneltest.NewSink[runnel.KV[int, int]]())
		err = runneltest.Run(flow, w)
		if err == nil || !strings.Contains(err.Error(), "step f.explode") || !strings.Contains(err.Error(), "boom at 77") {
			t.Errorf("%d workers: err = %v, want it to name f.explode and the panic", w, err)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource(ints(3)))
	op.Map("inp", s, func(x int) int { return x }) // duplicate id
	op.Map("a.b", s, func(x int) int { return x }) // bad id
	op.Map("zero", runnel.Stream[int]{}, func(x int) int { return x })
	other := runnel.NewDataflow("g")
	o := op.Input("inp", other, runneltest.NewSource(ints(3)))
	op.Merge("mix", s, o)
	op.Merge("half", runnel.Stream[int]{}, s)
	err := runneltest.Run(flow, 1)
	for _, want := range []string{"f.inp: the id is used twice", "f.a.b", "comes from dataflow \"g\"", "f.half: input 0 is a zero Stream", "no output step"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}
