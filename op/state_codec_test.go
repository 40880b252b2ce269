package op

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/pubapi"
	"github.com/runnel-dev/runnel/runneltest"
)

// roundTrip checks a state value against the recovery codec: its type
// passes CheckType and the value survives Marshal and Unmarshal.
func roundTrip[S any](t *testing.T, name string, s S) {
	t.Helper()
	if err := codec.CheckType(reflect.TypeFor[S]()); err != nil {
		t.Errorf("%s: CheckType: %v", name, err)
		return
	}
	b, err := codec.Marshal(s)
	if err != nil {
		t.Errorf("%s: Marshal: %v", name, err)
		return
	}
	var back S
	if err := codec.Unmarshal(b, &back); err != nil {
		t.Errorf("%s: Unmarshal: %v", name, err)
		return
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("%s: round trip differs (-in +out):\n%s", name, diff)
	}
}

// TestStateTypesRoundTrip walks the state each operator of this package
// keeps, as stored in a snapshot (stateRecord), through the codec.
func TestStateTypesRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	type user struct {
		Name  string
		Score float64
	}
	roundTrip(t, "Collect", stateRecord[[]user]{State: []user{{"a", 1.5}, {"b", -2}}, NotifyAt: &at})
	roundTrip(t, "FoldFinal", stateRecord[map[string]int]{State: map[string]int{"x": 1, "y": 2}})
	roundTrip(t, "ReduceFinal", stateRecord[int64]{State: -5})
	roundTrip(t, "CountFinal", stateRecord[int]{State: 42})
	roundTrip(t, "MaxFinalFunc", stateRecord[user]{State: user{"max", 9}})
	roundTrip(t, "StatefulFlatMap", stateRecord[[]string]{State: []string{"a", ""}})
	roundTrip(t, "Join", stateRecord[join2State[string, user]]{State: join2State[string, user]{A: []string{"l"}, B: []user{{"r", 1}, {"s", 2}}}})
	roundTrip(t, "Join missing side", stateRecord[join2State[int, int]]{State: join2State[int, int]{A: []int{1}}})
	roundTrip(t, "Join3", stateRecord[join3State[int, string, float64]]{State: join3State[int, string, float64]{A: []int{1}, C: []float64{0.5}}})
	roundTrip(t, "JoinN", stateRecord[[][]string]{State: [][]string{{"a"}, nil, {"b", "c"}}})
}

// TestEveryStatefulStepChecks builds a flow with every stateful operator
// of this package and runs each step's own state check (what the runner
// does before a run).
func TestEveryStatefulStepChecks(t *testing.T) {
	type kv = runnel.KV[string, int]
	flow := runnel.NewDataflow("f")
	s := Input("inp", flow, runneltest.NewSource([]kv{}))
	var outs []runnel.Stream[string]
	str := func(id string, up runnel.Stream[kv]) {
		outs = append(outs, Map(id+"_s", up, func(x kv) string { return x.String() }))
	}
	str("sfm", StatefulFlatMap("sfm", s, func(n int, _ bool, v int) (int, bool, []int) { return n, true, nil }))
	str("sb", StatefulBatch("sb", s, func(c *Context[string, int], n int, _ bool, vs []int) (int, bool) { return n, true }))
	outs = append(outs, Map("collect_s", Collect("collect", s, time.Second, 3), func(x runnel.KV[string, []int]) string { return x.String() }))
	str("fold", FoldFinal("fold", s, func() int { return 0 }, func(a, b int) int { return a + b }))
	str("reduce", ReduceFinal("reduce", s, func(a, b int) int { return a + b }))
	str("count", CountFinal("count", s, func(x kv) string { return x.Key }))
	str("max", MaxFinal("max", s))
	str("min", MinFinal("min", s))
	j := Join("join", s, s, JoinOpts{Insert: JoinInsertProduct})
	outs = append(outs, Map("join_s", j, func(x runnel.KV[string, Joined2[int, int]]) string { return x.String() }))
	j3 := Join3("join3", s, s, s, JoinOpts{})
	outs = append(outs, Map("join3_s", j3, func(x runnel.KV[string, Joined3[int, int, int]]) string { return x.String() }))
	jn := JoinN("joinn", []runnel.Stream[kv]{s, s}, JoinOpts{})
	outs = append(outs, Map("joinn_s", jn, func(x runnel.KV[string, []Option[int]]) string { return x.String() }))
	Output("out", Merge("all", outs...), runneltest.NewSink[string]())
	if err := flow.Validate(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, st := range pubapi.Flow(flow).Steps() {
		if st.State == nil || st.Input || st.Output {
			continue
		}
		n++
		if err := st.State.Check(); err != nil {
			t.Errorf("step %s (%s): %v", st.ID, st.State.Type, err)
		}
	}
	if n != 11 {
		t.Errorf("checked %d stateful steps, want 11", n)
	}
	if err := runneltest.Run(flow, 2); err != nil {
		t.Fatal(err)
	}
}
