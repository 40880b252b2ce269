package op

import (
	"fmt"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Branch divides a stream in two with a predicate: the items for which
// pred returns true go to trues, the others to falses.
//
// It is commonly used for:
//   - routing valid and invalid records to different steps (with Raises or
//     a dead-letter Output on the falses);
//   - splitting a stream by a property before separate processing.
//
// Items keep their order within each output. Branch is stateless: each
// worker splits the items it holds, nothing crosses workers. Either output
// may be left unused.
func Branch[X any](stepID string, up runnel.Stream[X], pred func(X) bool) (trues, falses runnel.Stream[X]) {
	sc := scopeOf(up)
	if sc.Flow == nil {
		return runnel.Stream[X]{}, runnel.Stream[X]{}
	}
	st := &plan.Step{Kind: "branch", Outs: 2}
	st.Build = func(b *engine.Builder) error {
		n := &branchNode[X]{pred: pred}
		n.yes = engine.NewOutlet[X](b, 0)
		n.no = engine.NewOutlet[X](b, 1)
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	if !plan.Add(sc, stepID, st, pubapi.Stream(up)) {
		return pubapi.Broken[X](sc.Flow), pubapi.Broken[X](sc.Flow)
	}
	return pubapi.Out[X](sc.Flow, 0), pubapi.Out[X](sc.Flow, 1)
}

type branchNode[X any] struct {
	pred       func(X) bool
	ybuf, nbuf []X
	yes, no    *engine.Outlet[X]
}

func (n *branchNode[X]) handle(batch []X) {
	for _, x := range batch {
		if n.pred(x) {
			n.ybuf = append(n.ybuf, x)
		} else {
			n.nbuf = append(n.nbuf, x)
		}
	}
	n.yes.Push(n.ybuf)
	n.no.Push(n.nbuf)
	clear(n.ybuf)
	clear(n.nbuf)
	n.ybuf, n.nbuf = n.ybuf[:0], n.nbuf[:0]
}

func (n *branchNode[X]) OnBarrier(e engine.Epoch) { n.yes.Barrier(e); n.no.Barrier(e) }
func (n *branchNode[X]) OnEOF()                   { n.yes.EOF(); n.no.EOF() }

// InspectDebug calls fn with each item, the epoch it belongs to and the
// index of the worker handling it, and passes the items on unchanged.
//
// It is commonly used for: debugging epochs and worker placement (which
// worker holds which key after an exchange, when barriers pass).
//
// Like Inspect, it is an end of the flow (no Output is needed).
//
// The epoch is the interval of input the item was read in, counted from 1
// across runs that share recovery data. Items that an upstream step emits
// at the end of input (a *Final result, say) arrive after the last barrier
// and are reported with the epoch after it; the upstream step's own
// Context.Epoch reports runnel.EOFEpoch for them.
//
// fn runs on every worker at once: it must be safe for concurrent use.
func InspectDebug[X any](stepID string, up runnel.Stream[X], fn func(item X, epoch uint64, worker int)) runnel.Stream[X] {
	st := &plan.Step{Kind: "inspect_debug", Outs: 1, Probe: true}
	st.Build = func(b *engine.Builder) error {
		n := &inspectNode[X]{fn: fn, worker: b.Worker().Index}
		n.out = engine.NewOutlet[X](b, 0)
		n.gate = b.NewGate(n)
		engine.Connect(b, n.gate, 0, nil, n.handle)
		return nil
	}
	return add[X](scopeOf(up), stepID, st, pubapi.Stream(up))
}

type inspectNode[X any] struct {
	fn     func(X, uint64, int)
	worker int
	gate   *engine.Gate
	out    *engine.Outlet[X]
}

func (n *inspectNode[X]) handle(batch []X) {
	e := n.gate.Epoch()
	for _, x := range batch {
		n.fn(x, e, n.worker)
	}
	n.out.Push(batch)
}

func (n *inspectNode[X]) OnBarrier(e engine.Epoch) { n.out.Barrier(e) }
func (n *inspectNode[X]) OnEOF()                   { n.out.EOF() }

// Raises stops the run with an error as soon as any item reaches it. The
// error names the step path and shows the item (as Python's repr would),
// for example:
//
//	step flow.bad (worker 0): item ('k', 'not a number') reached a Raises step
//
// It is commonly used for: the error output of a Branch or of a parsing
// step, when a bad record must stop the flow rather than be dropped. The
// user fixes the cause and re-runs; with recovery, the run resumes from
// the last committed epoch.
//
// Raises is a terminal step: it returns nothing. Like Inspect, it is an
// end of the flow, so a flow needs no Output besides it.
func Raises[X any](stepID string, up runnel.Stream[X]) {
	sc := scopeOf(up)
	if sc.Flow == nil {
		return
	}
	st := &plan.Step{Kind: "raises", Probe: true}
	st.Build = func(b *engine.Builder) error {
		n := &raisesNode[X]{w: b.Worker(), step: b.StepID()}
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	plan.Add(sc, stepID, st, pubapi.Stream(up))
}

type raisesNode[X any] struct {
	w    *engine.Worker
	step string
}

func (n *raisesNode[X]) handle(batch []X) {
	if len(batch) > 0 {
		n.w.Fail(n.step, "", fmt.Errorf("item %s reached a Raises step", plan.Repr(batch[0])))
	}
}

func (n *raisesNode[X]) OnBarrier(engine.Epoch) {}
func (n *raisesNode[X]) OnEOF()                 {}
