package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"
)

// DefaultMaxOutstanding is how many items a worker may have sent and not
// yet seen handled before it stops polling its sources.
const DefaultMaxOutstanding = 64 * BatchSize

// Config configures one worker.
type Config struct {
	Index, Workers int
	Clock          Clock
	Transport      Transport
	Committer      Committer     // nil: nothing is reported
	EpochInterval  time.Duration // > 0
	StartEpoch     Epoch         // first epoch of this execution, >= 1
	// Snapshots says whether stateful steps must track and report their
	// changes (recovery is on).
	Snapshots bool
	// Resume holds the recovered state routed to this worker, by step id,
	// in blocks: a large state is collected block by block and never
	// copied into one slice.
	Resume map[string][][]StateRow
	// Rewrite names the steps whose recovered state was converted by a
	// state migration: every recovered key must be snapshotted again in
	// the first epoch, so that no row of the old type stays behind.
	Rewrite map[string]bool
	// MaxOutstanding overrides DefaultMaxOutstanding when > 0.
	MaxOutstanding int64
	// MaxUncommitted, when > 0, bounds the epochs this worker has closed
	// that are not yet committed (see Committed): while that many are
	// pending it neither closes epochs nor polls its sources, so that a
	// store slower than the epoch interval holds the flow back instead of
	// letting snapshot rows pile up in memory (like Flink's maximum of
	// concurrent checkpoints). 0 means no bound; the caller that sets it
	// must call Committed as epochs become durable.
	MaxUncommitted int
	// Shared is what the workers of one process share (nil: nothing).
	Shared *Shared
	// Stats receives the worker's counters (nil: nothing is counted).
	Stats *Stats
	// Parts holds the partition listing of each partitioned source and
	// sink, by step id, made once per run for every worker.
	Parts map[string]*Parts
	// Context is handed to source and sink build code (nil: Background).
	Context context.Context
	// ManualEpochs hands the closing of epochs to the caller (group mode,
	// where an epoch is a Kafka transaction): the worker closes epoch e only
	// after RequestClose(e), once Drained reports that everything the
	// caller queued for it has been read. EpochInterval is then unused,
	// the inputs never end, and wake-ups wait while the worker is held
	// back by MaxUncommitted, so that nothing is emitted between an
	// epoch's barrier and its commit.
	ManualEpochs bool
	// Drained reports whether this worker's inputs hold nothing more to
	// read (ManualEpochs; nil: always).
	Drained func() bool
	// Remote, when set, carries keyed edges to the processes that own the
	// key groups instead of exchanging items between this process's
	// workers (see ConnectKeyed).
	Remote Remote
}

// Worker runs every step of a dataflow for one worker. It is not safe for
// concurrent use; see the package documentation for the caller's duties.
type Worker struct {
	Index, Workers int

	clock          Clock
	tr             Transport
	committer      Committer
	interval       time.Duration
	start          Epoch
	snapshots      bool
	resume         map[string][][]StateRow
	rewrite        map[string]bool
	maxOut         int64
	maxUncommitted Epoch
	held           bool // the last Step found too many epochs uncommitted
	shared         *Shared
	stats          *Stats

	nextSample time.Time
	parts      map[string]*Parts
	ctx        context.Context

	epoch      Epoch // the open epoch
	epochEnd   time.Time
	inputsDone bool
	stopAt     Epoch // > 0: close this epoch, then read no more
	paused     bool  // neither close epochs nor read input until StopAt

	sources   []source
	receivers []receiver // by edge id
	dirty     []flusher
	wakers    []waker
	gates     []*Gate
	terminals []*Gate
	closers   []closer

	manual   bool
	drained  func() bool
	closeReq Epoch // ManualEpochs: close epochs through this one once drained
	remote   Remote

	reported  Epoch // epochs <= reported were handed to the committer
	committed Epoch // epochs <= committed are durable (see Committed)
	commits   []commitHook
	pending   map[Epoch][]Row
	done      bool
	nextEdge  int

	// reading says which input partition's batch is being pushed through
	// the local steps, so that a failure there can name it.
	reading *origin
	// keyOf reports, by step id, the key a keyed step is handling, so that
	// a panic in its logic can name the key.
	keyOf map[string]func() string
}

// source is an input step's instance.
type source interface {
	// poll reads at most one batch from each ready partition. It reports
	// whether it read anything and when it next wants to be polled.
	poll(now time.Time) (progress bool, next time.Time)
	// peek is when the source next wants to be polled (zero: not before
	// a message or an epoch end).
	peek() (progress bool, next time.Time)
	closeEpoch(e Epoch)
	exhausted() bool
	end()
}

