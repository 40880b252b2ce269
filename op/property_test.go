package op_test

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestReduceFinalIsFold checks that ReduceFinal, with its pre-exchange
// combine, gives per key what a plain left fold over the key's values in
// input order gives, for any input, batch size and worker count. The
// reducer (string concatenation) is associative but not commutative, so a
// combine that reordered values would fail.
func TestReduceFinalIsFold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		type kv = runnel.KV[uint8, string]
		items := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) kv {
			return kv2(rapid.Uint8Range(0, 5).Draw(t, "key"), rapid.StringMatching(`[a-z]{0,2}`).Draw(t, "value"))
		}), 0, 60).Draw(t, "items")
		batch := rapid.IntRange(1, 20).Draw(t, "batch")
		workers := rapid.IntRange(1, 3).Draw(t, "workers")

		want := map[uint8]string{}
		for _, it := range items {
			want[it.Key] += it.Value
		}
		flow := runnel.NewDataflow("p")
		s := op.Input("inp", flow, runneltest.NewSource(items, runneltest.BatchSize(batch)))
		sink := runneltest.NewSink[kv]()
		op.Output("out", op.ReduceFinal("concat", s, func(a, b string) string { return a + b }), sink)
		if err := runneltest.Run(flow, workers); err != nil {
			t.Fatal(err)
		}
		got := map[uint8]string{}
		for _, it := range sink.Items() {
			if _, dup := got[it.Key]; dup {
				t.Fatalf("key %d emitted twice", it.Key)
			}
			got[it.Key] = it.Value
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Fatalf("(-fold +ReduceFinal):\n%s", diff)
		}
	})
}
