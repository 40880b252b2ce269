package window_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// TestResumeManyFreedAndOpenKeys resumes a window step of hundreds of keys
// (more than keyed.Table allocates in one chunk), half of them freed
// before the stop (their windows closed: they resume as a clock mark, with
// no entry) and half with a window open, interleaved, on another number
// of workers (1, then 3): every open window resumes with its item and every freed key
// still sends a late item to the late stream.
func TestResumeManyFreedAndOpenKeys(t *testing.T) {
	const keys = 600
	dir := t.TempDir()
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprint("k", i) }
	var evs []tev
	for i := 1; i < keys; i += 2 {
		evs = append(evs, tev{key(i), 5}) // freed by the tick
	}
	evs = append(evs, tev{"tick", 0})
	for i := 0; i < keys; i += 2 {
		evs = append(evs, tev{key(i), 5}) // open at the stop
	}
	start := time.Unix(1000, 0)
	clock := runneltest.NewClock(start)
	flow, _, _ := freedFlow(evs, clock)
	// One worker reads and handles every item, so that the tick frees
	// exactly the keys before it (see keyOn0).
	if err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, dir), runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	more := append([]tev(nil), evs...)
	for i := range keys {
		more = append(more, tev{key(i), 7})
	}
	// The clock reads as the first run ended: the open windows stay open.
	clock = runneltest.NewClock(start.Add(time.Minute))
	flow, down, late := freedFlow(more, clock)
	if err := runnel.Run(context.Background(), flow, runneltest.Config(3, time.Hour, dir), runnel.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		results, lates := forKey(down.Items(), key(i)), forKey(late.Items(), key(i))
		if i%2 == 0 {
			if len(results) != 1 || results[0] != "(0, 2)" || len(lates) != 0 {
				t.Fatalf("open key %s: results %v, late %v; want window 0 with 2 items", key(i), results, lates)
			}
		} else if len(results) != 0 || len(lates) != 1 || !strings.HasPrefix(lates[0], "Late(0, ") {
			t.Fatalf("freed key %s: results %v, late %v; want the item at 7s late", key(i), results, lates)
		}
	}
}
