package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
)

// SessionConfig configures a Session.
type SessionConfig struct {
	Workers int
	Clock   Clock
	// Context is handed to source and sink build code (it carries the
	// group member, see internal/group.FromContext).
	Context context.Context
	// Resume is the recovered state of each worker, by step id.
	Resume []map[string][]engine.StateRow
	// Remote carries the keyed edges between processes.
	Remote engine.Remote
	// Drained reports whether everything queued for a worker was read.
	Drained func(worker int) bool
	// MaxOutstanding overrides the engine's flow-control limit.
	MaxOutstanding int64
	// EpochInterval is how long the caller's epochs last, for the checks
	// of sinks (the caller closes them).
	EpochInterval time.Duration
	// Stats, when set, receive the counters of worker i (Stats[i]). The
	// same Stats may serve the sessions of one flow one after the other,
	// so that counters served on /metrics keep growing across them.
	Stats []*engine.Stats
}

// Session is one build of a flow's workers whose epochs the caller
// drives (engine.Config.ManualEpochs): group mode builds one per
// assignment of partitions, asks it to close an epoch, waits for the
// epoch's state changes, commits them with its Kafka transaction, and
// then lets the workers go on (Committed). Stop tears it down.
type Session struct {
	workers []*engine.Worker
	tr      *transport
	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup
	clock   Clock

	closeReq engine.Epoch // guarded by mu
	durable  engine.Epoch // guarded by mu
	mu       sync.Mutex
	frontier []engine.Epoch
	rows     []engine.Row
	reported chan struct{} // capacity 1: a worker reported an epoch
	errs     []error
}

// StartSession builds every worker of flow and starts their goroutines.
// Epoch 1 is open; nothing closes until Close.
func StartSession(flow *plan.Dataflow, c SessionConfig) (s *Session, err error) {
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	limit := c.MaxOutstanding
	if limit <= 0 {
		limit = engine.DefaultMaxOutstanding
	}
	ctx, cancel := context.WithCancelCause(c.Context)
	s = &Session{tr: newTransport(c.Workers, limit), ctx: ctx, cancel: cancel, clock: c.Clock,
		frontier: make([]engine.Epoch, c.Workers), reported: make(chan struct{}, 1), errs: make([]error, c.Workers)}
	parts, err := listParts(ctx, flow)
	if err != nil {
		cancel(err)
		return nil, err
	}
	shared := &engine.Shared{}
	for i := range c.Workers {
		var resume map[string][][]engine.StateRow
		if i < len(c.Resume) {
			resume = make(map[string][][]engine.StateRow, len(c.Resume[i]))
			for step, rows := range c.Resume[i] {
				resume[step] = [][]engine.StateRow{rows}
			}
		}
		var stats *engine.Stats
		if i < len(c.Stats) {
			stats = c.Stats[i]
		}
		var drained func() bool
		if c.Drained != nil {
			drained = func() bool { return c.Drained(i) }
		}
		w := engine.NewWorker(engine.Config{
			Index: i, Workers: c.Workers, Clock: c.Clock, Transport: s.tr, Committer: (*sessionCommitter)(s),
			EpochInterval: max(c.EpochInterval, time.Millisecond), StartEpoch: 1, Snapshots: true, Resume: resume,
			MaxOutstanding: limit, MaxUncommitted: 1, Shared: shared, Parts: parts, Context: ctx,
			ManualEpochs: true, Drained: drained, Remote: c.Remote, Stats: stats,
		})
		s.workers = append(s.workers, w)
		prog := engine.NewProgram()
		for idx, st := range flow.Steps() {
			if err := w.AddStep(prog, idx, st.ID, st.Inputs, st.Terminal(), st.Build); err != nil {
				cancel(err)
				return nil, errors.Join(err, s.closeAll())
			}
		}
	}
	for i := range s.workers {
		s.wg.Go(func() {
			if err := s.loop(i); err != nil {
				s.mu.Lock()
				s.errs[i] = err
				s.mu.Unlock()
				s.cancel(err)
				s.signal()
			}
		})
	}
	return s, nil
}

