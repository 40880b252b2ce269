package engine

import (
	"sync"
	"sync/atomic"
)

// BatchSize is the number of items an exchange gathers per destination
// before it sends them.
const BatchSize = 1024

// Target receives a stream's events on one worker: an Input channel, or an
// exchange that routes them to workers.
type Target[T any] interface {
	Push(batch []T)
	Barrier(e Epoch)
	EOF()
}

// Outlet is one output of a node. Push lends the batch to the targets for the
// duration of the call: a target that keeps items copies them, so a node may
// reuse its output buffer as soon as Push returns.
type Outlet[T any] struct {
	targets []Target[T]
	count   *atomic.Int64 // items pushed, when the worker counts
}

// Push sends a batch to every target.
func (o *Outlet[T]) Push(batch []T) {
	if len(batch) == 0 {
		return
	}
	if o.count != nil {
		o.count.Add(int64(len(batch)))
	}
	for _, t := range o.targets {
		t.Push(batch)
	}
}

// Barrier closes epoch e on every target.
func (o *Outlet[T]) Barrier(e Epoch) {
	for _, t := range o.targets {
		t.Barrier(e)
	}
}

// EOF ends every target.
func (o *Outlet[T]) EOF() {
	for _, t := range o.targets {
		t.EOF()
	}
}

// freeList recycles the batches of one exchange edge: the receiving worker
// returns each remote batch once handled, and senders take from it before
// allocating. Without it every batch that crosses workers is garbage, and the
// heap runs far above what flow control keeps in flight.
type freeList[T any] struct {
	mu   sync.Mutex
	free [][]T
}

const maxFree = 64

func (f *freeList[T]) get() []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		return b
	}
	return nil
}

func (f *freeList[T]) put(b []T) {
	if cap(b) != BatchSize {
		return
	}
	clear(b)
	f.mu.Lock()
	if len(f.free) < maxFree {
		f.free = append(f.free, b[:0])
	}
	f.mu.Unlock()
}

// Shared holds what the workers of one process share: the free lists of
// exchange edges. A nil *Shared disables recycling.
type Shared struct {
	lists sync.Map // edge id -> *freeList[T]
}

func sharedList[T any](s *Shared, edge int) *freeList[T] {
	if s == nil {
		return nil
	}
	v, _ := s.lists.LoadOrStore(edge, &freeList[T]{})
	return v.(*freeList[T])
}

type event[T any] struct {
	kind   MsgKind
	epoch  Epoch
	batch  []T
	credit int // items charged to creditor's flow control until handled
	from   int
}

// Input is one input port of a node: one channel from the local upstream,
// or one channel per worker behind an exchange.
type Input[T any] struct {
	g      *Gate
	first  int
	handle func([]T)
	queues [][]event[T]
	free   *freeList[T]  // where handled remote batches go back, if any
	count  *atomic.Int64 // items handled from this input, when the worker counts
}

func newInput[T any](g *Gate, channels int, handle func([]T)) *Input[T] {
	in := &Input[T]{g: g, handle: handle, queues: make([][]event[T], channels)}
	in.first = g.addChannels(in, channels)
	return in
}

func (in *Input[T]) push(ch int, batch []T, from int, credited bool) {
	g := in.g
	gch := in.first + ch
	if g.mustQueue(gch) {
		if !credited {
			batch = append([]T(nil), batch...)
			g.w.tr.Hold(g.w.Index, len(batch))
		}
		in.enqueue(ch, event[T]{kind: MsgData, batch: batch, credit: len(batch), from: from})
		return
	}
	in.call(batch)
	if credited {
		g.w.tr.Release(from, len(batch))
		if in.free != nil {
			in.free.put(batch)
		}
	}
}

func (in *Input[T]) call(batch []T) {
	defer in.g.w.guard(in.g.step)
	if st := in.g.stats; st != nil {
		s := in.g.w.stats
		outer, start := s.begin()
		in.handle(batch)
		s.end(st, len(batch), outer, start)
		if in.count != nil {
			in.count.Add(int64(len(batch)))
		}
		return
	}
	in.handle(batch)
}

func (in *Input[T]) barrier(ch int, e Epoch) {
	g := in.g
	gch := in.first + ch
	if g.mustQueue(gch) {
		in.enqueue(ch, event[T]{kind: MsgBarrier, epoch: e})
		return
	}
	g.pass(gch, e)
}

