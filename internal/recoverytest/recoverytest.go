// Package recoverytest holds helpers that Runnel's own tests share to
// crash a run at a known point of its recovery data.
package recoverytest

import (
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/recovery"
)

// CommitWatch polls a recovery directory in the background until the
// epoch a next run would resume from reaches a frontier, so that a test
// can crash a run only once something was committed.
type CommitWatch struct {
	done   atomic.Bool
	quit   chan struct{}
	exited chan struct{}
}

// WatchCommitted starts watching dir for a resume epoch of at least front.
// Call Stop when done.
func WatchCommitted(dir string, front uint64) *CommitWatch {
	w := &CommitWatch{quit: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		for {
			if rep, err := recovery.Inspect(dir); err == nil && rep.ResumeEpoch >= front {
				w.done.Store(true)
				return
			}
			select {
			case <-w.quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return w
}

// Done reports whether the frontier has been reached.
func (w *CommitWatch) Done() bool { return w.done.Load() }

// Stop ends the watch and waits for its goroutine.
func (w *CommitWatch) Stop() {
	close(w.quit)
	<-w.exited
}
