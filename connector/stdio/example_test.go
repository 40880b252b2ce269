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
	op.Output("out", keyed, stdio.NewSink[runnel.KV[int, string]]())
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	// Output:
	// (5, 'to be')
	// (6, 'or not')
}