func (in *Input[T]) enqueue(ch int, ev event[T]) {
	in.queues[ch] = append(in.queues[ch], ev)
	in.g.queued[in.first+ch]++
}

func (in *Input[T]) replay(gch int) {
	g := in.g
	ch := gch - in.first
	q := in.queues[ch]
	i := 0
	for i < len(q) && g.frontier[gch] <= g.aligned {
		ev := q[i]
		q[i] = event[T]{}
		i++
		g.queued[gch]--
		switch ev.kind {
		case MsgData:
			in.call(ev.batch)
			g.w.tr.Release(ev.from, ev.credit)
			if in.free != nil && ev.from != g.w.Index {
				in.free.put(ev.batch)
			}
		case MsgBarrier:
			g.frontier[gch] = ev.epoch
		case MsgEOF:
			g.frontier[gch] = EOF
		}
	}
	if i == len(q) {
		in.queues[ch] = q[:0]
	} else {
		in.queues[ch] = q[i:]
	}
}

// receive handles a message from another worker's exchange.
func (in *Input[T]) receive(m Message) {
	switch m.Kind {
	case MsgData:
		in.push(m.From, m.Batch.([]T), m.From, true)
	case MsgBarrier:
		in.barrier(m.From, m.Epoch)
	case MsgEOF:
		in.barrier(m.From, EOF)
	}
}

// localChannel is the Target for a same-worker edge.
type localChannel[T any] struct {
	in   *Input[T]
	ch   int
	self int
}

func (l *localChannel[T]) Push(batch []T)  { l.in.push(l.ch, batch, l.self, false) }
func (l *localChannel[T]) Barrier(e Epoch) { l.in.barrier(l.ch, e) }
func (l *localChannel[T]) EOF()            { l.in.barrier(l.ch, EOF) }

// exchange routes each item to the worker that owns it, in batches.
type exchange[T any] struct {
	w     *Worker
	edge  int
	route func(T) int
	bufs  [][]T
	in    *Input[T] // this worker's receiving side
	dirty bool
	free  *freeList[T]
}

func (x *exchange[T]) Push(batch []T) {
	for i := range batch {
		d := x.route(batch[i])
		if x.bufs[d] == nil {
			x.bufs[d] = x.newBuf()
		}
		x.bufs[d] = append(x.bufs[d], batch[i])
		if len(x.bufs[d]) >= BatchSize {
			x.send(d)
		}
	}
	if !x.dirty {
		x.dirty = true
		x.w.dirty = append(x.w.dirty, x)
	}
}

func (x *exchange[T]) send(d int) {
	b := x.bufs[d]
	if len(b) == 0 {
		return
	}
	if d == x.w.Index {
		x.in.push(d, b, d, false)
		x.bufs[d] = b[:0]
		return
	}
	x.w.tr.Send(d, Message{Edge: x.edge, From: x.w.Index, Kind: MsgData, Batch: b, Len: len(b)})
	x.bufs[d] = nil // the receiver owns b now; the next item takes a buffer
}

// newBuf returns an empty buffer of capacity BatchSize for one destination,
// reusing one that a receiver handed back when it can.
func (x *exchange[T]) newBuf() []T {
	if x.free != nil {
		if b := x.free.get(); b != nil {
			return b
		}
	}
	return make([]T, 0, BatchSize)
}

// flush sends every partial batch; the worker calls it at the end of each
// step so items do not wait for a full batch.
func (x *exchange[T]) flush() {
	x.dirty = false
	for d := range x.bufs {
		x.send(d)
	}
}

func (x *exchange[T]) Barrier(e Epoch) {
	x.flush()
	for d := range x.bufs {
		if d == x.w.Index {
			x.in.barrier(d, e)
		} else {
			x.w.tr.Send(d, Message{Edge: x.edge, From: x.w.Index, Kind: MsgBarrier, Epoch: e})
		}
	}
}

func (x *exchange[T]) EOF() {
	x.flush()
	for d := range x.bufs {
		if d == x.w.Index {
			x.in.barrier(d, EOF)
		} else {
			x.w.tr.Send(d, Message{Edge: x.edge, From: x.w.Index, Kind: MsgEOF})
		}
	}
}

type flusher interface{ flush() }
type receiver interface{ receive(Message) }
