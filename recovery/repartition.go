package recovery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// RepartitionResult says what [Repartition] did.
type RepartitionResult struct {
	From, To int
	Keys     int    // (step, key) pairs moved, input and output positions included
	Resume   Resume // where the next run resumes, the same before and after
}

// Repartition moves the committed state and positions of dir from its N
// partitions to m, offline: it refuses while a run holds the directory
// (ErrLocked), and a directory a run would refuse. The new partitions are
// built in a hidden directory beside dir (".NAME.repartition-*") holding
// the state after the last committed epoch, every step's recorded type and
// the execution history, and then exchanged with dir in one atomic rename
// (Linux renameat2 RENAME_EXCHANGE), so that a kill at any moment leaves
// dir holding either all the old partitions or all the new ones; leftovers
// beside it are removed by the next Repartition. A run after it resumes
// from the same epoch with the same state as one that did not repartition.
// Older epochs kept for the backup interval are not carried over (dump
// --epoch then shows only the last committed one), and the directory gets
// a new identity, so that a backup of the old layout is never mixed in.
func Repartition(dir string, m int) (RepartitionResult, error) {
	res := RepartitionResult{To: m}
	fail := func(err error) (RepartitionResult, error) {
		return res, fmt.Errorf("recovery: repartition %s to %d: %w", dir, m, err)
	}
	if m < 1 {
		return fail(fmt.Errorf("partition count must be at least 1, got %d", m))
	}
	clean := filepath.Clean(dir)
	parent := filepath.Dir(clean)
	leftovers, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(clean)+".repartition-*"))
	entries, err := os.ReadDir(clean)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(accessErr(err))
	}
	var other []string
	for _, e := range entries {
		if ok, _ := filepath.Match("part-*.sqlite3*", e.Name()); !ok {
			other = append(other, e.Name())
		}
	}
	if len(other) > 0 {
		sort.Strings(other)
		return fail(fmt.Errorf("%s holds files other than partitions (%s); move them away first", dir, strings.Join(other, ", ")))
	}
	s, err := Open(dir)
	if err != nil {
		return res, err
	}
	defer s.Close()
	if err := s.Lock(); err != nil {
		return res, err
	}
	res.From = s.Partitions()
	v, err := s.Check()
	if err != nil {
		return res, err
	}
	if err := v.Err(); err != nil {
		return fail(err)
	}
	res.Resume = v.Resume
	for _, l := range leftovers {
		if err := os.RemoveAll(l); err != nil {
			return fail(fmt.Errorf("removing what an interrupted repartition left: %w", err))
		}
	}
	if m == res.From {
		return res, nil
	}
	var entriesAt []Entry
	if !v.Resume.Fresh && v.Resume.Epoch > 1 {
		if entriesAt, err = s.StateAt(v.Resume.Epoch-1, ""); err != nil {
			return fail(err)
		}
	}
	res.Keys = len(entriesAt)
	steps, err := s.StepTypes()
	if err != nil {
		return fail(err)
	}
	// The history: every execution any partition records (they agree, as
	// Check found).
	execs := map[int]execInfo{}
	for _, p := range s.parts {
		h, err := readHistory(p.db, p.format)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", p.path, err))
		}
		for _, e := range h.execs {
			if old, ok := execs[e.ex]; !ok || old.id == "" {
				execs[e.ex] = e
			}
		}
	}

	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(clean)+".repartition-")
	if err != nil {
		return fail(err)
	}
	swapped := false
	defer func() {
		if !swapped {
			os.RemoveAll(tmp)
		}
	}()
	id, err := newDirID()
	if err != nil {
		return fail(err)
	}
	byPart := make([][]Entry, m)
	for _, e := range entriesAt {
		i := PartitionFor(e.Step, e.Key, m)
		byPart[i] = append(byPart[i], e)
	}
	gc := uint64(0)
	if !v.Resume.Fresh {
		gc = v.Resume.Epoch
	}
	for i := range m {
		path := filepath.Join(tmp, partFile(i))
		if err := createPartition(path, i, m, id); err != nil {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		if err := fillPartition(path, s.FlowID(), gc, steps, execs, v.Resume, byPart[i]); err != nil {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		if err := syncFile(path); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if err := exchange(tmp, clean); err != nil {
		return fail(err)
	}
	swapped = true
	if err := syncDir(parent); err != nil {
		return fail(err)
	}
	s.Close()
	if err := os.RemoveAll(tmp); err != nil { // now the old partitions
		return fail(fmt.Errorf("removing the old partitions: %w", err))
	}
	return res, nil
}

// fillPartition writes a new partition's history and rows: every execution,
// the newest one's workers all at the resume epoch (the frontier the old
// partitions agree on), and the rows of its keys at their epochs.
func fillPartition(path, flowID string, gc uint64, steps map[string]StepState, execs map[int]execInfo, resume Resume, rows []Entry) error {
	db, err := openDB(path, "rw")
	if err != nil {
		return err
	}
	defer db.Close()
	err = inTx(context.Background(), db, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE meta SET value = ? WHERE name = 'flow_id'", flowID); err != nil {
			return err
		}
		if _, err := tx.Exec("UPDATE meta SET value = ? WHERE name = 'gc_epoch'", strconv.FormatUint(gc, 10)); err != nil {
			return err
		}
		for id, st := range steps {
			if _, err := tx.Exec("INSERT INTO steps(step_id, state_type, state_shape) VALUES(?, ?, ?)", id, st.Type, st.Shape); err != nil {
				return err
			}
		}
		newest := -1
		for _, e := range execs {
			if _, err := tx.Exec("INSERT INTO executions(ex_num, worker_count, resume_epoch, exec_id) VALUES(?, ?, ?, ?)",
				e.ex, e.workers, int64(e.resume), e.id); err != nil {
				return err
			}
			newest = max(newest, e.ex)
		}
		if newest >= 0 {
			for w := range execs[newest].workers {
				if _, err := tx.Exec("INSERT INTO fronts(ex_num, worker_index, worker_frontier) VALUES(?, ?, ?)",
					newest, w, int64(resume.Epoch)); err != nil {
					return err
				}
			}
		}
		// The rows go into the change log, one set of batches per epoch
		// (rows is sorted by step and key, and so is each set).
		recs := make([]Row, len(rows))
		byEpoch := map[uint64][]int32{}
		for i, r := range rows {
			recs[i] = Row{Step: r.Step, Key: r.Key, Value: r.Value}
			byEpoch[r.Epoch] = append(byEpoch[r.Epoch], int32(i))
		}
		epochs := make([]uint64, 0, len(byEpoch))
		for e := range byEpoch {
			epochs = append(epochs, e)
		}
		slices.Sort(epochs)
		var buf []byte
		for _, e := range epochs {
			var err error
			if _, _, buf, err = insertBatches(tx, int64(e), recs, byEpoch[e], buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.Close()
}
