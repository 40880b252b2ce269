package engine

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests drive workers by hand, with no goroutines: the test decides
// when each worker steps, when its clock moves, and when messages arrive.

type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time { return c.now }

// At is never called: these tests step workers by hand.
func (c *manualClock) At(time.Time) <-chan time.Time { panic("manualClock.At") }

// queueTransport holds sent messages until the test delivers them.
type queueTransport struct {
	queues map[int][]Message
	out    map[int]int64
}

func newQueueTransport() *queueTransport {
	return &queueTransport{queues: map[int][]Message{}, out: map[int]int64{}}
}

func (q *queueTransport) Send(to int, m Message) {
	q.queues[to] = append(q.queues[to], m)
	q.out[m.From] += int64(m.Len)
}
func (q *queueTransport) Release(from, n int)     { q.out[from] -= int64(n) }
func (q *queueTransport) Hold(w, n int)           { q.out[w] += int64(n) }
func (q *queueTransport) Outstanding(w int) int64 { return q.out[w] }

func (q *queueTransport) deliver(t *testing.T, w *Worker) {
	t.Helper()
	msgs := q.queues[w.Index]
	q.queues[w.Index] = nil
	if err := w.Deliver(msgs); err != nil {
		t.Fatal(err)
	}
}

// feed is a dynamic source whose partition returns what the test queued.
type feed struct {
	queued [][]int
	ended  bool
}

func (f *feed) NextBatch() ([]int, error) {
	if len(f.queued) == 0 {
		if f.ended {
			return nil, io.EOF
		}
		return nil, nil
	}
	b := f.queued[0]
	f.queued = f.queued[1:]
	return b, nil
}
func (f *feed) NextAwake() time.Time { return time.Time{} }
func (f *feed) Close() error         { return nil }

type feeds map[int]*feed

func (fs feeds) Build(bc BuildContext) (SourcePartition[int], error) {
	return fs[bc.Worker], nil
}

// collector is a terminal stateful node that records, at each aligned
// barrier, the items it has seen so far.
type collector struct {
	seen     []int
	at       map[Epoch][]int
	eof      bool
	worker   int
	barriers []Epoch
}

func (c *collector) OnBarrier(e Epoch) {
	c.at[e] = slices.Sorted(slices.Values(c.seen))
	c.barriers = append(c.barriers, e)
}
func (c *collector) OnEOF() { c.eof = true }

type harness struct {
	clock   *manualClock
	tr      *queueTransport
	workers []*Worker
	cols    []*collector
	feeds   feeds
	done    []Epoch
}

func (h *harness) EpochDone(w int, e Epoch, rows []Row) { h.done = append(h.done, e) }
func (h *harness) Done(w int, last Epoch)               {}

func newHarness(t *testing.T, n int) *harness {
	h := &harness{clock: &manualClock{now: time.Unix(1000, 0)}, tr: newQueueTransport(), feeds: feeds{}}
	for i := range n {
		h.feeds[i] = &feed{}
		w := NewWorker(Config{Index: i, Workers: n, Clock: h.clock, Transport: h.tr, Committer: h,
			EpochInterval: 10 * time.Second, StartEpoch: 1})
		p := NewProgram()
		must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
			return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](h.feeds))
		}))
		c := &collector{at: map[Epoch][]int{}, worker: i}
		h.cols = append(h.cols, c)
		must(t, w.AddStep(p, 1, "f.collect", []Port{{0, 0}}, true, func(b *Builder) error {
			g := b.NewGate(c)
			Connect(b, g, 0, func(x int) int { return x % n }, func(batch []int) { c.seen = append(c.seen, batch...) })
			return nil
		}))
		h.workers = append(h.workers, w)
	}
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// step steps a worker after moving the clock by 1ms, past the cool-down
// that follows an empty poll.
func (h *harness) step(t *testing.T, w *Worker) {
	t.Helper()
	h.clock.now = h.clock.now.Add(time.Millisecond)
	if _, err := w.Step(); err != nil {
		t.Fatal(err)
	}
}

