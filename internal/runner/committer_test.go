package runner

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/recovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testStore is a real recovery directory in a temporary directory, begun
// for flow "f" on the given worker count.
func testStore(t *testing.T, workers int) (*recovery.Store, recovery.Resume) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	s, err := recovery.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	res, err := s.Begin("f", workers, recovery.MakePlan(nil, map[string]recovery.StepState{"f.s": {Type: "int"}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	return s, res
}

// failRecorder records the cause a committer fails the run with.
type failRecorder struct {
	mu  sync.Mutex
	err error
}

func (f *failRecorder) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *failRecorder) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// waitCommitted waits until the committer has committed epoch e. It only
// waits: how long it takes is not asserted.
func waitCommitted(t *testing.T, c *committer, e engine.Epoch) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); c.committedEpoch() < e; {
		if time.Now().After(deadline) {
			t.Fatalf("epoch %d was not committed (committed: %d)", e, c.committedEpoch())
		}
		time.Sleep(time.Millisecond)
	}
}

// stored reads the state the store would resume from at epoch e.
func stored(t *testing.T, s *recovery.Store, e engine.Epoch) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := s.Load(e, func(step, key string, value []byte) error {
		got[step+"/"+key] = string(value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func row(key, value string) engine.Row {
	return engine.Row{Step: "f.s", Key: key, Value: []byte(value)}
}

// TestCommitterWaitsForEveryWorker: an epoch is written and committed only
// once every worker has reported it, in epoch order, with every worker's
// rows; epochs reported ahead by one worker wait for the others.
func TestCommitterWaitsForEveryWorker(t *testing.T) {
	s, res := testStore(t, 2)
	var f failRecorder
	c := newCommitter(2, res.Epoch, s, res.Execution, 0, func(err error) { f.fail(err) })
	c.start()

	c.EpochDone(0, 1, []engine.Row{row("a", "1")})
	c.EpochDone(0, 2, []engine.Row{row("a", "2")})
	c.EpochDone(0, 3, nil)
	if got := c.committedEpoch(); got != 0 {
		t.Fatalf("committed epoch %d with worker 1 at none", got)
	}
	c.EpochDone(1, 1, []engine.Row{row("b", "1")})
	waitCommitted(t, c, 1)
	if diff := cmp.Diff(map[string]string{"f.s/a": "1", "f.s/b": "1"}, stored(t, s, 2)); diff != "" {
		t.Errorf("state at epoch 1 (-want +got):\n%s", diff)
	}
	c.EpochDone(1, 2, nil)
	c.EpochDone(1, 3, []engine.Row{row("b", "3")})
	waitCommitted(t, c, 3)
	if err := c.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.committedEpoch(); got != 3 {
		t.Errorf("committed %d after close, want 3", got)
	}
	if diff := cmp.Diff(map[string]string{"f.s/a": "2", "f.s/b": "3"}, stored(t, s, 4)); diff != "" {
		t.Errorf("state at epoch 3 (-want +got):\n%s", diff)
	}
	rep, err := s.Report()
	if err != nil {
		t.Fatal(err)
	}
	if rep.ResumeEpoch != 4 {
		t.Errorf("the store resumes at %d, want 4", rep.ResumeEpoch)
	}
	if err := f.get(); err != nil {
		t.Errorf("failed: %v", err)
	}
}

// TestCommitterEndedWorkers: a worker that ended (Done) no longer holds
// epochs back, and once every worker has ended the committer commits the
// highest epoch any of them closed, not beyond.
func TestCommitterEndedWorkers(t *testing.T) {
	s, res := testStore(t, 3)
	c := newCommitter(3, res.Epoch, s, res.Execution, 0, func(error) {})
	c.start()
	c.EpochDone(0, 1, []engine.Row{row("a", "1")})
	c.Done(0, 1) // worker 0 ran out of input after epoch 1
	c.EpochDone(1, 1, nil)
	c.EpochDone(2, 1, nil)
	waitCommitted(t, c, 1)
	c.EpochDone(1, 2, []engine.Row{row("b", "2")})
	c.EpochDone(2, 2, nil)
	waitCommitted(t, c, 2)
	c.Done(1, 2)
	c.Done(2, 2)
	if err := c.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.committedEpoch(); got != 2 {
		t.Errorf("committed %d, want 2 (the last epoch closed)", got)
	}
	if diff := cmp.Diff(map[string]string{"f.s/a": "1", "f.s/b": "2"}, stored(t, s, 3)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

// TestCommitterWriteFailure: a store that cannot write fails the run with
// an error naming the epoch, commits nothing more, and close returns the
// error.
func TestCommitterWriteFailure(t *testing.T) {
	s, res := testStore(t, 1)
	var f failRecorder
	c := newCommitter(1, res.Epoch, s, res.Execution, 0, func(err error) { f.fail(err) })
	c.start()
	c.EpochDone(0, 1, []engine.Row{row("a", "1")})
	waitCommitted(t, c, 1)
	if err := s.Close(); err != nil { // the disk goes away
		t.Fatal(err)
	}
	c.EpochDone(0, 2, []engine.Row{row("a", "2")})
	c.EpochDone(0, 3, []engine.Row{row("a", "3")})
	err := c.close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "epoch 2") {
		t.Fatalf("close: %v, want the write error of epoch 2", err)
	}
	if got := f.get(); !errors.Is(got, err) && (got == nil || got.Error() != err.Error()) {
		t.Errorf("the run was failed with %v, want %v", got, err)
	}
	if got := c.committedEpoch(); got != 1 {
		t.Errorf("committed %d after the failure, want 1", got)
	}
}

// TestCommitterWithoutStore: without a recovery directory the committer
// still tracks the epochs every worker finished (the stop protocol reports
// them), and writes nothing.
func TestCommitterWithoutStore(t *testing.T) {
	c := newCommitter(2, 1, nil, 0, 0, func(error) {})
	c.start()
	c.EpochDone(0, 1, []engine.Row{row("a", "1")})
	c.EpochDone(1, 1, nil)
	c.EpochDone(1, 2, nil)
	waitCommitted(t, c, 1)
	if err := c.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.committedEpoch(); got != 1 {
		t.Errorf("committed %d, want 1", got)
	}
}

// TestCommitterConcurrentWorkers: workers reporting from their own
// goroutines (as in a run) commit every epoch once, in order.
func TestCommitterConcurrentWorkers(t *testing.T) {
	const workers, epochs = 4, 50
	s, res := testStore(t, workers)
	c := newCommitter(workers, res.Epoch, s, res.Execution, 0, func(error) {})
	c.start()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for e := engine.Epoch(1); e <= epochs; e++ {
				c.EpochDone(w, e, []engine.Row{row(string(rune('a'+w)), strings.Repeat("x", int(e)))})
			}
			c.Done(w, epochs)
		})
	}
	wg.Wait()
	if err := c.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.committedEpoch(); got != epochs {
		t.Fatalf("committed %d, want %d", got, epochs)
	}
	got := stored(t, s, epochs+1)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range got {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"f.s/a", "f.s/b", "f.s/c", "f.s/d"}) || got["f.s/c"] != strings.Repeat("x", epochs) {
		t.Errorf("state = %v", got)
	}
}
