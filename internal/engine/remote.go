package engine

import (
	"fmt"
	"time"
)

// Remote carries the keyed edges of a flow between the processes of a
// consumer group (group mode, internal/group): the sending side hands each
// item, encoded, to the key group that owns its key, wherever that group
// is processed; the receiving side reads what arrived for the key groups
// this process owns. Both are called on the worker's goroutine.
type Remote interface {
	// KeyGroups is the number of key groups of the application.
	KeyGroups() int
	// Send writes one encoded item of step's input to key group kg.
	Send(step string, input, kg int, value []byte) error
	// Take appends to buf what arrived for step's input on worker, in
	// arrival order, and removes it from the queue.
	Take(worker int, step string, input int, buf [][]byte) [][]byte
}

// ConnectKeyed attaches input i of a keyed step to gate g. In one process
// it is Connect with the route hash%workers. With a Remote, the upstream
// items are encoded and sent to their key group (hash%KeyGroups), and the
// input is fed from what this worker receives: a source of its own, whose
// barriers are this worker's epochs.
func ConnectKeyed[T any](b *Builder, g *Gate, i int, hash func(T) uint64, handle func([]T),
	encode func(T) ([]byte, error), decode func([]byte) (T, error)) *Input[T] {
	w := b.w
	if w.remote == nil {
		workers := uint64(w.Workers)
		return Connect(b, g, i, func(t T) int { return int(hash(t) % workers) }, handle)
	}
	up := b.outlets[b.inputs[i]].(*Outlet[T])
	in := newInput(g, 1, handle)
	// The sending half is a terminal node of its own: the worker reports
	// an epoch only once every item of it has been handed to the Remote.
	snd := &remoteSender[T]{w: w, step: b.stepID, input: i, hash: hash, encode: encode, groups: uint64(w.remote.KeyGroups())}
	sg := &Gate{w: w, step: b.stepID, node: snd, terminal: true, aligned: w.start - 1}
	w.gates = append(w.gates, sg)
	w.terminals = append(w.terminals, sg)
	sin := newInput(sg, 1, snd.handle)
	up.targets = append(up.targets, &localChannel[T]{in: sin, ch: 0, self: w.Index})
	w.sources = append(w.sources, &remoteReceiver[T]{w: w, step: b.stepID, input: i, in: in, decode: decode})
	return in
}

type remoteSender[T any] struct {
	w      *Worker
	step   string
	input  int
	hash   func(T) uint64
	encode func(T) ([]byte, error)
	groups uint64
}

func (s *remoteSender[T]) handle(batch []T) {
	for _, t := range batch {
		b, err := s.encode(t)
		if err != nil {
			s.w.Fail(s.step, "", fmt.Errorf("input %d: an item does not encode for the repartition topic: %w", s.input, err))
		}
		if err := s.w.remote.Send(s.step, s.input, int(s.hash(t)%s.groups), b); err != nil {
			s.w.Fail(s.step, "", fmt.Errorf("input %d: repartition: %w", s.input, err))
		}
	}
}

func (s *remoteSender[T]) OnBarrier(Epoch) {}
func (s *remoteSender[T]) OnEOF()          {}

// remoteReceiver feeds a keyed input from the items its worker received.
type remoteReceiver[T any] struct {
	w      *Worker
	step   string
	input  int
	in     *Input[T]
	decode func([]byte) (T, error)
	raw    [][]byte
	items  []T
}

func (r *remoteReceiver[T]) poll(time.Time) (bool, time.Time) {
	r.raw = r.w.remote.Take(r.w.Index, r.step, r.input, r.raw[:0])
	if len(r.raw) == 0 {
		return false, time.Time{}
	}
	r.items = r.items[:0]
	for _, b := range r.raw {
		t, err := r.decode(b)
		if err != nil {
			r.w.Fail(r.step, "", fmt.Errorf("input %d: a record of the repartition topic does not decode: %w", r.input, err))
		}
		r.items = append(r.items, t)
	}
	clear(r.raw)
	r.in.push(0, r.items, r.w.Index, false)
	clear(r.items)
	return true, time.Time{}
}

func (r *remoteReceiver[T]) peek() (bool, time.Time) { return false, time.Time{} }
func (r *remoteReceiver[T]) closeEpoch(e Epoch)      { r.in.barrier(0, e) }
func (r *remoteReceiver[T]) exhausted() bool         { return false }
func (r *remoteReceiver[T]) end()                    { r.in.barrier(0, EOF) }
