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
// Output is sorted so that it does not depend on scheduling.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/runnel-dev/runnel"
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
	if err := run(os.Stdout, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(w io.Writer, workers int) error {
	flow := runnel.NewDataflow("windowing")
	events := op.Input("events", flow, runneltest.NewSource(generate(40), runneltest.BatchSize(4)))
	clock := window.EventClock(func(e Event) time.Time { return e.At }, 10*time.Second)
	out := window.CountWindow("count", events, clock, window.Tumbling(30*time.Second, epoch),
		func(e Event) string { return e.User })

	// Join each count with its window's metadata to print the window's
	// bounds.
	type line struct {
		key  string
		id   int64
		text string
	}
	counts := runneltest.NewSink[runnel.KV[string, window.Result[int]]]()
	metas := runneltest.NewSink[runnel.KV[string, window.Meta]]()
	lates := runneltest.NewSink[runnel.KV[string, window.Late[Event]]]()
	op.Output("counts", out.Down, counts)
	op.Output("meta", out.Meta, metas)
	op.Output("late", out.Late, lates)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(workers, time.Hour, "")); err != nil {
		return err
	}

	bounds := map[[2]any]window.Meta{}
	for _, m := range metas.Items() {
		bounds[[2]any{m.Key, m.Value.ID}] = m.Value
	}
	var lines []line
	for _, c := range counts.Items() {
		m := bounds[[2]any{c.Key, c.Value.ID}]
		lines = append(lines, line{c.Key, c.Value.ID, fmt.Sprintf("%s window %d [%s, %s): %d events",
			c.Key, c.Value.ID, m.Open.Format(time.TimeOnly), m.Close.Format(time.TimeOnly), c.Value.Value)})
	}
	slices.SortFunc(lines, func(a, b line) int {
		if a.key != b.key {
			return cmpString(a.key, b.key)
		}
		return int(a.id - b.id)
	})
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
	var late []string
	for _, l := range lates.Items() {
		late = append(late, fmt.Sprintf("late: %s event at %s, watermark %s", l.Key,
			l.Value.Time.Format(time.TimeOnly), l.Value.Watermark.Format(time.TimeOnly)))
	}
	slices.Sort(late)
	for _, l := range late {
		fmt.Fprintln(w, l)
	}
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
