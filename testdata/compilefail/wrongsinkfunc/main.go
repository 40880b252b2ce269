// This program must not compile: the sink constructor makes sinks of
// KV[string, int] items, the stream carries KV[string, float64].
// TestCompileErrors builds it.
package main

import (
	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func main() {
	flow := runnel.NewDataflow("f")
	nums := op.Input("inp", flow, runneltest.NewSource([]float64{1.5}))
	kvFloatStream := op.KeyOn("key", nums, func(float64) string { return "ALL" })
	op.OutputTo("out", kvFloatStream, stdio.NewSink[runnel.KV[string, int]])
	runnel.Main(flow)
}
