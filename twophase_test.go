package runnel_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// txnSystem is an external system with transactions, standing in for
// Kafka: prepared transactions are durable but invisible until committed.
// It outlives runs, as a broker outlives the processes that write to it.
type txnSystem struct {
	mu        sync.Mutex
	visible   []string
	prepared  map[string][]string // by transaction id
	committed map[string]bool
	commits   []runnel.Epoch // epochs passed to Committed, in call order per partition
	failOn    string         // "precommit" or "commit": fail that call
}

func newTxnSystem() *txnSystem {
	return &txnSystem{prepared: map[string][]string{}, committed: map[string]bool{}}
}

// txnState is what a partition stores with a snapshot: the transactions it
// prepared and has not yet seen committed, and the worker that owns them.
type txnState struct {
	Worker  int
	Pending []string
}

type txnSink struct{ sys *txnSystem }

func (s txnSink) Build(bc runnel.BuildContext, resume []txnState) (runnel.TwoPhaseSinkPartition[string, txnState], error) {
	worker := bc.Worker
	s.sys.mu.Lock()
	defer s.sys.mu.Unlock()
	owned := map[int]bool{worker: true}
	for _, st := range resume {
		owned[st.Worker] = true
		for _, id := range st.Pending { // finish what the durable snapshot names
			if s.sys.committed[id] {
				continue
			}
			recs, ok := s.sys.prepared[id]
			if !ok {
				return nil, fmt.Errorf("transaction %s is gone: its output is lost", id)
			}
			s.sys.visible = append(s.sys.visible, recs...)
			s.sys.committed[id] = true
			delete(s.sys.prepared, id)
		}
	}
	for id := range s.sys.prepared { // abort the rest of the old workers' work: it is replayed
		var w int
		var e runnel.Epoch
		fmt.Sscanf(id, "w%d-e%d", &w, &e)
		if owned[w] {
			delete(s.sys.prepared, id)
		}
	}
	return &txnPart{sys: s.sys, worker: worker}, nil
}

type txnPart struct {
	sys     *txnSystem
	worker  int
	open    []string
	pending map[runnel.Epoch]string
}

func (p *txnPart) WriteBatch(items []string) error {
	p.open = append(p.open, items...)
	return nil
}

func (p *txnPart) PreCommit(e runnel.Epoch) (txnState, error) {
	p.sys.mu.Lock()
	defer p.sys.mu.Unlock()
	if p.sys.failOn == "precommit" {
		return txnState{}, errDisk
	}
	if p.pending == nil {
		p.pending = map[runnel.Epoch]string{}
	}
	if len(p.open) > 0 {
		id := fmt.Sprintf("w%d-e%d", p.worker, e)
		p.sys.prepared[id] = p.open
		p.open = nil
		p.pending[e] = id
	}
	st := txnState{Worker: p.worker}
	for _, e := range slices.Sorted(mapKeys(p.pending)) {
		st.Pending = append(st.Pending, p.pending[e])
	}
	return st, nil
}

func (p *txnPart) Committed(e runnel.Epoch) error {
	p.sys.mu.Lock()
	defer p.sys.mu.Unlock()
	if p.sys.failOn == "commit" {
		return errDisk
	}
	p.sys.commits = append(p.sys.commits, e)
	for _, pe := range slices.Sorted(mapKeys(p.pending)) {
		if pe > e {
			break
		}
		id := p.pending[pe]
		p.sys.visible = append(p.sys.visible, p.sys.prepared[id]...)
		p.sys.committed[id] = true
		delete(p.sys.prepared, id)
		delete(p.pending, pe)
	}
	return nil
}

func (p *txnPart) Close() error { return nil } // a close is a crash: nothing is committed

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func txnFlow(n, keys int, sys *txnSystem, opts ...runneltest.SourceOpt) *runnel.Dataflow {
	flow := runnel.NewDataflow("txn")
	s := op.Input("inp", flow, runneltest.NewSource(seq(n), opts...))
	k := op.KeyOn("key", s, func(x int) int { return x % keys })
	c := op.StatefulMap("count", k, func(c int, _ bool, _ int) (int, bool, int) { return c + 1, true, c + 1 })
	l := op.Map("fmt", c, func(kv runnel.KV[int, int]) string { return fmt.Sprintf("%d %d", kv.Key, kv.Value) })
	op.Output("out", l, runnel.TwoPhaseOutput[string, txnState](txnSink{sys}))
	return flow
}

