package stdio_test

import (
	"fmt"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Read lines (here from a string; stdio.NewSource reads standard input),
// spread them over the workers, and print each item on standard output as
// Python would print it. The source reads on one worker: Redistribute
// spreads the work.
func Example() {
	flow := runnel.NewDataflow("echo")
	lines := op.Input("inp", flow, stdio.NewReaderSource(strings.NewReader("to be\nor not\n")))
	lines = op.Redistribute("spread", lines)
	keyed := op.KeyOn("len", lines, func(s string) int { return len(s) })
	op.OutputTo("out", keyed, stdio.NewSink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	// Output:
	// (5, 'to be')
	// (6, 'or not')
}

// NewWriterSink prints to any writer: a buffer here, a file or a network
// connection elsewhere. Each item is one line, as Python prints it.
func ExampleNewWriterSink() {
	flow := runnel.NewDataflow("to_buffer")
	words := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "a"}))
	counts := op.CountFinal("count", words, func(w string) string { return w })
	var buf strings.Builder
	op.Output("out", counts, stdio.NewWriterSink[runnel.KV[string, int]](&buf))
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	fmt.Print(buf.String())
	// Output:
	// ('a', 2)
	// ('b', 1)
}
