package runner

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/recovery"
)

// committer gathers what workers report and makes epochs durable in order.
// An epoch is handed to the writer only when every worker has reported it
// (its snapshots are all in, and every worker's sinks have passed its
// barrier); the writer then writes the rows and, after they are durable,
// records the new frontier. A failure to write ends the run.
type committer struct {
	mu       sync.Mutex
	frontier []engine.Epoch // per worker: reported through
	last     engine.Epoch   // highest epoch closed by an ended worker
	// rows are the state changes reported per epoch, converted to the
	// store's rows as they are gathered (one copy, not two).
	rows      map[engine.Epoch][]recovery.Row
	spare     [][]recovery.Row // written rows' slices, cleared, for new epochs
	queued    engine.Epoch     // epochs <= queued are handed to the writer
	jobs      []job
	committed engine.Epoch
	err       error
	wake      chan struct{}
	closed    bool
	started   bool
	done      chan struct{}

	store   *recovery.Store
	exec    int
	keep    uint64
	workers []int
	fail    context.CancelCauseFunc
	// durable mirrors committed for the workers' loops, which hand it to
	// two-phase sinks (engine.Worker.Committed); notify wakes them.
	durable atomic.Uint64
	notify  func()
	stats   *api.Commits // nil: not counted
	log     *slog.Logger
	// beforeWrite, when set (by tests), is called by the writer with the
	// number of epochs it is about to persist.
	beforeWrite func(epochs int)
}

type job struct {
	epoch engine.Epoch
	rows  []recovery.Row
}

func newCommitter(workers int, start engine.Epoch, store *recovery.Store, exec int, keep uint64, fail context.CancelCauseFunc) *committer {
	c := &committer{
		frontier: make([]engine.Epoch, workers),
		rows:     map[engine.Epoch][]recovery.Row{},
		queued:   start - 1, committed: start - 1,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		store: store, exec: exec, keep: keep, fail: fail,
	}
	for i := range c.frontier {
		c.frontier[i] = start - 1
		c.workers = append(c.workers, i)
	}
	return c
}

// start starts the writer goroutine. It is called once every worker is
// built, so that a failed build leaves nothing running.
func (c *committer) start() {
	c.started = true
	go c.write()
}

func (c *committer) EpochDone(w int, e engine.Epoch, rows []engine.Row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(rows) > 0 {
		cur, ok := c.rows[e]
		if !ok && len(c.spare) > 0 {
			cur = c.spare[len(c.spare)-1]
			c.spare = c.spare[:len(c.spare)-1]
		}
		c.rows[e] = appendRows(cur, rows)
	}
	c.frontier[w] = e
	c.advance()
}

func (c *committer) Done(w int, last engine.Epoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frontier[w] = engine.EOF
	c.last = max(c.last, last)
	c.advance()
}

