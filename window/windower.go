package window

import (
	"fmt"
	"time"
)

// Windower decides which windows an item belongs to. Make one with
// Tumbling, Sliding or Session; an invalid one (a Sliding offset longer
// than its length, say) is recorded as a build error on the flow, with the
// step id, when an operator receives it.
//
// Changing a windower between runs that share recovery data would misread
// the open windows, so its settings are part of the step's recorded state
// type: a run with other settings is refused (see --drop-state).
type Windower struct {
	kind   windowerKind
	length int64 // ns
	offset int64 // ns
	align  int64 // Unix ns
	gap    int64 // ns
	err    string
}

type windowerKind uint8

const (
	noWindower windowerKind = iota
	fixedWindower
	sessionWindower
)

// Tumbling makes back-to-back windows of the given length: each item falls
// in exactly one. Windows are aligned so that one opens at alignTo (use it
// to align windows to the hour, say); window id n covers
// [alignTo + n·length, alignTo + (n+1)·length), open inclusive, close
// exclusive. Ids may be negative for times before alignTo.
//
// It is commonly used for: per-minute counts, hourly reports.
func Tumbling(length time.Duration, alignTo time.Time) Windower {
	w := Sliding(length, length, alignTo)
	w.err = checkLength(length)
	return w
}

// Sliding makes windows of the given length that open every offset: with
// offset < length they overlap, and an item falls in about length/offset
// windows. Window id n covers [alignTo + n·offset, alignTo + n·offset +
// length). An offset longer than the length (which would leave gaps where
// items fall in no window) is a build error, as is a length or offset that
// is not positive.
//
// It is commonly used for: moving averages, "last 5 minutes, every minute".
func Sliding(length, offset time.Duration, alignTo time.Time) Windower {
	w := Windower{kind: fixedWindower, length: int64(length), offset: int64(offset), align: alignTo.UnixNano()}
	switch {
	case length <= 0:
		w.err = checkLength(length)
	case offset <= 0:
		w.err = fmt.Sprintf("sliding window offset %v must be positive", offset)
	case offset > length:
		w.err = fmt.Sprintf("sliding window offset %v is longer than its length %v; there would be gaps between windows where items are lost", offset, length)
	}
	return w
}

func checkLength(length time.Duration) string {
	if length <= 0 {
		return fmt.Sprintf("window length %v must be positive", length)
	}
	return ""
}

// Session makes one window per burst of activity of a key: an item within
// gap of a session (before its first item or after its last) joins it, and
// two sessions that come within gap of each other (an out-of-order item
// can bridge them) merge into the one that opened first. A session closes
// once the watermark is more than gap past its last item. A session's id is
// the Unix-nanosecond time of the item that opened it (Bytewax counts a
// key's sessions 0, 1, 2… instead; sort by id to number them); its Meta
// lists the ids merged into it. A negative gap is a build error.
//
// It is commonly used for: user sessions on a web site, bursts of sensor
// activity.
func Session(gap time.Duration) Windower {
	w := Windower{kind: sessionWindower, gap: int64(gap)}
	if gap < 0 {
		w.err = fmt.Sprintf("session gap %v must not be negative", gap)
	}
	return w
}

// String describes the windower; it is part of the step's state type in
// recovery data.
func (w Windower) String() string {
	switch w.kind {
	case fixedWindower:
		if w.length == w.offset {
			return fmt.Sprintf("tumbling(length=%v, align=%s)", time.Duration(w.length), toTime(w.align).Format(time.RFC3339Nano))
		}
		return fmt.Sprintf("sliding(length=%v, offset=%v, align=%s)", time.Duration(w.length), time.Duration(w.offset), toTime(w.align).Format(time.RFC3339Nano))
	case sessionWindower:
		return fmt.Sprintf("session(gap=%v)", time.Duration(w.gap))
	}
	return "no windower"
}

func (w Windower) check() string {
	if w.kind == noWindower {
		return "the windower is the zero Windower; make one with Tumbling, Sliding or Session"
	}
	return w.err
}

// floorDiv is a/b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// fixedRange is the ids of the fixed windows that contain ts.
func (w *Windower) fixedRange(ts int64) (first, last int64) {
	rel := ts - w.align
	last = floorDiv(rel, w.offset)
	first = floorDiv(rel-w.length, w.offset) + 1
	return first, last
}

// fixedOpen is the open time of fixed window id.
func (w *Windower) fixedOpen(id int64) int64 { return w.align + id*w.offset }

// Bounds returns the start (inclusive) and end (exclusive) of the tumbling
// or sliding window with the given id, as a Result or Late item carries it,
// so that a result can be printed with its window's times without joining
// the Meta stream. ok is false for session windows, whose bounds depend on
// their items (read them from the Meta stream), and for the zero Windower.
func (w Windower) Bounds(id int64) (start, end time.Time, ok bool) {
	if w.kind != fixedWindower || w.err != "" {
		return time.Time{}, time.Time{}, false
	}
	open := w.fixedOpen(id)
	return toTime(open), toTime(open + w.length), true
}
