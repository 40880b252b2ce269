package window

import (
	"math"
	"time"
)

// Clock decides the time of each item and the watermark of each key: how
// far time has advanced, so that windows ending before it can close.
//
// A Clock is a function, so that Go infers its item type as it infers
// cmp.Compare's in slices.SortFunc: pass SystemClock itself, without
// calling it or naming a type (window.CountWindow("count", s,
// window.SystemClock, ...)), or what EventClock returns. A nil Clock is
// refused when the flow is built.
type Clock[V any] func(*ClockSetup[V])

// ClockSetup is what a Clock fills in to tell a window operator how to
// tell time. Only this package's clocks (SystemClock, EventClock) know
// its fields.
type ClockSetup[V any] struct {
	ts   func(V) time.Time
	wait time.Duration
	kind clockKind
}

// setup returns what the clock says (the zero setup for a nil clock).
func (c Clock[V]) setup() ClockSetup[V] {
	var s ClockSetup[V]
	if c != nil {
		c(&s)
	}
	return s
}

type clockKind uint8

const (
	noClock clockKind = iota
	systemClock
	eventClock
)

// SystemClock is a Clock: pass it as it is (window.SystemClock), and Go
// infers its item type V. It gives each item the time of the worker's
// clock when it is processed, and uses that time as the watermark, so no
// item is ever late. Tests drive it with runnel.WithClock.
//
// It is commonly used for: windows over arrival time, rate limits, "what
// happened in the last minute" dashboards.
func SystemClock[V any](c *ClockSetup[V]) { *c = ClockSetup[V]{kind: systemClock} }

// EventClock reads each item's time with ts. Each key's watermark is the
// largest timestamp seen minus wait, advanced by the system time that has
// elapsed since that timestamp was seen (so windows close even when the
// key gets no more items); it never goes back. At the end of input the
// watermark jumps to the end of time and every window closes.
//
// wait is how long to wait for out-of-order items: an item whose window
// closed more than wait behind the newest item is late. Negative waits are
// treated as zero.
//
// It is commonly used for: windows over the time events happened (logs,
// sensor readings, clicks) rather than when they arrive.
func EventClock[V any](ts func(V) time.Time, wait time.Duration) Clock[V] {
	return func(c *ClockSetup[V]) { *c = ClockSetup[V]{ts: ts, wait: max(wait, 0), kind: eventClock} }
}

// noWatermark marks an event clock that has seen no item yet.
const noWatermark = math.MinInt64

// watermarkAt is the event watermark of st at system time now.
func watermarkAt(wm, seenAt, now int64) int64 {
	if wm == noWatermark {
		return noWatermark
	}
	return satAdd(wm, max(now-seenAt, 0))
}

func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		return satAdd(satAdd(a, math.MaxInt64), 1)
	}
	return satAdd(a, -b)
}

// toTime turns Unix nanoseconds into a UTC time.
func toTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