// waker is a node that asked to run at a time (window close, timeouts).
type waker interface {
	nextWake() (time.Time, bool)
	wake(now time.Time)
}

type closer interface {
	close() error
}

// NewWorker makes a worker with no steps; add them with AddStep in the
// same order on every worker.
func NewWorker(c Config) *Worker {
	w := &Worker{
		Index: c.Index, Workers: c.Workers,
		clock: c.Clock, tr: c.Transport, committer: c.Committer,
		interval: c.EpochInterval, start: c.StartEpoch, snapshots: c.Snapshots,
		resume: c.Resume, rewrite: c.Rewrite, maxOut: c.MaxOutstanding, shared: c.Shared, stats: c.Stats,
		parts: c.Parts, ctx: c.Context,
		pending: map[Epoch][]Row{},
		manual:  c.ManualEpochs, drained: c.Drained, remote: c.Remote,
	}
	if w.ctx == nil {
		w.ctx = context.Background()
	}
	if w.start == 0 {
		w.start = 1
	}
	if c.MaxUncommitted > 0 {
		w.maxUncommitted = Epoch(c.MaxUncommitted)
	}
	if w.maxOut <= 0 {
		w.maxOut = DefaultMaxOutstanding
	}
	w.epoch = w.start
	w.reported = w.start - 1
	w.committed = w.start - 1
	if w.stats != nil {
		w.stats.Epoch.Store(w.epoch)
	}
	return w
}

// Port names one output of a step: the step's index in the dataflow and the
// output's index on that step.
type Port struct{ Step, Out int }

// Builder instantiates one step on one worker. Operators use it to reach
// their upstream outlets, create their own, and register gates and inputs.
type Builder struct {
	w        *Worker
	stepIdx  int
	stepID   string
	inputs   []Port
	terminal bool
	outlets  map[Port]any
}

// StepID is the full id of the step being built.
func (b *Builder) StepID() string { return b.stepID }

// Worker is the worker the step is built on.
func (b *Builder) Worker() *Worker { return b.w }

// Snapshots says whether the step must record its state changes.
func (b *Builder) Snapshots() bool { return b.w.snapshots }

// StateRow is one recovered key's encoded state.
type StateRow struct {
	Key   string
	Value []byte
}

// ResumeRows is the recovered state of this step that this worker owns, in
// blocks, in no particular order. Keyed steps with many keys read it once
// while they build their state.
func (b *Builder) ResumeRows() [][]StateRow { return b.w.resume[b.stepID] }

// RewriteResumed says whether this step's recovered state was converted by
// a state migration: the step must report every recovered key as changed in
// the first epoch (StartEpoch), so that all of them are written again.
func (b *Builder) RewriteResumed() bool { return b.w.rewrite[b.stepID] }

// StartEpoch is the first epoch of this execution.
func (b *Builder) StartEpoch() Epoch { return b.w.start }

// Resume is ResumeRows as a map by key, for steps with few keys (the
// partitions of a source or sink).
func (b *Builder) Resume() map[string][]byte {
	m := map[string][]byte{}
	for _, rows := range b.ResumeRows() {
		for _, r := range rows {
			m[r.Key] = r.Value
		}
	}
	return m
}

// Clock is the worker's clock.
func (b *Builder) Clock() Clock { return b.w.clock }

// BuildContext is what the step's source or sink partitions are built with.
func (b *Builder) BuildContext() BuildContext {
	return BuildContext{Context: b.w.ctx, Step: b.stepID, Worker: b.w.Index, Workers: b.w.Workers, Clock: b.w.clock}
}

// Parts is the run's partition listing of the step being built (a
// partitioned source or sink).
func (b *Builder) Parts() (*Parts, error) {
	p, ok := b.w.parts[b.stepID]
	if !ok {
		return nil, fmt.Errorf("the partitions of step %s were not listed for this run", b.stepID)
	}
	return p, nil
}

// Program is the wiring of a dataflow's steps, built once per worker.
type Program struct {
	outlets map[Port]any
}

// NewProgram starts the wiring of a worker's steps.
func NewProgram() *Program { return &Program{outlets: map[Port]any{}} }

