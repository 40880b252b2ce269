// Package window groups the items of a keyed stream into time windows and
// runs per-window logic on them, as Bytewax's
// bytewax.operators.windowing does.
//
// # Usage
//
// Pick three things and call an operator:
//
//  1. A clock says what time an item has and how far time has advanced
//     (the watermark): SystemClock (the worker's clock when the item is
//     processed) or EventClock (a timestamp read from the item, and a
//     system-time wait for out-of-order items).
//  2. A windower says which windows an item belongs to: Tumbling,
//     Sliding or Session.
//  3. An operator says what to compute per window: Window (general
//     per-window logic), FoldWindow, CollectWindow, ReduceWindow,
//     CountWindow, MaxWindow, MinWindow or JoinWindow.
//
// For example, counts of events per user in 10-second event-time windows:
//
//	clock := window.EventClock(func(e Event) time.Time { return e.At }, 5*time.Second)
//	wdr := window.Tumbling(10*time.Second, time.Unix(0, 0))
//	out := window.CountWindow("count", events, clock, wdr, func(e Event) string { return e.User })
//	op.Output("counts", out.Down, sink)
//	op.Output("late", out.Late, lateSink)
//
// Every operator returns an Out with three streams from one step: Down
// (results, keyed, with the window id), Late (items that came after their
// window closed: never dropped silently) and Meta (each window's id, open
// and close times and merged ids, when it closes).
//
// # Semantics
//
// Windows are per key. The watermark is per key too: an item is late when
// the watermark of its key has passed the end of its window (plus the
// allowed lateness, see AllowedLateness). A window closes, emitting its
// results, once the watermark passes its end; the operator asks the
// worker's clock to wake it then, so windows close without new items. End
// of input closes every window. Window open times are inclusive, close
// times exclusive (a session's close time is its last item's time).
//
// State for a key is freed as soon as none of its windows is open and
// nothing is queued; with an event clock the key keeps its watermark, so
// that later items for it are still recognised as late. With recovery on, each key's window state (State) is
// snapshotted at every epoch that changed it; a resumed run continues the
// same open windows.
//
// See docs/windowing.md for pictures and details.
package window
