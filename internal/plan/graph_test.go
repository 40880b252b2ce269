package plan

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/engine"
)

// A flow with a branch (two outputs) and a merge (two inputs) keeps every
// edge with its ports, and the renderings name every step.
func TestGraphPorts(t *testing.T) {
	d := New("f")
	nop := func(*engine.Builder) error { return nil }
	Add(FlowScope(d), "in", &Step{Kind: "input", Outs: 1, Input: true, Build: nop})
	Add(FlowScope(d), "split", &Step{Kind: "branch", Outs: 2, Build: nop}, Out[int](d, 0))
	split := len(d.steps) - 1
	a := Stream[int]{flow: d, port: engine.Port{Step: split, Out: 0}, id: "f.split"}
	b := Stream[int]{flow: d, port: engine.Port{Step: split, Out: 1}, id: "f.split"}
	Add(FlowScope(d), "merge", &Step{Kind: "merge", Outs: 1, Build: nop}, b, a)
	Add(FlowScope(d), "out", &Step{Kind: "output", Output: true, Build: nop}, Out[int](d, 0))
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	g := d.Graph()
	want := []GraphEdge{
		{From: "f.in", To: "f.split"},
		{From: "f.split", FromPort: 1, To: "f.merge"},
		{From: "f.split", To: "f.merge", ToPort: 1},
		{From: "f.merge", To: "f.out"},
	}
	if diff := cmp.Diff(want, g.Edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	var back Graph
	if err := json.Unmarshal([]byte(g.JSON()), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	m, dot := g.Mermaid(), g.DOT()
	for _, s := range []string{"in (input)", "split (branch)", "merge (merge)", "out (output)", `s1 -- "out 1" --> s2`} {
		if !strings.Contains(m, s) {
			t.Errorf("mermaid lacks %q:\n%s", s, m)
		}
	}
	for _, s := range []string{`"f.split" -> "f.merge" [label="out 1"];`, `"f.merge" -> "f.out";`} {
		if !strings.Contains(dot, s) {
			t.Errorf("dot lacks %q:\n%s", s, dot)
		}
	}
}