// AddStep builds one step. Steps must be added in an order where every
// step's inputs were added before it, the same order on every worker.
// A panic in build (user code building a partition, say) is returned as a
// StepError naming the step, like a panic in an operator.
func (w *Worker) AddStep(p *Program, idx int, id string, inputs []Port, terminal bool, build func(*Builder) error) (err error) {
	b := &Builder{w: w, stepIdx: idx, stepID: id, inputs: inputs, terminal: terminal, outlets: p.outlets}
	defer func() {
		if r := recover(); r != nil {
			err = PanicError(id, w.Index, r)
		}
	}()
	if err := build(b); err != nil {
		var se *StepError
		if errors.As(err, &se) {
			return err
		}
		return &StepError{Step: id, Worker: w.Index, Err: withDropHint(id, err)}
	}
	return nil
}

// PanicError turns a recovered panic value into the StepError of a step:
// the value and its stack, wrapping ErrPanic (or the value itself if it is
// a StepError raised by Fail).
func PanicError(step string, worker int, r any) error {
	if se, ok := r.(*StepError); ok {
		return se
	}
	return &StepError{Step: step, Worker: worker, Err: NewPanicError(r), Stack: debug.Stack()}
}

// NewPanicError turns a recovered panic value into an error that wraps
// ErrPanic (and the value, if it is an error).
func NewPanicError(r any) error { return &panicError{value: r} }

// NewOutlet creates the step's next output.
func NewOutlet[T any](b *Builder, out int) *Outlet[T] {
	o := &Outlet[T]{}
	if st := b.stepStats(); st != nil {
		o.count = st.output(out)
	}
	b.outlets[Port{b.stepIdx, out}] = o
	return o
}

// Connect attaches the step's i-th input to a new Input on gate g. With a
// nil route the edge stays on this worker. Otherwise route names the worker
// that must handle each item, and items cross workers in batches (with one
// worker, no exchange is built).
func Connect[T any](b *Builder, g *Gate, i int, route func(T) int, handle func([]T)) *Input[T] {
	up := b.outlets[b.inputs[i]].(*Outlet[T])
	in := connect(b, g, up, route, handle)
	if st := b.stepStats(); st != nil {
		in.count = st.input(i)
	}
	return in
}

func connect[T any](b *Builder, g *Gate, up *Outlet[T], route func(T) int, handle func([]T)) *Input[T] {
	w := b.w
	if route == nil || w.Workers == 1 {
		in := newInput(g, 1, handle)
		up.targets = append(up.targets, &localChannel[T]{in: in, ch: 0, self: w.Index})
		return in
	}
	in := newInput(g, w.Workers, handle)
	in.free = sharedList[T](w.shared, w.nextEdge)
	// A destination's buffer is allocated by its first item (see
	// exchange.Push): with W workers there are W*W buffers per edge in the
	// process, most of them never used by a small or skewed flow.
	x := &exchange[T]{w: w, edge: w.nextEdge, route: route, bufs: make([][]T, w.Workers), in: in, free: in.free}
	w.nextEdge++
	w.receivers = append(w.receivers, in)
	up.targets = append(up.targets, x)
	return in
}

// AddWaker registers a node that asks to be woken at times.
func (b *Builder) AddWaker(n interface {
	NextWake() (time.Time, bool)
	Wake(now time.Time)
}) {
	b.w.wakers = append(b.w.wakers, wakerFunc{n.NextWake, n.Wake, b.w, b.stepID})
}

// OnClose registers a function that runs once when the worker closes.
func (b *Builder) OnClose(f func() error) {
	b.w.closers = append(b.w.closers, closerFunc{f, b.stepID, b.w.Index})
}

type wakerFunc struct {
	next func() (time.Time, bool)
	run  func(time.Time)
	w    *Worker
	step string
}

func (f wakerFunc) nextWake() (time.Time, bool) { return f.next() }
func (f wakerFunc) wake(now time.Time) {
	defer f.w.guard(f.step)
	f.run(now)
}

type closerFunc struct {
	f      func() error
	step   string
	worker int
}

func (c closerFunc) close() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &StepError{Step: c.step, Worker: c.worker, Err: fmt.Errorf("close: %w", NewPanicError(r)), Stack: debug.Stack()}
		}
	}()
	if err := c.f(); err != nil {
		return fmt.Errorf("step %s: close: %w", c.step, err)
	}
	return nil
}

// Record adds state rows for epoch e, to be reported once e is done here.
func (w *Worker) Record(e Epoch, rows ...Row) {
	w.pending[e] = append(w.pending[e], rows...)
}

// Fail stops the run from inside a node: the worker's Step or Deliver
// returns err, attributed to step (and key, if not empty).
func (w *Worker) Fail(step, key string, err error) {
	panic(w.stepError(step, key, err, nil))
}

