package poll_test

import (
	"fmt"
	"io"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/poll"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Poll a gauge every 10 ms; the input ends when the function returns
// io.EOF.
func ExampleNewSource() {
	readings := []float64{20.5, 21, 21.25}
	i := 0
	src := poll.NewSource(10*time.Millisecond, func() ([]float64, error) {
		x := readings[i]
		i++
		if i == len(readings) {
			return []float64{x}, io.EOF
		}
		return []float64{x}, nil
	})
	flow := runnel.NewDataflow("gauge")
	sink := runneltest.NewSink[float64]()
	op.Output("out", op.Input("inp", flow, src), sink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sink.Items())
	// Output:
	// [20.5 21 21.25]
}

// Page through a feed with a cursor. With a recovery directory, the
// cursor is snapshotted at every epoch, so a resumed run asks for the
// pages after the last committed one. A failing call backs off with
// RetryAfter instead of stopping the run.
func ExampleNewResumableSource() {
	feed := []string{"a", "b", "c", "d", "e"}
	failed := false
	src := poll.NewResumableSource(time.Millisecond, func(next int) ([]string, int, error) {
		if next == 2 && !failed {
			failed = true
			return nil, next, poll.RetryAfter(5 * time.Millisecond) // say, HTTP 503
		}
		page := feed[next:min(next+2, len(feed))]
		next += len(page)
		if next == len(feed) {
			return page, next, io.EOF
		}
		return page, next, nil
	})
	flow := runnel.NewDataflow("feed")
	sink := runneltest.NewSink[string]()
	op.Output("out", op.Input("inp", flow, src), sink)
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sink.Items())
	// Output:
	// [a b c d e]
}