func (c *committer) advance() {
	m := engine.EOF
	for _, f := range c.frontier {
		m = min(m, f)
	}
	if m == engine.EOF {
		m = c.last
	}
	if m <= c.queued {
		return
	}
	for e := c.queued + 1; e <= m; e++ {
		c.jobs = append(c.jobs, job{epoch: e, rows: c.rows[e]})
		delete(c.rows, e)
	}
	c.queued = m
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// write is the writer goroutine: it persists queued epochs in order and
// then commits the highest of them.
func (c *committer) write() {
	defer close(c.done)
	for {
		<-c.wake
		c.mu.Lock()
		jobs := c.jobs
		c.jobs = nil
		closed := c.closed
		c.mu.Unlock()
		if len(jobs) > 0 && c.err == nil {
			if err := c.persist(jobs); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				c.fail(err)
			}
		}
		if !closed && c.err == nil {
			if err := c.compact(); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				c.fail(err)
			}
		}
		if closed {
			c.mu.Lock()
			more := len(c.jobs) > 0
			c.mu.Unlock()
			if !more {
				return
			}
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// compact lets the store compact its change log: once the log has doubled
// while no epoch waits to be written, and once it has grown fourfold while
// epochs keep the writer busy (so that a writer that never catches up
// still bounds the log). It never runs once the run is closing: the last
// epochs of a run stay in the log, which a resume reads as fast.
func (c *committer) compact() error {
	if c.store == nil {
		return nil
	}
	c.mu.Lock()
	busy, closed := len(c.jobs) > 0, c.closed
	c.mu.Unlock()
	if closed {
		return nil
	}
	growth := int64(2)
	if busy {
		growth = 4
	}
	if err := c.store.Compact(growth); err != nil {
		return fmt.Errorf("compact the recovery data: %w", err)
	}
	return nil
}

// persist writes the rows of the queued epochs and commits the last. When
// the writer lags, several epochs are queued: their rows go in one write,
// labelled with the last epoch, in epoch order so that a key's latest state
// wins (the store keeps the last row for a key within one write). No
// frontier between them is ever committed, so no resume needs them apart.
func (c *committer) persist(jobs []job) error {
	last := jobs[len(jobs)-1].epoch
	if c.beforeWrite != nil {
		c.beforeWrite(len(jobs))
	}
	began := time.Now()
	if c.store != nil {
		rows := jobs[0].rows
		if len(jobs) > 1 {
			n := 0
			for _, j := range jobs {
				n += len(j.rows)
			}
			rows = make([]recovery.Row, 0, n)
			for _, j := range jobs {
				rows = append(rows, j.rows...)
			}
		}
		if len(rows) > 0 {
			if err := c.store.WriteEpoch(last, rows); err != nil {
				if len(jobs) > 1 {
					return fmt.Errorf("write snapshots of epoch %d through %d (written together): %w", jobs[0].epoch, last, err)
				}
				return fmt.Errorf("write snapshots of epoch %d: %w", last, err)
			}
		}
		if err := c.store.Commit(c.exec, c.workers, last+1, c.keep); err != nil {
			return fmt.Errorf("commit epoch %d: %w", last, err)
		}
	}
	c.mu.Lock()
	c.committed = last
	c.mu.Unlock()
	c.durable.Store(last)
	if c.notify != nil {
		c.notify()
	}
	debug := c.log != nil && c.log.Enabled(context.Background(), slog.LevelDebug)
	if c.store != nil && (c.stats != nil || debug) {
		took := time.Since(began)
		var rows, bytes int64
		for _, j := range jobs {
			rows += int64(len(j.rows))
			for _, r := range j.rows {
				bytes += int64(len(r.Step) + len(r.Key) + len(r.Value))
			}
		}
		if s := c.stats; s != nil {
			s.Rows.Add(rows)
			s.Bytes.Add(bytes)
			s.Duration.Observe(took.Seconds(), uint64(took))
			s.Epoch.Store(last)
			s.At.Store(time.Now().UnixNano())
		}
		if debug {
			c.log.Debug("epoch committed", "epoch", last, "epochs", len(jobs), "rows", rows, "bytes", bytes, "took", took.String())
		}
	}
	c.recycle(jobs)
	return nil
}

// maxSpare bounds the row slices the committer keeps for reuse: one epoch
// is being gathered while another is written.
const maxSpare = 2

// recycle keeps the row slices of written jobs for the epochs to come, so
// that gathering an epoch's rows allocates nothing in the steady state.
func (c *committer) recycle(jobs []job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		if cap(j.rows) == 0 || len(c.spare) >= maxSpare {
			continue
		}
		clear(j.rows) // let go of the values
		c.spare = append(c.spare, j.rows[:0])
	}
}

// appendRows appends the engine's rows to the store's.
func appendRows(out []recovery.Row, rows []engine.Row) []recovery.Row {
	out = slices.Grow(out, len(rows))
	for _, r := range rows {
		out = append(out, recovery.Row{Step: r.Step, Key: r.Key, Value: r.Value, Deleted: r.Deleted})
	}
	return out
}

// close waits until everything queued is written and stops the writer.
func (c *committer) close(ctx context.Context) error {
	if !c.started {
		return nil
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *committer) committedEpoch() engine.Epoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed
}
