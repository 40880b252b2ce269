package runneltest_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSourceParts(t *testing.T) {
	flow := runnel.NewDataflow("t")
	sink := runneltest.NewSink[int]()
	op.Output("out", op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 3, 4, 5}, runneltest.Parts(2), runneltest.BatchSize(2))), sink)
	if err := runneltest.Run(flow, 2); err != nil {
		t.Fatal(err)
	}
	got := sink.Items()
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("got %v", got)
	}
}

func TestFailAtOnce(t *testing.T) {
	src := runneltest.NewSource([]int{0, 1, 2, 3}, runneltest.FailAt(2), runneltest.BatchSize(3))
	build := func() (*runnel.Dataflow, *runneltest.Sink[int]) {
		flow := runnel.NewDataflow("t")
		sink := runneltest.NewSink[int]()
		op.Output("out", op.Input("inp", flow, src), sink)
		return flow, sink
	}
	flow, sink := build()
	err := runneltest.Run(flow, 1)
	if !errors.Is(err, runneltest.ErrCrash) || !slices.Equal(sink.Items(), []int{0, 1}) {
		t.Fatalf("first run: %v, %v", err, sink.Items())
	}
	flow, sink = build()
	if err := runneltest.Run(flow, 1); err != nil || len(sink.Items()) != 4 {
		t.Fatalf("second run (the crash fires once): %v, %v", err, sink.Items())
	}
}

// A manual clock moves only when the test says; pass it to runnel.Run with
// runnel.WithClock to drive epochs, timeouts and window closes.
func ExampleClock() {
	clock := runneltest.NewClock(time.Unix(0, 0))
	due := clock.After(time.Minute)
	clock.Advance(30 * time.Second)
	select {
	case <-due:
		fmt.Println("too early")
	default:
		fmt.Println("not yet at", clock.Now().Unix())
	}
	clock.Advance(30 * time.Second)
	fmt.Println("due at", (<-due).Unix())
	// Output:
	// not yet at 30
	// due at 60
}
