package engine

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TwoPhaseSinkPartition is one worker's partition of a TwoPhaseSink. See
// "Two-phase sinks" above for the order of calls.
type TwoPhaseSinkPartition[T, S any] interface {
	SinkPartition[T]
	// PreCommit makes everything written so far durable but invisible and
	// returns what is stored with snapshot e to finish it later.
	PreCommit(e Epoch) (S, error)
	// Committed commits everything pre-committed for epochs <= e.
	Committed(e Epoch) error
}

// TwoPhaseSink is an output built once per worker whose writes become
// visible only when the epoch that made them is durable (a transactional
// Kafka producer, say). resume holds the pre-commit states stored by the
// previous execution for this worker (and for old workers that now map to
// it, see the package documentation), ordered by old worker index; it is empty on a fresh start.
type TwoPhaseSink[T, S any] interface {
	Build(bc BuildContext, resume []S) (TwoPhaseSinkPartition[T, S], error)
}

// WorkerStateKey is the recovery key of a per-worker state.
func WorkerStateKey(worker int) string { return "worker-" + strconv.Itoa(worker) }

// WorkerStateOwner is the worker that receives a per-worker state stored
// under key when the run has workers workers.
func WorkerStateOwner(key string, workers int) (int, error) {
	n, err := workerOfKey(key)
	if err != nil {
		return 0, err
	}
	return n % workers, nil
}

func workerOfKey(key string) (int, error) {
	s, ok := strings.CutPrefix(key, "worker-")
	n, err := strconv.Atoi(s)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("recovered key %q is not a worker's state (\"worker-N\")", key)
	}
	return n, nil
}

// commitHook is a node that is told when epochs become durable.
type commitHook struct {
	step string
	key  string
	f    func(Epoch) error
}

type twoPhaseSinkNode[T any] struct {
	w         *Worker
	step      string
	key       string
	p         SinkPartition[T]
	preCommit func(Epoch) ([]byte, error)
	last      []byte
	stale     []string // recovered keys of workers that no longer exist
}

func (n *twoPhaseSinkNode[T]) write(batch []T) {
	if err := n.p.WriteBatch(batch); err != nil {
		n.w.Fail(n.step, "", fmt.Errorf("write: %w", err))
	}
}

func (n *twoPhaseSinkNode[T]) OnBarrier(e Epoch) {
	defer n.w.guard(n.step)
	b, err := n.preCommit(e)
	if err != nil {
		n.w.Fail(n.step, "", fmt.Errorf("pre-commit of epoch %d: %w", e, err))
	}
	if !n.w.snapshots {
		return
	}
	if !bytes.Equal(b, n.last) {
		n.last = b
		n.w.Record(e, Row{Step: n.step, Key: n.key, Value: b})
	}
	for _, k := range n.stale {
		n.w.Record(e, Row{Step: n.step, Key: k, Deleted: true})
	}
	n.stale = nil
}

// OnEOF pre-commits what steps emitted after the last barrier at the end
// of input (final aggregations); it is committed with Committed(EOF) once
// the last epoch is durable. It is not stored: a run that crashes before
// then replays the last epoch and reaches the end again.
func (n *twoPhaseSinkNode[T]) OnEOF() {
	defer n.w.guard(n.step)
	if _, err := n.preCommit(EOF); err != nil {
		n.w.Fail(n.step, "", fmt.Errorf("pre-commit at the end of input: %w", err))
	}
}

// AddTwoPhaseSink builds an output node writing to one two-phase partition
// per worker; items stay on the worker that made them.
func AddTwoPhaseSink[T, S any](b *Builder, sink TwoPhaseSink[T, S], encode func(S) ([]byte, error), decode func([]byte) (S, error)) error {
	resume := b.Resume()
	keys := make([]string, 0, len(resume))
	idx := map[string]int{}
	for k := range resume {
		n, err := workerOfKey(k)
		if err != nil {
			return err
		}
		if n%b.w.Workers != b.w.Index {
			return fmt.Errorf("recovered state %q was routed to worker %d of %d", k, b.w.Index, b.w.Workers)
		}
		idx[k] = n
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int { return idx[x] - idx[y] })
	states := make([]S, 0, len(keys))
	own := WorkerStateKey(b.w.Index)
	n := &twoPhaseSinkNode[T]{w: b.w, step: b.stepID, key: own}
	for _, k := range keys {
		s, err := decode(resume[k])
		if err != nil {
			return fmt.Errorf("%s: recovered pre-commit state does not decode: %w", k, err)
		}
		states = append(states, s)
		if k == own {
			n.last = resume[k]
		} else {
			n.stale = append(n.stale, k)
		}
	}
	if c, ok := any(sink).(interface{ CheckEpochInterval(time.Duration) error }); ok {
		if err := c.CheckEpochInterval(b.w.interval); err != nil {
			return err
		}
	}
	p, err := sink.Build(b.BuildContext(), states)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("Build returned a nil partition")
	}
	b.OnClose(p.Close)
	n.p = p
	n.preCommit = func(e Epoch) ([]byte, error) {
		s, err := p.PreCommit(e)
		if err != nil {
			return nil, err
		}
		return encode(s)
	}
	b.w.commits = append(b.w.commits, commitHook{step: b.stepID, f: p.Committed})
	g := b.NewGate(n)
	Connect(b, g, 0, nil, n.write)
	return nil
}

// Committed tells the worker that every epoch <= e is durable; two-phase
// sinks commit what they pre-committed for them. After the end of input
// the caller passes EOF once the last epoch is durable. The caller calls it on
// the worker's goroutine, with the committed epochs in increasing order
// (a repeat or an older epoch is ignored). An error names the step.
func (w *Worker) Committed(e Epoch) (err error) {
	defer w.catch(&err)
	if e <= w.committed {
		return nil
	}
	w.committed = e
	for _, h := range w.commits {
		w.runCommit(h, e)
	}
	return nil
}

func (w *Worker) runCommit(h commitHook, e Epoch) {
	defer w.guard(h.step)
	if err := h.f(e); err != nil {
		if h.key != "" {
			w.Fail(h.step, h.key, fmt.Errorf("commit of epoch %d, partition %q: %w", e, h.key, err))
		}
		w.Fail(h.step, "", fmt.Errorf("commit of epoch %d: %w", e, err))
	}
}

// HasCommitHooks says whether some step on the worker wants Committed.
func (w *Worker) HasCommitHooks() bool { return len(w.commits) > 0 }
