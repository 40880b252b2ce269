package op_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// StatefulBatch calls its function once per key of a batch, keys in the
// order they first appear, each key's values in arrival order; state
// carries over between batches; OnEOF flushes.
func TestStatefulBatchGroupsByKey(t *testing.T) {
	type call struct {
		key    string
		values []int
	}
	var mu sync.Mutex
	var calls []call
	flow := runnel.NewDataflow("f")
	// One partition, batches of 6: [0..5], [6..11], ...
	s := op.Input("inp", flow, runneltest.NewSource(ints(30), runneltest.BatchSize(6)))
	k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint("k", x%4) })
	out := op.StatefulBatch("sum", k, func(c *op.Context[string, string], sum int, ok bool, values []int) (int, bool) {
		mu.Lock()
		calls = append(calls, call{c.Key(), slices.Clone(values)})
		mu.Unlock()
		for _, v := range values {
			sum += v
			c.Emit(fmt.Sprint(sum))
		}
		return sum, true
	}, op.OnEOF(func(c *op.Context[string, string], sum int) (int, bool) {
		c.Emit(fmt.Sprint("total ", sum))
		return 0, false
	}))
	sink := runneltest.NewSink[runnel.KV[string, string]]()
	op.Output("out", out, sink)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	// Every call has one key and its values in order; together they are
	// the input, each key's values in order.
	got := map[string][]int{}
	grouped := false
	for _, c := range calls {
		if !slices.IsSorted(c.values) {
			t.Errorf("key %s: values out of order: %v", c.key, c.values)
		}
		for _, v := range c.values {
			if want := fmt.Sprint("k", v%4); want != c.key {
				t.Errorf("call for %s got %d (key %s)", c.key, v, want)
			}
		}
		got[c.key] = append(got[c.key], c.values...)
		grouped = grouped || len(c.values) > 1
	}
	for k := range 4 {
		key := fmt.Sprint("k", k)
		var want []int
		for x := k; x < 30; x += 4 {
			want = append(want, x)
		}
		if !slices.Equal(got[key], want) {
			t.Errorf("key %s: values %v, want %v", key, got[key], want)
		}
	}
	if !grouped {
		t.Errorf("no call had more than one value: %v", calls)
	}
	// Output: a running sum per value, then the total at EOF.
	for key, vals := range perKey(sink.Items()) {
		if last := vals[len(vals)-1]; !strings.HasPrefix(last, "total ") || last[len("total "):] != vals[len(vals)-2] {
			t.Errorf("key %s: output ends %q", key, vals[len(vals)-2:])
		}
	}
}

// A key's notification that is due runs before the key's values of the
// next batch.
func TestStatefulBatchNotifyBeforeValues(t *testing.T) {
	var mu sync.Mutex
	var log []string
	flow := runnel.NewDataflow("f")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3, 4}, runneltest.BatchSize(2)))
	k := op.KeyOn("key", s, func(int) string { return "k" })
	out := op.StatefulBatch("b", k, func(c *op.Context[string, int], n int, _ bool, values []int) (int, bool) {
		mu.Lock()
		log = append(log, fmt.Sprint("batch ", values))
		mu.Unlock()
		c.NotifyAt(c.Now()) // due at once: runs before the next values
		return n + len(values), true
	}, op.OnNotify(func(c *op.Context[string, int], n int) (int, bool) {
		mu.Lock()
		log = append(log, fmt.Sprint("notify ", n))
		mu.Unlock()
		c.Emit(n)
		return n, true
	}))
	op.Output("out", out, runneltest.NewSink[runnel.KV[string, int]]())
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, "")); err != nil {
		t.Fatal(err)
	}
	want := []string{"batch [1 2]", "notify 2", "batch [3 4]"}
	if len(log) < 3 || !slices.Equal(log[:3], want) {
		t.Errorf("calls %q, want %q first", log, want)
	}
}

func TestStatefulBatchNilFunction(t *testing.T) {
	flow := runnel.NewDataflow("f")
	k := op.KeyOn("key", op.Input("inp", flow, runneltest.NewSource([]int{1})), func(int) string { return "k" })
	op.Output("out", op.StatefulBatch[string, int, int, int]("b", k, nil), runneltest.NewSink[runnel.KV[string, int]]())
	if err := flow.Validate(); err == nil || !strings.Contains(err.Error(), "f.b") || !strings.Contains(err.Error(), "nil") {
		t.Errorf("Validate: %v, want an error naming f.b and the nil function", err)
	}
}

// StatefulBatch's state survives a crash and a resume on another worker
// count: the running sums go on where the last snapshot left them.
func TestCrashResumeStatefulBatch(t *testing.T) {
	type kv = runnel.KV[string, int]
	full, first, second := crashAndResume(t, 70, func(flow *runnel.Dataflow, opts ...runneltest.SourceOpt) *runneltest.Sink[kv] {
		s := op.Input("inp", flow, runneltest.NewSource(ints(120), opts...))
		k := op.KeyOn("key", s, func(x int) string { return fmt.Sprint("k", x%5) })
		out := op.StatefulBatch("sum", k, func(c *op.Context[string, int], sum int, _ bool, values []int) (int, bool) {
			for _, x := range values {
				sum += x
				c.Emit(sum)
			}
			return sum, true
		})
		sink := runneltest.NewSink[kv]()
		op.Output("out", out, sink)
		return sink
	})
	if len(first) >= len(full) {
		t.Fatalf("the crash came too late: %d of %d items", len(first), len(full))
	}
	if lastResume > 1 && len(second) >= len(full) {
		t.Errorf("the resumed run emitted all %d items: it did not resume from a snapshot", len(second))
	}
	checkCombined(t, full, first, second)
}