// TestBarrierAlignmentSkewedWorkers shows that a stateful step's state at
// barrier e holds exactly the items of epochs <= e, when one worker runs
// two epochs ahead of the other and its later items arrive first.
func TestBarrierAlignmentSkewedWorkers(t *testing.T) {
	h := newHarness(t, 2)
	w0, w1 := h.workers[0], h.workers[1]
	h.step(t, w0)
	h.step(t, w1) // both start epoch 1

	// Epoch 1: worker 0 reads 1,2; worker 1 reads 11.
	h.feeds[0].queued = [][]int{{1, 2}}
	h.feeds[1].queued = [][]int{{11}}
	h.step(t, w0)
	h.step(t, w1)

	// Worker 0 alone moves on: it closes epoch 1, reads 3,4 in epoch 2,
	// closes epoch 2, and reads 5,6 in epoch 3.
	h.clock.now = h.clock.now.Add(10 * time.Second)
	h.step(t, w0)
	h.feeds[0].queued = [][]int{{3, 4}}
	h.step(t, w0)
	h.clock.now = h.clock.now.Add(10 * time.Second)
	h.step(t, w0)
	h.feeds[0].queued = [][]int{{5, 6}}
	h.step(t, w0)

	// Worker 1 gets all of that before it closes its own epoch 1: the
	// items of epochs 2 and 3 from worker 0 must wait.
	h.tr.deliver(t, w1)
	if got := h.cols[1].barriers; len(got) != 0 {
		t.Fatalf("worker 1 aligned %v before its own barrier", got)
	}
	if diff := cmp.Diff([]int{11, 1}, h.cols[1].seen); diff != "" {
		t.Fatalf("worker 1 handled items of a later epoch before aligning epoch 1 (-want +got):\n%s", diff)
	}
	// Worker 0's own collector also waits for worker 1's barrier 1.
	if got := h.cols[0].barriers; len(got) != 0 {
		t.Fatalf("worker 0 aligned %v without worker 1's barrier", got)
	}

	// Worker 1 closes epoch 1, then epoch 2 ten seconds later.
	h.step(t, w1)
	h.clock.now = h.clock.now.Add(10 * time.Second)
	h.step(t, w1)
	h.tr.deliver(t, w0)
	h.tr.deliver(t, w1)
	want := map[int]map[Epoch][]int{
		0: {1: {2}, 2: {2, 4}},
		1: {1: {1, 11}, 2: {1, 3, 11}},
	}
	for i, c := range h.cols {
		if diff := cmp.Diff(want[i], c.at); diff != "" {
			t.Errorf("worker %d state at barriers (-want +got):\n%s", i, diff)
		}
	}

	// End of input on both: the last epoch closes, then EOF.
	h.feeds[0].ended, h.feeds[1].ended = true, true
	h.step(t, w0)
	h.step(t, w1)
	h.tr.deliver(t, w0)
	h.tr.deliver(t, w1)
	for i, c := range h.cols {
		if !c.eof || !h.workers[i].Done() {
			t.Errorf("worker %d did not end: eof=%v done=%v", i, c.eof, h.workers[i].Done())
		}
		if got := c.at[3]; !slices.Contains(got, 5) && i == 1 || !slices.Contains(got, 6) && i == 0 {
			t.Errorf("worker %d state at barrier 3 = %v, missing epoch 3's items", i, got)
		}
	}
	slices.Sort(h.done)
	if diff := cmp.Diff([]Epoch{1, 1, 2, 2, 3, 3, 4, 4}, h.done); diff != "" {
		t.Errorf("epochs reported done (-want +got):\n%s", diff)
	}
}

// TestStopAtClosesSameEpoch shows the stop protocol: a paused worker
// behind the stop epoch closes every epoch up to it, and nothing read
// after the stop is emitted.
func TestStopAtClosesSameEpoch(t *testing.T) {
	h := newHarness(t, 2)
	w0, w1 := h.workers[0], h.workers[1]
	h.step(t, w0)
	h.step(t, w1)
	h.feeds[0].queued = [][]int{{2}}
	h.step(t, w0)
	h.clock.now = h.clock.now.Add(10 * time.Second)
	h.step(t, w0) // worker 0 in epoch 2, worker 1 still in epoch 1
	w0.Pause()
	w1.Pause()
	h.feeds[1].queued = [][]int{{7}} // a paused worker must not read this
	stop := max(w0.Epoch(), w1.Epoch())
	w0.StopAt(stop)
	w1.StopAt(stop)
	for range 3 {
		h.step(t, w0)
		h.step(t, w1)
		h.tr.deliver(t, w0)
		h.tr.deliver(t, w1)
	}
	if !w0.Stopped() || !w1.Stopped() {
		t.Fatalf("stopped: %v %v", w0.Stopped(), w1.Stopped())
	}
	for i, c := range h.cols {
		for _, x := range c.seen {
			if x == 7 {
				t.Errorf("worker %d handled an item read after the stop", i)
			}
		}
		if got := c.barriers; !slices.Equal(got, []Epoch{1, 2}) {
			t.Errorf("worker %d barriers = %v, want [1 2]", i, got)
		}
	}
}

// TestPanicNamesStep shows a panic in a node surfaces as a StepError with
// the step id.
func TestPanicNamesStep(t *testing.T) {
	clock := &manualClock{now: time.Unix(0, 0)}
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(), EpochInterval: time.Second})
	p := NewProgram()
	f := &feed{queued: [][]int{{1}}}
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](feeds{0: f}))
	}))
	must(t, w.AddStep(p, 1, "f.boom", []Port{{0, 0}}, true, func(b *Builder) error {
		g := b.NewGate(&collector{at: map[Epoch][]int{}})
		Connect(b, g, 0, nil, func([]int) { panic("kaboom") })
		return nil
	}))
	_, err := w.Step()
	var se *StepError
	if !asStepError(err, &se) || se.Step != "f.boom" {
		t.Fatalf("err = %v, want a StepError for f.boom", err)
	}
	if got := fmt.Sprint(err); !contains(got, "kaboom") {
		t.Errorf("error %q does not carry the panic value", got)
	}
}

// TestExchangeBuffersAreLazy: an exchange allocates a destination's batch
// buffer on the first item for it, not when the flow is built, so building
// W workers does not cost W*W full batches (issue 8 item 12: the 3-item
// tutorial flow took 4.5 GB at -w 1000). With 64 workers, eager buffers of
// BatchSize ints were 64*64*1024*8 bytes = 32 MiB.
func TestExchangeBuffersAreLazy(t *testing.T) {
	const n = 64
	eager := uint64(n * n * BatchSize * 8)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := newHarness(t, n)
	runtime.ReadMemStats(&after)
	if built := after.TotalAlloc - before.TotalAlloc; built > eager/8 {
		t.Errorf("building %d workers allocated %d bytes; eager batch buffers alone would be %d", n, built, eager)
	}

	// Items still arrive, on the right workers, at the first barrier.
	h.feeds[0].queued = [][]int{{1, 2, 3, n + 1}}
	for _, w := range h.workers {
		h.step(t, w)
	}
	for _, w := range h.workers {
		h.tr.deliver(t, w)
		h.step(t, w)
	}
	want := map[int][]int{1: {1, n + 1}, 2: {2}, 3: {3}}
	for i, c := range h.cols {
		if !slices.Equal(slices.Sorted(slices.Values(c.seen)), want[i]) {
			t.Errorf("worker %d saw %v, want %v", i, c.seen, want[i])
		}
	}
}
