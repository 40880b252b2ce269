package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Graph is a flow's steps and the streams between them, for --print-flow,
// the /dataflow endpoint and the web view. Its JSON form is a documented
// interface (docs/operations.md): fields are only ever added.
type Graph struct {
	Flow  string      `json:"flow"`
	Steps []GraphStep `json:"steps"`
	Edges []GraphEdge `json:"edges"`
}

// GraphStep is one step of a Graph.
type GraphStep struct {
	ID       string   `json:"id"`     // full id, "flow.step"
	Name     string   `json:"name"`   // id without the flow prefix
	Kind     string   `json:"kind"`   // operator name, "stateful_map"
	Inputs   []string `json:"inputs"` // full ids of upstream steps, in input order
	Outputs  int      `json:"outputs"`
	Input    bool     `json:"input,omitempty"`    // reads a source
	Output   bool     `json:"output,omitempty"`   // writes a sink
	Stateful bool     `json:"stateful,omitempty"` // keeps recoverable state
}

// GraphEdge is one stream from an output of a step to an input of another.
type GraphEdge struct {
	From     string `json:"from"`
	FromPort int    `json:"from_port"`
	To       string `json:"to"`
	ToPort   int    `json:"to_port"`
}

// Graph describes the flow as it was built, in step order (every step after
// its inputs). A flow with build errors is described as far as it was built.
func (d *Dataflow) Graph() Graph {
	g := Graph{Flow: d.id, Steps: []GraphStep{}, Edges: []GraphEdge{}}
	for _, s := range d.steps {
		gs := GraphStep{ID: s.ID, Name: strings.TrimPrefix(s.ID, d.id+"."), Kind: s.Kind,
			Inputs: []string{}, Outputs: s.Outs, Input: s.Input, Output: s.Output, Stateful: s.State != nil}
		for i, p := range s.Inputs {
			if p.Step < 0 || p.Step >= len(d.steps) {
				continue
			}
			from := d.steps[p.Step].ID
			gs.Inputs = append(gs.Inputs, from)
			g.Edges = append(g.Edges, GraphEdge{From: from, FromPort: p.Out, To: s.ID, ToPort: i})
		}
		g.Steps = append(g.Steps, gs)
	}
	return g
}

// JSON is the graph as indented JSON, ending with a newline.
func (g Graph) JSON() string {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		panic(err) // plain structs of strings and ints always encode
	}
	return string(b) + "\n"
}

// Mermaid is the graph as a Mermaid flowchart, like Bytewax's
// bytewax.visualize: one node per step labelled with its id and operator,
// stateful steps drawn with rounded corners, inputs and outputs as
// parallelograms. Paste it into any Mermaid renderer.
func (g Graph) Mermaid() string {
	var b bytes.Buffer
	b.WriteString("flowchart TD\n")
	fmt.Fprintf(&b, "subgraph %s[\"%s (dataflow)\"]\n", mermaidID(g.Flow), mermaidText(g.Flow))
	ids := map[string]string{}
	for i, s := range g.Steps {
		id := "s" + strconv.Itoa(i)
		ids[s.ID] = id
		label := mermaidText(s.Name) + " (" + mermaidText(s.Kind) + ")"
		switch {
		case s.Input:
			fmt.Fprintf(&b, "%s[/\"%s\"/]\n", id, label)
		case s.Output:
			fmt.Fprintf(&b, "%s[\\\"%s\"\\]\n", id, label)
		case s.Stateful:
			fmt.Fprintf(&b, "%s(\"%s\")\n", id, label)
		default:
			fmt.Fprintf(&b, "%s[\"%s\"]\n", id, label)
		}
	}
	for _, e := range g.Edges {
		if e.FromPort == 0 {
			fmt.Fprintf(&b, "%s --> %s\n", ids[e.From], ids[e.To])
		} else {
			fmt.Fprintf(&b, "%s -- \"out %d\" --> %s\n", ids[e.From], e.FromPort, ids[e.To])
		}
	}
	b.WriteString("end\n")
	return b.String()
}

// DOT is the graph in Graphviz's DOT language (render with `dot -Tsvg`).
func (g Graph) DOT() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "digraph %s {\n", strconv.Quote(g.Flow))
	b.WriteString("  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\"];\n")
	for _, s := range g.Steps {
		attrs := ""
		switch {
		case s.Input || s.Output:
			attrs = ", shape=parallelogram"
		case s.Stateful:
			attrs = ", style=rounded"
		}
		fmt.Fprintf(&b, "  %s [label=%s%s];\n", strconv.Quote(s.ID), strconv.Quote(s.Name+"\n"+s.Kind), attrs)
	}
	for _, e := range g.Edges {
		label := ""
		if e.FromPort != 0 {
			label = fmt.Sprintf(" [label=\"out %d\"]", e.FromPort)
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", strconv.Quote(e.From), strconv.Quote(e.To), label)
	}
	b.WriteString("}\n")
	return b.String()
}

// mermaidID makes a Mermaid node id of arbitrary text.
func mermaidID(s string) string {
	var b strings.Builder
	b.WriteString("flow_")
	for _, r := range s {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// mermaidText escapes text for a quoted Mermaid label.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s)
}
