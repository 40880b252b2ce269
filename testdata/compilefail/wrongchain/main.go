// This program must not compile: Map's function takes an int, the stream
// carries strings. TestCompileErrors builds it.
package main

import (
	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func main() {
	flow := runnel.NewDataflow("f")
	words := op.Input("inp", flow, runneltest.NewSource([]string{"a"}))
	doubled := op.Map("double", words, func(x int) int { return 2 * x })
	op.Output("out", doubled, stdio.NewSink[int]())
	runnel.Main(flow)
}