func (s *Session) closeAll() error {
	var errs []error
	for _, w := range s.workers {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}

func (s *Session) signal() {
	select {
	case s.reported <- struct{}{}:
	default:
	}
}

// Wake tells worker w to look at its inputs again (records were queued).
func (s *Session) Wake(w int) { s.tr.boxes[w].signal() }

func (s *Session) wakeAll() {
	for _, b := range s.tr.boxes {
		b.signal()
	}
}

// Close asks every worker to close the epochs through e once it has read
// everything queued for it.
func (s *Session) Close(e engine.Epoch) {
	s.mu.Lock()
	s.closeReq = max(s.closeReq, e)
	s.mu.Unlock()
	s.wakeAll()
}

// Wait blocks until every worker has passed barrier e, and returns the
// state changes reported since the last Wait. It returns the error of a
// failed worker, or ctx's.
func (s *Session) Wait(ctx context.Context, e engine.Epoch) ([]engine.Row, error) {
	for {
		s.mu.Lock()
		reached := true
		for _, f := range s.frontier {
			reached = reached && f >= e
		}
		err := s.err()
		var rows []engine.Row
		if reached && err == nil {
			rows, s.rows = s.rows, nil
		}
		s.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case reached:
			return rows, nil
		}
		select {
		case <-s.reported:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// err is the first worker error; s.mu is held.
func (s *Session) err() error {
	for _, err := range s.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Failed is closed when a worker fails; Err then says why.
func (s *Session) Failed() <-chan struct{} { return s.ctx.Done() }

// Err is the first error of a worker, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

// Committed records that epochs through e are committed: the workers may
// read and close epochs again.
func (s *Session) Committed(e engine.Epoch) {
	s.mu.Lock()
	s.durable = max(s.durable, e)
	s.mu.Unlock()
	s.wakeAll()
}

// Stop ends the workers' goroutines and closes every step. It returns
// the first worker error, if one failed.
func (s *Session) Stop() error {
	s.cancel(errSessionStopped)
	s.wg.Wait()
	s.mu.Lock()
	err := s.err()
	s.mu.Unlock()
	return errors.Join(err, s.closeAll())
}

var errSessionStopped = errors.New("session stopped")

func (s *Session) loop(i int) error {
	w := s.workers[i]
	box := s.tr.boxes[i]
	var buf []engine.Message
	for {
		if s.ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		durable, req := s.durable, s.closeReq
		s.mu.Unlock()
		if err := w.Committed(durable); err != nil {
			return err
		}
		if req > 0 {
			w.RequestClose(req)
		}
		msgs := box.take(buf)
		if len(msgs) > 0 {
			if err := w.Deliver(msgs); err != nil {
				return err
			}
			clear(msgs)
		}
		buf = msgs
		progress, err := w.Step()
		if err != nil {
			return err
		}
		if w.Done() {
			return fmt.Errorf("worker %d: the input ended, which a group member's input never does", i)
		}
		if progress || len(msgs) > 0 {
			continue
		}
		var timer <-chan time.Time
		if t, ok := w.Deadline(); ok {
			if !s.clock.Now().Before(t) {
				continue
			}
			timer = s.clock.At(t)
		}
		select {
		case <-box.wake:
		case <-timer:
		case <-s.ctx.Done():
		}
	}
}

// sessionCommitter gathers what the workers report for Wait.
type sessionCommitter Session

func (c *sessionCommitter) EpochDone(w int, e engine.Epoch, rows []engine.Row) {
	s := (*Session)(c)
	s.mu.Lock()
	s.rows = append(s.rows, rows...)
	s.frontier[w] = max(s.frontier[w], e)
	s.mu.Unlock()
	s.signal()
}

func (c *sessionCommitter) Done(w int, last engine.Epoch) {
	s := (*Session)(c)
	s.mu.Lock()
	s.frontier[w] = engine.EOF
	s.mu.Unlock()
	s.signal()
}