// ReportKey registers current, which returns the key the step is handling
// (formatted as in snapshots), so that a panic or Failure in the step's
// logic names it. It is called only when a failure happens.
func (b *Builder) ReportKey(current func() string) {
	if b.w.keyOf == nil {
		b.w.keyOf = map[string]func() string{}
	}
	b.w.keyOf[b.stepID] = current
}

// stepError makes the error of a failure in step, naming the key (or the
// key the step reports) and the input batch being pushed, if any.
func (w *Worker) stepError(step, key string, err error, stack []byte) *StepError {
	se := &StepError{Step: step, Worker: w.Index, Key: key, Err: err, Stack: stack}
	if se.Key == "" {
		if f := w.keyOf[step]; f != nil {
			se.Key = f()
		}
	}
	if r := w.reading; r != nil && r.input != step && r.describe != nil {
		se.Input = r.input
		se.Partition = r.part
		se.Position = r.describe()
	}
	return se
}

// guard turns a panic in a node into a StepError naming the node's step.
// It is deferred per batch, not per item.
func (w *Worker) guard(step string) {
	r := recover()
	if r == nil {
		return
	}
	switch r := r.(type) {
	case *StepError:
		panic(r)
	case Failure:
		panic(w.stepError(step, r.Key, r.Err, nil))
	}
	panic(w.stepError(step, "", &panicError{value: r}, debug.Stack()))
}

// catch converts the StepError panics raised by guard and Fail into errors.
func (w *Worker) catch(err *error) {
	if r := recover(); r != nil {
		se, ok := r.(*StepError)
		if !ok {
			se = &StepError{Step: "engine", Worker: w.Index, Err: &panicError{value: r}, Stack: debug.Stack()}
		}
		*err = se
	}
}

// Stopped reports whether a worker asked to StopAt an epoch has closed it
// and every terminal step has passed its barrier.
func (w *Worker) Stopped() bool { return w.stopAt > 0 && w.reported >= w.stopAt }

// Done reports whether every step on this worker has ended.
func (w *Worker) Done() bool { return w.done }

// Epoch is the worker's open epoch.
func (w *Worker) Epoch() Epoch { return w.epoch }

// Remote is the worker's Remote (Config.Remote), nil in one process.
func (w *Worker) Remote() Remote { return w.remote }

// RequestClose asks a worker with ManualEpochs to close the epochs through
// e, each once its inputs are drained (Config.Drained) and the epochs
// before it are committed as far as MaxUncommitted demands.
func (w *Worker) RequestClose(e Epoch) { w.closeReq = max(w.closeReq, e) }

// StopAt asks the worker to close epoch e (closing the epochs before it at
// once, if it is behind) and then to read no more input. The caller picks e
// at or above every worker's open epoch, so all workers stop at the same
// barrier.
func (w *Worker) StopAt(e Epoch) {
	w.stopAt = e
}

// Pause stops the worker from closing epochs and reading input, so that a
// caller can pick the stop epoch (the highest open epoch of all workers)
// before any worker moves past it. Messages are still handled.
func (w *Worker) Pause() { w.paused = true }

// Deliver handles messages from other workers' exchanges.
func (w *Worker) Deliver(msgs []Message) (err error) {
	defer w.catch(&err)
	for _, m := range msgs {
		w.receivers[m.Edge].receive(m)
	}
	w.flush()
	return nil
}

