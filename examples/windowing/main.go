// Command windowing counts events per user in 30-second event-time
// tumbling windows, over a generated stream in which some events arrive
// late.
//
// Events are generated deterministically: event i happens at i·7s for
// user i mod 3, and every tenth event is delayed, arriving after events
// 40 seconds newer. The event clock waits 10 seconds for out-of-order
// events, so the delayed ones miss their window and are printed as late
// instead of being dropped:
//
//	$ go run ./examples/windowing
//	user0 window 0 [00:00:00, 00:00:30): 2 events
//	...
//	late: user0 event at 00:01:03, watermark 00:01:35
//
// Output is sorted so that it does not depend on scheduling. The flags are
// those of every Runnel program (runnel.Main): -w for workers, -r for
// recovery, and so on; see --help.
package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
	"github.com/runnel-dev/runnel/window"
)

// Event is one generated event.
type Event struct {
	User string
	At   time.Time
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// generate returns n events; every tenth arrives after the next few.
func generate(n int) []Event {
	var evs, delayed []Event
	for i := range n {
		e := Event{User: fmt.Sprint("user", i%3), At: epoch.Add(time.Duration(i*7) * time.Second)}
		if i%10 == 9 {
			delayed = append(delayed, e)
			continue
		}
		evs = append(evs, e)
		// A delayed event arrives once events 40s newer have been seen.
		for len(delayed) > 0 && e.At.Sub(delayed[0].At) >= 40*time.Second {
			evs = append(evs, delayed[0])
			delayed = delayed[1:]
		}
	}
	return append(evs, delayed...)
}

func main() {
	runnel.Main(windowing(stdio.NewSink[string]()),
		runnel.WithUsage("", "Counts events per user in 30-second event-time tumbling windows over a\n"+
			"generated stream in which some events arrive late, and prints the\n"+
			"counts and the late events."),
		runnel.WithExample("Run it on three workers: the output is the same.", "windowing -w 3"))
}

// line is one line of output, with what it is sorted by.
type line struct {
	Late bool // late events come after every window
	User string
	ID   int64
	Text string
}

// windowing builds the flow: counts per user and window, and late events,
// gathered on one worker and written to out sorted, so that the output does
// not depend on the worker count.
func windowing(out runnel.Sink[string]) *runnel.Dataflow {
	flow := runnel.NewDataflow("windowing")
	events := op.Input("events", flow, runneltest.NewSource(generate(40), runneltest.BatchSize(4)))
	clock := window.EventClock(func(e Event) time.Time { return e.At }, 10*time.Second)
	windower := window.Tumbling(30*time.Second, epoch)
	counts := window.CountWindow("count", events, clock, windower, func(e Event) string { return e.User })

	windows := op.Map("format", counts.Down, func(c runnel.KV[string, window.Result[int]]) line {
		start, end, _ := windower.Bounds(c.Value.ID)
		return line{User: c.Key, ID: c.Value.ID, Text: fmt.Sprintf("%s window %d [%s, %s): %d events",
			c.Key, c.Value.ID, start.Format(time.TimeOnly), end.Format(time.TimeOnly), c.Value.Value)}
	})
	late := op.Map("format_late", counts.Late, func(l runnel.KV[string, window.Late[Event]]) line {
		return line{Late: true, User: l.Key, Text: fmt.Sprintf("late: %s event at %s, watermark %s", l.Key,
			l.Value.Time.Format(time.TimeOnly), l.Value.Watermark.Format(time.TimeOnly))}
	})
	lines := op.Merge("lines", windows, late)

	all := op.KeyOn("gather_key", lines, func(line) string { return "ALL" })
	gathered := op.FoldFinal("gather", all, func() []line { return nil },
		func(acc []line, l line) []line { return append(acc, l) })
	sorted := op.FlatMap("sort", gathered, func(g runnel.KV[string, []line]) []string {
		slices.SortFunc(g.Value, func(a, b line) int {
			return cmp.Or(cmpBool(a.Late, b.Late), cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Text, b.Text))
		})
		texts := make([]string, len(g.Value))
		for i, l := range g.Value {
			texts[i] = l.Text
		}
		return texts
	})
	op.Output("out", sorted, out)
	return flow
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
