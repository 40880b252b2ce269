package recovery

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// Resume says where a new execution starts, as decided by [Store.Begin].
type Resume struct {
	Execution   int    // number of the new execution, 0 for the first
	Epoch       uint64 // first epoch of the new execution; state is loaded from epochs before it
	Fresh       bool   // no execution ever began on this store: nothing to load
	PrevWorkers int    // worker count of the previous execution, 0 when Fresh
}

// Row is one snapshot row: the encoded state of one key of one step after an
// epoch, or its deletion.
type Row struct {
	Step, Key string
	Value     []byte // the encoded state; ignored when Deleted
	Deleted   bool   // the state was discarded in this epoch
}

type execInfo struct {
	ex, workers int
	resume      uint64
	id          string // random per execution; "" when written in format 1
}

func (e execInfo) String() string {
	s := fmt.Sprintf("%d worker(s) resuming at epoch %d", e.workers, e.resume)
	if e.id != "" {
		s += ", run " + e.id
	}
	return s
}

// Begin starts a new execution of the dataflow flowID with the given number
// of workers (over all processes), after checking that the stored data
// belongs to flowID ([ErrFlowMismatch] names both ids) and that plan loses no
// state by accident (it returns plan.Err() before modifying anything).
//
// The resume epoch is the minimum, over all partitions, of the frontiers of
// the workers of each partition's newest execution (a worker with no
// committed frontier counts as that execution's resume epoch), so that a
// crash in the middle of a commit, or a partition restored from an older
// backup, resumes from the older epoch. A fresh store resumes at epoch 1 as
// execution 0.
//
// Begin then, in every partition: deletes snapshot rows at or after the
// resume epoch (they were never committed) and all rows of plan.Dropped; and
// afterwards records flow id, the steps table (plan.Current) and the new
// execution. A step in plan.Migrated keeps its stored type in the steps
// table, with its new type in a pending migration (meta "migration:STEP")
// that applies once the resume epoch is committed: the run must write every
// key of the step again in that epoch. The two phases make a crash during Begin safe: a step whose
// rows were deleted in only some partitions is still stored in all of them,
// so the next Begin must drop it again.
func (s *Store) Begin(flowID string, workers int, plan Plan) (Resume, error) {
	if err := s.checkOpen(); err != nil {
		return Resume{}, err
	}
	if flowID == "" {
		return Resume{}, fmt.Errorf("recovery: begin in %s: empty flow id", s.dir)
	}
	if workers < 1 {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: worker count must be at least 1, got %d", flowID, workers)
	}
	if stored := s.FlowID(); stored != "" && stored != flowID {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w: %s holds data of dataflow %q, not %q",
			flowID, ErrFlowMismatch, s.dir, stored, flowID)
	}
	if err := plan.Err(); err != nil {
		return Resume{}, err
	}

	if s.readOnly {
		return Resume{}, fmt.Errorf("recovery: begin flow %s in %s: %w", flowID, s.dir, ErrReadOnly)
	}
	// Judge the directory again: it may have changed since Open.
	v, err := s.Check()
	if err != nil {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w", flowID, err)
	}
	if err := v.Err(); err != nil {
		return Resume{}, err
	}
	res := v.Resume
	if res.Epoch > math.MaxInt64 {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w: resume epoch %d out of range", flowID, ErrCorrupt, res.Epoch)
	}
	execID, err := newDirID()
	if err != nil {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w", flowID, err)
	}
	dirID := s.DirID()
	if dirID == "" {
		if dirID, err = newDirID(); err != nil {
			return Resume{}, fmt.Errorf("recovery: begin flow %s: %w", flowID, err)
		}
	}

	ctx := context.Background()
	// Phase 1: forget what was never committed and what the user dropped.
	err = s.each(func(p *partition) error {
		return inTx(ctx, p.db, func(tx *sql.Tx) error {
			if _, err := tx.Exec("DELETE FROM snaps WHERE epoch >= ?", int64(res.Epoch)); err != nil {
				return fmt.Errorf("delete uncommitted snapshots: %w", err)
			}
			if p.format >= 3 {
				if _, err := tx.Exec("DELETE FROM changes WHERE epoch >= ?", int64(res.Epoch)); err != nil {
					return fmt.Errorf("delete uncommitted changes: %w", err)
				}
			}
			for _, step := range plan.Dropped {
				if _, err := tx.Exec("DELETE FROM snaps WHERE step_id = ?", step); err != nil {
					return fmt.Errorf("drop state of step %s: %w", step, err)
				}
				if p.format >= 3 {
					if _, err := tx.Exec("DELETE FROM changes WHERE step_id = ?", step); err != nil {
						return fmt.Errorf("drop state of step %s: %w", step, err)
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w", flowID, err)
	}
	// Phase 2: record the new execution, upgrading format 1 partitions.
	err = s.each(func(p *partition) error {
		return inTx(ctx, p.db, func(tx *sql.Tx) error {
			if p.format < FormatVersion {
				if err := upgrade(tx, dirID); err != nil {
					return fmt.Errorf("upgrade from format %d to %d: %w", p.format, FormatVersion, err)
				}
			}
			if _, err := tx.Exec("UPDATE meta SET value = ? WHERE name = 'flow_id'", flowID); err != nil {
				return fmt.Errorf("write flow id: %w", err)
			}
			if _, err := tx.Exec("DELETE FROM steps"); err != nil {
				return fmt.Errorf("write steps: %w", err)
			}
			if _, err := tx.Exec("DELETE FROM meta WHERE substr(name, 1, ?) = ?", len(migrationPrefix), migrationPrefix); err != nil {
				return fmt.Errorf("write migrations: %w", err)
			}
			for step, st := range plan.Current {
				if plan.Migrating(step) {
					// The rows keep the old type until the migrated
					// epoch (every key written again) is committed.
					val, err := json.Marshal(pendingMigration{Epoch: res.Epoch, Type: st.Type, Shape: st.Shape})
					if err != nil {
						return err
					}
					if _, err := tx.Exec("INSERT INTO meta(name, value) VALUES(?, ?)", migrationPrefix+step, string(val)); err != nil {
						return fmt.Errorf("write migration of step %s: %w", step, err)
					}
					st = plan.Stored[step]
				}
				if _, err := tx.Exec("INSERT INTO steps(step_id, state_type, state_shape) VALUES(?, ?, ?)", step, st.Type, st.Shape); err != nil {
					return fmt.Errorf("write step %s: %w", step, err)
				}
			}
			if _, err := tx.Exec("INSERT OR REPLACE INTO executions(ex_num, worker_count, resume_epoch, exec_id) VALUES(?, ?, ?, ?)",
				res.Execution, workers, int64(res.Epoch), execID); err != nil {
				return fmt.Errorf("write execution %d: %w", res.Execution, err)
			}
			log, err := readLogStats(tx)
			if err != nil {
				return err
			}
			p.log, p.base = log, logStats{}
			for _, st := range log {
				p.base.entries += st.entries
				p.base.bytes += st.bytes
				p.base.batches += st.batches
			}
			return nil
		})
	})
	if err != nil {
		return Resume{}, fmt.Errorf("recovery: begin flow %s: %w", flowID, err)
	}

	for _, p := range s.parts {
		p.format = FormatVersion
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flowID = flowID
	s.dirID = dirID
	s.begun = true
	s.ex = res.Execution
	s.resume = res.Epoch
	s.fronts = make([]uint64, workers)
	for w := range s.fronts {
		s.fronts[w] = res.Epoch
	}
	return res, nil
}

// upgrade turns a format 1 or 2 partition into format 3 inside tx. From
// format 1, the steps table gains state_shape ("" for steps recorded before
// shapes were), the executions table exec_id ("" for earlier runs), and
// meta the directory identity (a format 1 directory has none, so the first
// run after the upgrade gives it one, the same in every partition). From
// format 1 or 2, the partition gains the (empty) change log; its snaps rows
// stay as they are.
func upgrade(tx *sql.Tx, dirID string) error {
	var fv string
	if err := tx.QueryRow("SELECT value FROM meta WHERE name = 'format_version'").Scan(&fv); err != nil {
		return err
	}
	type stmt struct {
		q    string
		args []any
	}
	var stmts []stmt
	switch fv {
	case "1":
		stmts = append(stmts,
			stmt{"ALTER TABLE steps ADD COLUMN state_shape TEXT NOT NULL DEFAULT ''", nil},
			stmt{"ALTER TABLE executions ADD COLUMN exec_id TEXT NOT NULL DEFAULT ''", nil},
			stmt{"INSERT INTO meta(name, value) VALUES('dir_id', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", []any{dirID}},
		)
		fallthrough
	case "2":
		stmts = append(stmts,
			stmt{changesTable, nil},
			stmt{"UPDATE meta SET value = ? WHERE name = 'format_version'", []any{strconv.Itoa(FormatVersion)}},
		)
	default:
		return nil // upgraded by an earlier, interrupted Begin
	}
	for _, st := range stmts {
		if _, err := tx.Exec(st.q, st.args...); err != nil {
			return err
		}
	}
	return nil
}

func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// WriteEpoch writes the snapshot rows of one epoch: for each row, the state
// of (Step, Key) after epoch, or its deletion. Rows are grouped by partition
// ([PartitionFor]) and sorted by (step, key) within each, and each partition
// is written in one transaction, all partitions in parallel. Writing the same
// (step, key, epoch) again replaces the row; within one call the last row for
// a (step, key) wins. WriteEpoch neither modifies nor keeps rows, and
// concurrent calls are written one after another.
//
// Durability: when WriteEpoch returns nil, the rows are in the partitions'
// fsynced write-ahead logs and survive a process kill or power loss. On an
// error, some partitions may hold the rows and others not; the epoch is not
// committed (see [Store.Commit]), so the next [Store.Begin] deletes them.
// epoch must not be before the execution's resume epoch.
func (s *Store) WriteEpoch(epoch uint64, rows []Row) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.mu.Lock()
	begun, resume := s.begun, s.resume
	s.mu.Unlock()
	if !begun {
		return fmt.Errorf("recovery: write epoch %d: %w", epoch, ErrNotBegun)
	}
	if epoch < resume || epoch > math.MaxInt64 {
		return fmt.Errorf("recovery: write epoch %d: before the execution's resume epoch %d", epoch, resume)
	}
	if len(rows) == 0 {
		return nil
	}
	if len(rows) > math.MaxInt32 {
		return fmt.Errorf("recovery: write epoch %d: %d rows, more than one call takes", epoch, len(rows))
	}
	s.writing.Lock()
	defer s.writing.Unlock()
	for _, p := range s.parts {
		p.rows = p.rows[:0]
	}
	if n := len(s.parts); n == 1 {
		p := s.parts[0]
		for i := range rows {
			p.rows = append(p.rows, int32(i))
		}
	} else {
		for i := range rows {
			p := s.parts[PartitionFor(rows[i].Step, rows[i].Key, n)]
			p.rows = append(p.rows, int32(i))
		}
	}
	err := s.each(func(p *partition) error {
		if len(p.rows) == 0 {
			return nil
		}
		keep := p.sorter.sortRows(rows, p.rows)
		var batches, bytes int64
		err := inTx(context.Background(), p.db, func(tx *sql.Tx) error {
			var err error
			batches, bytes, p.text, err = insertBatches(tx, int64(epoch), rows, keep, p.text)
			return err
		})
		if err != nil {
			return err
		}
		s.mu.Lock()
		if p.log == nil {
			p.log = map[int64]logStats{}
		}
		st := p.log[int64(epoch)]
		st.entries += int64(len(keep))
		st.bytes += bytes
		st.batches += batches
		p.log[int64(epoch)] = st
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovery: write epoch %d: %w", epoch, err)
	}
	return nil
}

// Commit records that every epoch before frontier is durable for the given
// workers of execution ex (frontier = last durable epoch + 1), in every
// partition. Call it only after those workers have written their snapshots
// with [Store.WriteEpoch] and flushed their sinks for every epoch before
// frontier. Frontiers never move back: a smaller one than recorded is ignored.
//
// With the frontiers, Commit records in every partition the
// garbage-collection horizon of the previous Commit, frontier-keepEpochs
// (frontier being the minimum over all workers of ex), as gc_epoch: from
// then on, rows that no resume from an epoch at or after it can need may be
// deleted, and [Store.Compact] does so when it merges the change log below
// it into snaps.
//
// Durability: when Commit returns nil, the frontiers survive a process kill or
// power loss. On an error the run must stop; some partitions may hold the new
// frontier and others the old, and the next [Store.Begin] resumes from the
// older one.
func (s *Store) Commit(ex int, workers []int, frontier uint64, keepEpochs uint64) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.mu.Lock()
	begun, cur, nw := s.begun, s.ex, len(s.fronts)
	s.mu.Unlock()
	if !begun {
		return fmt.Errorf("recovery: commit execution %d: %w", ex, ErrNotBegun)
	}
	if ex != cur {
		return fmt.Errorf("recovery: commit execution %d: the current execution is %d", ex, cur)
	}
	if frontier > math.MaxInt64 {
		return fmt.Errorf("recovery: commit execution %d: frontier %d out of range", ex, frontier)
	}
	for _, w := range workers {
		if w < 0 || w >= nw {
			return fmt.Errorf("recovery: commit execution %d: worker %d out of range [0, %d)", ex, w, nw)
		}
	}
	// The garbage-collection horizon of the last Commit: every partition
	// recorded its frontiers, so it may be recorded now. (Recording this
	// Commit's horizon in the same transaction as its frontiers would let a
	// crash between two partitions' transactions leave one partition
	// collecting beyond another's frontier.)
	s.mu.Lock()
	horizon := s.nextHorizon
	gc := slices.Clone(s.gcEpoch)
	s.mu.Unlock()
	ctx := context.Background()
	err := s.each(func(p *partition) error {
		return inTx(ctx, p.db, func(tx *sql.Tx) error {
			for _, w := range workers {
				_, err := tx.Exec(`INSERT INTO fronts(ex_num, worker_index, worker_frontier) VALUES(?, ?, ?)
					ON CONFLICT(ex_num, worker_index) DO UPDATE SET worker_frontier = max(worker_frontier, excluded.worker_frontier)`,
					ex, w, int64(frontier))
				if err != nil {
					return fmt.Errorf("write frontier of worker %d: %w", w, err)
				}
			}
			if horizon > gc[p.index] {
				// From now on rows before horizon may be garbage-collected
				// (Compact), so no resume before it may be trusted.
				if err := recordGC(tx, horizon); err != nil {
					return fmt.Errorf("write gc_epoch: %w", err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recovery: commit execution %d frontier %d: %w", ex, frontier, err)
	}

	s.mu.Lock()
	for _, w := range workers {
		s.fronts[w] = max(s.fronts[w], frontier)
	}
	for i := range s.gcEpoch {
		s.gcEpoch[i] = max(s.gcEpoch[i], horizon)
	}
	if safe := slices.Min(s.fronts); safe > keepEpochs {
		s.nextHorizon = max(s.nextHorizon, safe-keepEpochs)
	}
	s.mu.Unlock()
	return nil
}

// Load calls fn, for every (step, key) with state, with the newest value
// written before epoch (normally the resume epoch from [Store.Begin]); keys
// whose newest row before epoch is a deletion are skipped. Partitions are
// passed to fn one after another, each in order of step, then key; reading
// runs ahead of fn in background goroutines, which have all exited when Load
// returns. fn is called from the calling goroutine and owns value. Load stops
// at and returns the first error from fn, wrapped.
//
// fn must not call methods of s that write; reading is fine.
func (s *Store) Load(epoch uint64, fn func(step, key string, value []byte) error) error {
	return s.LoadExcept(epoch, nil, fn)
}

// LoadExcept is [Store.Load] without the state of the steps in skip (the
// steps a run drops, [Plan.Dropped]): their rows are not read, so that a
// damaged change-log batch of a step that --drop-state discards does not
// stop the run.
func (s *Store) LoadExcept(epoch uint64, skip []string, fn func(step, key string, value []byte) error) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if epoch > math.MaxInt64 {
		epoch = math.MaxInt64
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	var skipped map[string]bool
	if len(skip) > 0 {
		skipped = make(map[string]bool, len(skip))
		for _, step := range skip {
			skipped[step] = true
		}
	}
	chans := make([]chan []loaded, len(s.parts))
	errs := make([]error, len(s.parts))
	for i, p := range s.parts {
		ch := make(chan []loaded, 4)
		chans[i] = ch
		wg.Go(func() {
			defer close(ch)
			errs[i] = readPartition(ctx, p, int64(epoch), skipped, ch)
		})
	}
	for i, ch := range chans {
		for batch := range ch {
			for _, e := range batch {
				if skipped[e.step] {
					continue // a snaps row (format 2 or older)
				}
				if err := fn(e.step, e.key, e.value); err != nil {
					return fmt.Errorf("recovery: load before epoch %d: %s: step %s key %q: %w",
						epoch, s.parts[i].name(), e.step, e.key, err)
				}
			}
		}
		if errs[i] != nil {
			return fmt.Errorf("recovery: load before epoch %d: %s: %w", epoch, s.parts[i].name(), errs[i])
		}
	}
	return nil
}

type loaded struct {
	step, key string
	value     []byte
}

const loadBatch = 1024

// readPartition streams the rows Load wants from one partition into ch in
// batches, until done or ctx is cancelled: the newest row of each key
// before epoch, from snaps and the change log together, keys whose newest
// row is a deletion left out.
func readPartition(ctx context.Context, p *partition, epoch int64, skip map[string]bool, ch chan<- []loaded) error {
	batch := make([]loaded, 0, loadBatch)
	send := func() error {
		select {
		case ch <- batch:
			batch = make([]loaded, 0, loadBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	snaps := p.format < 3
	if !snaps {
		var err error
		if snaps, err = hasSnaps(ctx, p.db, epoch); err != nil {
			return err
		}
	}
	if !snaps {
		return readLogPartition(ctx, p, epoch, skip, send, &batch)
	}
	var cur logRow // newest row so far of the current (step, key)
	have := false
	flush := func() error {
		if !have || cur.deleted {
			return nil
		}
		batch = append(batch, loaded{step: cur.step, key: cur.key, value: cur.value})
		if len(batch) < loadBatch {
			return nil
		}
		return send()
	}
	err := scanPart(ctx, p.db, p.format, epoch, "", skip, func(r *logRow) error {
		if have && r.key == cur.key && r.step == cur.step {
			cur = *r // a newer row of the same key
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		cur, have = *r, true
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return send()
	}
	return nil
}

// readLogPartition is readPartition for a partition whose rows are all in
// the change log: it merges the log's runs and decodes only each key's
// newest entry, into memory shared by a batch's keys (one string) and
// values.
func readLogPartition(ctx context.Context, p *partition, epoch int64, skip map[string]bool, send func() error, batch *[]loaded) error {
	x, err := readLogIndex(ctx, p.db, epoch, "", skip, nil)
	if err != nil {
		return err
	}
	var keys []byte // the keys of the batch being filled
	var ends []int  // where each of them ends in keys
	var vals []byte // values are cut from it
	flush := func() error {
		all := string(keys)
		start := 0
		for k := range *batch {
			(*batch)[k].key = all[start:ends[k]]
			start = ends[k]
		}
		keys, ends = keys[:0], ends[:0]
		return send()
	}
	err = x.newest(func(i int32) error {
		hx, ok := x.hex(i)
		if !ok {
			return nil // deleted
		}
		keys = append(keys, x.key(i)...)
		ends = append(ends, len(keys))
		vals = carve(vals, len(hx)/2)
		start := len(vals)
		vals = appendUnhex(vals, hx)
		*batch = append(*batch, loaded{step: x.batchOf(i).step, value: vals[start:len(vals):len(vals)]})
		if len(*batch) < loadBatch {
			return nil
		}
		return flush()
	})
	if err != nil {
		return err
	}
	if len(*batch) > 0 {
		return flush()
	}
	return nil
}

// Latest returns the newest row stored for (step, key), committed or not,
// for inspection. ok is false when there is no row or the newest row is a
// deletion; epoch is then the deletion's epoch (0 when there is no row).
func (s *Store) Latest(step, key string) (value []byte, epoch uint64, ok bool, err error) {
	if err := s.checkOpen(); err != nil {
		return nil, 0, false, err
	}
	p := s.parts[PartitionFor(step, key, len(s.parts))]
	var last logRow
	found := false
	err = scanPart(context.Background(), p.db, p.format, math.MaxInt64, step, nil, func(r *logRow) error {
		if r.key == key {
			last, found = *r, true
		}
		return nil
	})
	if err != nil {
		return nil, 0, false, fmt.Errorf("recovery: latest state of step %s key %q: %s: %w", step, key, p.name(), err)
	}
	if !found {
		return nil, 0, false, nil
	}
	if last.deleted {
		return nil, uint64(last.epoch), false, nil
	}
	return last.value, uint64(last.epoch), true, nil
}
