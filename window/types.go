package window

import (
	"fmt"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/op"
)

// Result is one item a window emitted, with the window's id.
type Result[W any] struct {
	ID    int64
	Value W
}

// String prints the result as a Python 2-tuple, (0, 3), as Bytewax's
// window operators emit (window_id, value).
func (r Result[W]) String() string { return fmt.Sprintf("(%d, %s)", r.ID, plan.Repr(r.Value)) }

// Late is an item that came after the window it belongs to had closed (or
// was about to): the watermark had passed the window's end plus the
// allowed lateness. A sliding-window item late for several windows appears
// once per window.
type Late[V any] struct {
	// ID is the window the item missed; -1 for session windows.
	ID    int64
	Value V
	// Time is the item's time; Watermark is its key's watermark when it
	// came.
	Time, Watermark time.Time
}

// String prints the late item as Late(id, value, time).
func (l Late[V]) String() string {
	return fmt.Sprintf("Late(%d, %s, %s)", l.ID, plan.Repr(l.Value), l.Time.Format(time.RFC3339Nano))
}

// Meta describes a window when it closes.
type Meta struct {
	ID int64
	// Open is inclusive. Close is exclusive for tumbling and sliding
	// windows; for a session it is the time of its last item.
	Open, Close time.Time
	// Merged lists the ids of sessions merged into this one.
	Merged []int64
}

// String prints the metadata as Meta(id, open, close, merged=[...]).
func (m Meta) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Meta(%d, %s, %s", m.ID, m.Open.Format(time.RFC3339Nano), m.Close.Format(time.RFC3339Nano))
	if len(m.Merged) > 0 {
		fmt.Fprintf(&b, ", merged=%v", m.Merged)
	}
	b.WriteByte(')')
	return b.String()
}

// Out holds the three streams of a window operator, all keyed like its
// input and all from the same step.
type Out[K runnel.Key, V, W any] struct {
	// Down carries what windows emit, with the window id.
	Down runnel.Stream[runnel.KV[K, Result[W]]]
	// Late carries the items that were late for their windows.
	Late runnel.Stream[runnel.KV[K, Late[V]]]
	// Meta carries each window's metadata when it closes, after its
	// results.
	Meta runnel.Stream[runnel.KV[K, Meta]]
}

// State is a key's window state, as recovery data stores it: the clock's
// state, the open windows and (in ordered mode) the queue of items waiting
// for the watermark. Times are Unix nanoseconds.
type State[V, S any] struct {
	// Watermark is the event clock's watermark at system time SeenAt
	// (math.MinInt64 before the first item); the system clock keeps none.
	Watermark int64 `cbor:"watermark"`
	SeenAt    int64 `cbor:"seen_at"`
	// Windows are the open windows, by open time.
	Windows []OpenWindow[S] `cbor:"windows"`
	// Queue holds items waiting for the watermark, by time (ordered mode).
	Queue []Pending[V] `cbor:"queue,omitempty"`
}

// OpenWindow is one open window of a key and its logic's state.
type OpenWindow[S any] struct {
	ID     int64   `cbor:"id"`
	Open   int64   `cbor:"open"`
	Close  int64   `cbor:"close"`
	Merged []int64 `cbor:"merged,omitempty"`
	State  S       `cbor:"state"`
}

// Pending is an item waiting, in ordered mode, for the watermark to pass
// its time. Watermark is the key's watermark when it came, which decides
// the windows it was not late for.
type Pending[V any] struct {
	Time      int64 `cbor:"time"`
	Watermark int64 `cbor:"watermark"`
	Value     V     `cbor:"value"`
}

// Option changes how a window operator works. Options are made by the
// functions of this package only.
type Option interface{ apply(*options) }

type options struct {
	lateness int64
	ordered  bool
	join     *op.JoinOpts    // JoinModes, for the joins only
	migrate  *stateMigration // MigrateState
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// AllowedLateness keeps each window open for d of watermark time after
// its end, so that items up to d late still count; only items later than
// that go to the Late stream. The window's results are emitted when it
// finally closes, d after its end. The default is 0 (Bytewax's behaviour).
// A negative d is a build error.
func AllowedLateness(d time.Duration) Option {
	return optionFunc(func(o *options) { o.lateness = int64(d) })
}

// Ordered makes the operator hand each key's items to the windows in
// timestamp order: items that are not late wait in the key's state until
// the watermark passes them, then run oldest first. It matters for logic
// that depends on order (CollectWindow, Window, a FoldWindow folder that
// depends on order, JoinWindow's first, complete and running modes); it
// delays what the logic emits per item by the clock's wait (results at
// close are not delayed: a window closes when the watermark passes its
// end either way). With a SystemClock items already come in time order
// and Ordered changes nothing.
//
// Window, FoldWindow, CollectWindow, JoinWindow and JoinWindowN are
// ordered by default, as Bytewax's window operators are (ordered=True);
// ReduceWindow, CountWindow, MaxWindow and MinWindow take items in arrival
// order, as Bytewax's do. Unordered turns ordering off.
func Ordered() Option { return optionFunc(func(o *options) { o.ordered = true }) }

// Unordered makes the operator hand items to the windows in arrival order,
// as soon as they come (Bytewax's ordered=False): nothing waits in the
// key's state for the watermark, which saves memory and a sort when the
// logic does not depend on the order of items (a sum, a count, a set).
func Unordered() Option { return optionFunc(func(o *options) { o.ordered = false }) }

// Emitter is what Window logic uses to emit items for the window it is
// called for. It is valid only during that call.
type Emitter[W any] struct {
	id, open, close int64
	out             func(id int64, w W)
}

// Emit sends w downstream as a Result of this window.
func (e *Emitter[W]) Emit(w W) { e.out(e.id, w) }

// ID is the window's id.
func (e *Emitter[W]) ID() int64 { return e.id }

// Open is the window's open time (for a session, its first item's time so
// far).
func (e *Emitter[W]) Open() time.Time { return toTime(e.open) }

// Close is the window's close time (for a session, its last item's time so
// far).
func (e *Emitter[W]) Close() time.Time { return toTime(e.close) }

// Logic is the per-window logic of the Window operator. Each window of
// each key has a state S, the zero S when it opens, which must be
// encodable (exported fields; checked before the run starts).
type Logic[V, S, W any] struct {
	// OnValue adds an item to a window and returns the window's new
	// state. Required.
	OnValue func(e *Emitter[W], state S, value V) S
	// OnMerge folds the state of a session that merges into another one
	// (from) into that one's state (into) and returns the result.
	// Required for Session windows.
	OnMerge func(e *Emitter[W], into, from S) S
	// OnClose runs when the window closes, to emit its results. Optional.
	OnClose func(e *Emitter[W], state S)
}