// linesByKey groups lines by their key, keeping their order within a key.
func linesByKey(lines []string) map[string][]string {
	out := map[string][]string{}
	for _, l := range lines {
		k, _, _ := strings.Cut(l, " ")
		out[k] = append(out[k], l)
	}
	return out
}

// TestTwoPhaseSinkExactlyOnce crashes flows writing to a two-phase sink
// on 1-3 workers, resumes them (on another worker count, so states of old
// workers are handed over), and checks that what became visible equals an
// uninterrupted run's: no duplicate, no gap, nothing left prepared.
func TestTwoPhaseSinkExactlyOnce(t *testing.T) {
	const n, keys = 400, 5
	clean := newTxnSystem()
	if err := runneltest.Run(txnFlow(n, keys, clean), 2); err != nil {
		t.Fatal(err)
	}
	want := linesByKey(clean.visible)
	if len(clean.visible) != n {
		t.Fatalf("uninterrupted run made %d visible lines, want %d", len(clean.visible), n)
	}
	for _, tc := range []struct{ first, second int }{{1, 1}, {2, 2}, {3, 3}, {3, 1}, {1, 3}, {3, 2}} {
		t.Run(fmt.Sprintf("w%d-w%d", tc.first, tc.second), func(t *testing.T) {
			sys := newTxnSystem()
			dir := initDir(t, 2)
			flow := txnFlow(n, keys, sys, runneltest.BatchSize(4), runneltest.Pace(time.Millisecond), runneltest.FailAt(n*2/3))
			if err := run(t, flow, runneltest.Config(tc.first, 3*time.Millisecond, dir)); !errors.Is(err, runneltest.ErrCrash) {
				t.Fatalf("first run: %v", err)
			}
			sys.mu.Lock()
			before := len(sys.visible)
			sys.mu.Unlock()
			if err := run(t, txnFlow(n, keys, sys, runneltest.BatchSize(4)), runneltest.Config(tc.second, 3*time.Millisecond, dir)); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if diff := cmp.Diff(want, linesByKey(sys.visible)); diff != "" {
				t.Errorf("visible output (-uninterrupted +crashed and resumed; %d lines visible after the crash):\n%s", before, diff)
			}
			if len(sys.prepared) != 0 {
				t.Errorf("transactions left prepared: %v", slices.Sorted(mapKeys(sys.prepared)))
			}
		})
	}
}

// TestTwoPhaseSinkWithoutRecovery: without -r, PreCommit and Committed are
// still called at every barrier, so everything becomes visible once.
func TestTwoPhaseSinkWithoutRecovery(t *testing.T) {
	sys := newTxnSystem()
	if err := runneltest.Run(txnFlow(50, 3, sys, runneltest.BatchSize(5), runneltest.Pace(time.Millisecond)), 2); err != nil {
		t.Fatal(err)
	}
	if len(sys.visible) != 50 || len(sys.prepared) != 0 {
		t.Errorf("visible %d, prepared %d; want 50 and 0", len(sys.visible), len(sys.prepared))
	}
}

// TestTwoPhaseSinkErrors: a failed pre-commit or commit stops the run,
// naming the output step and the epoch.
func TestTwoPhaseSinkErrors(t *testing.T) {
	for _, failOn := range []string{"precommit", "commit"} {
		t.Run(failOn, func(t *testing.T) {
			sys := newTxnSystem()
			sys.failOn = failOn
			err := run(t, txnFlow(20, 2, sys), runneltest.Config(1, time.Hour, initDir(t, 1)))
			want := map[string]string{"precommit": "pre-commit of epoch 1", "commit": "commit of epoch 1"}[failOn]
			if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "step txn.out") || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want %q at step txn.out", err, want)
			}
		})
	}
}