// Step does one round of work at the clock's now: closes the epoch if it is
// due, polls ready sources (unless too much is in flight), wakes nodes whose
// time has come and flushes exchanges. It reports whether it did anything.
func (w *Worker) Step() (progress bool, err error) {
	defer w.catch(&err)
	now := w.clock.Now()
	if w.epochEnd.IsZero() {
		w.epochEnd = now.Add(w.interval)
	}
	if w.stats != nil {
		w.sample(now)
	}
	if !w.inputsDone {
		if w.stopAt > 0 {
			for w.epoch <= w.stopAt {
				w.closeEpoch()
			}
			// Read no more, and end nothing: the stop barrier is the last
			// event on every edge. Ending the inputs would run end-of-input
			// logic (OnEOF hooks, *Final operators, open windows) and emit
			// results past the committed epoch that the next run would emit
			// again, complete.
			w.inputsDone = true
			progress = true
		} else if w.backlogged() {
			w.held = true
		} else if !w.paused {
			if w.held {
				// The open epoch read nothing while the worker was held
				// back: give it a full interval, or it would close empty
				// at once and hold the worker back again.
				w.held = false
				if !now.Before(w.epochEnd) {
					w.epochEnd = now.Add(w.interval)
				}
			}
			if !w.manual && !now.Before(w.epochEnd) {
				w.closeEpoch()
				w.epochEnd = now.Add(w.interval)
				progress = true
			}
			if !w.backlogged() && w.tr.Outstanding(w.Index) < w.maxOut {
				all := true
				for _, s := range w.sources {
					p, _ := s.poll(now)
					progress = progress || p
					all = all && s.exhausted()
				}
				if all && !w.manual {
					w.closeEpoch()
					w.endInputs()
					progress = true
				}
			}
			if w.manual && w.epoch <= w.closeReq && !w.backlogged() && (w.drained == nil || w.drained()) {
				w.closeEpoch()
				progress = true
			}
		}
	}
	for _, n := range w.wakers {
		if w.stopAt > 0 || w.manual && w.backlogged() {
			// What a wake-up emits would belong past the stop epoch, or
			// (ManualEpochs) to an epoch whose transaction is not open.
			break
		}
		if t, ok := n.nextWake(); ok && !now.Before(t) {
			n.wake(now)
			progress = true
		}
	}
	w.flush()
	return progress, nil
}

func (w *Worker) closeEpoch() {
	for _, s := range w.sources {
		s.closeEpoch(w.epoch)
	}
	w.epoch++
	if w.stats != nil {
		w.stats.Epoch.Store(w.epoch)
		w.stats.EpochsClosed.Add(1)
	}
	w.flush()
}

// endInputs ends every source at the end of input: their EOF flows on, so
// that steps flush what they hold. A stop (StopAt) never comes here.
func (w *Worker) endInputs() {
	w.inputsDone = true
	for _, s := range w.sources {
		s.end()
	}
	w.flush()
}

func (w *Worker) flush() {
	for len(w.dirty) > 0 {
		d := w.dirty
		w.dirty = nil
		for _, x := range d {
			x.flush()
		}
	}
}

// backlogged reports whether the worker has as many closed epochs waiting
// to be committed as Config.MaxUncommitted allows.
func (w *Worker) backlogged() bool {
	return w.maxUncommitted > 0 && w.epoch-1-w.committed >= w.maxUncommitted
}

// Deadline is when the worker next needs a Step even if no message
// arrives: the end of the epoch, a source's next poll, or a node's wake-up.
// ok is false when only a message can give it work.
func (w *Worker) Deadline() (t time.Time, ok bool) {
	consider := func(c time.Time) {
		if !ok || c.Before(t) {
			t, ok = c, true
		}
	}
	if !w.inputsDone && (!w.paused || w.stopAt > 0) && (w.stopAt > 0 || !w.backlogged()) {
		if w.stopAt > 0 || w.epochEnd.IsZero() || w.manual && w.epoch <= w.closeReq && !w.backlogged() {
			return w.clock.Now(), true
		}
		if !w.manual {
			consider(w.epochEnd)
		}
		if w.tr.Outstanding(w.Index) < w.maxOut {
			for _, s := range w.sources {
				if _, next := s.peek(); !next.IsZero() {
					consider(next)
				}
			}
		}
	}
	for _, n := range w.wakers {
		if w.stopAt > 0 || w.manual && w.backlogged() {
			break
		}
		if c, has := n.nextWake(); has {
			consider(c)
		}
	}
	return t, ok
}

// terminalAdvanced reports epochs that every terminal step has now passed.
func (w *Worker) terminalAdvanced() {
	f := EOF
	for _, g := range w.terminals {
		f = min(f, g.aligned)
	}
	if f == EOF {
		last := w.reported
		for e := range w.pending {
			last = max(last, e)
		}
		w.report(last)
		w.done = true
		if w.committer != nil {
			w.committer.Done(w.Index, last)
		}
		return
	}
	w.report(f)
}

func (w *Worker) report(through Epoch) {
	for e := w.reported + 1; e <= through; e++ {
		rows := w.pending[e]
		delete(w.pending, e)
		if w.committer != nil {
			w.committer.EpochDone(w.Index, e, rows)
		}
	}
	w.reported = max(w.reported, through)
}

// Close closes every source partition and sink, once, and reports the
// errors of all of them.
func (w *Worker) Close() error {
	var errs []error
	for _, c := range slices.Backward(w.closers) {
		if err := c.close(); err != nil {
			errs = append(errs, err)
		}
	}
	w.closers = nil
	return errors.Join(errs...)
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
