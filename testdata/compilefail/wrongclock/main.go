// This program must not compile: the event clock reads int items, the
// stream carries strings. TestCompileErrors builds it.
package main

import (
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

func main() {
	flow := runnel.NewDataflow("f")
	words := op.Input("inp", flow, runneltest.NewSource([]string{"a"}))
	clock := window.EventClock(func(n int) time.Time { return time.Unix(int64(n), 0) }, 0)
	out := window.CountWindow("count", words, clock, window.Tumbling(time.Minute, time.Time{}), func(w string) string { return w })
	op.Output("out", out.Down, runneltest.NewSink[runnel.KV[string, window.Result[int]]]())
	runnel.Main(flow)
}
