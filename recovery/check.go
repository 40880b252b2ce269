package recovery

import (
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Verdict is what [Store.Check] finds about a whole recovery directory:
// where the next execution would resume, and whether it can resume there
// exactly. A resume is exact or it is refused: every Problem stops a run
// before anything is written.
type Verdict struct {
	Dir string // the recovery directory
	// Resume is where [Store.Begin] would start the next execution; only
	// meaningful when Problems is empty.
	Resume Resume
	// Partitions describes each partition's own view, in index order.
	Partitions []PartitionState
	// Problems lists what makes an exact resume impossible, each with what
	// to do about it; empty when the directory can be resumed.
	Problems []Problem
}

// PartitionState is one partition's record of the history.
type PartitionState struct {
	Path      string
	Format    int    // format_version of the file
	DirID     string // identity given by Init; "" in format 1
	FlowID    string // "" before the first execution
	Execution int    // newest execution the partition records; -1 for none
	// Frontier is the committed frontier of that execution: the minimum
	// over its workers, a worker without a commit counting as the
	// execution's resume epoch. 0 when the partition records no execution.
	Frontier uint64
	// GCEpoch is the horizon of garbage collection: rows before it that a
	// newer row before it supersedes have been deleted, so this partition
	// can resume from no earlier epoch.
	GCEpoch uint64
}

// Problem is one reason a directory cannot be resumed exactly.
type Problem struct {
	Err   error    // ErrPartitionMismatch or ErrStale
	Paths []string // the partitions concerned
	Text  string   // what is wrong, and the fix
}

// Err returns nil when the directory can be resumed exactly, and otherwise
// one error that wraps each problem's sentinel and lists every problem.
func (v Verdict) Err() error {
	if len(v.Problems) == 0 {
		return nil
	}
	var b strings.Builder
	var errs []error
	seen := map[error]bool{}
	for i, p := range v.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%v: %s", p.Err, p.Text)
		if !seen[p.Err] {
			seen[p.Err] = true
			errs = append(errs, p.Err)
		}
	}
	b.WriteString("\nnothing was changed")
	return &planError{msg: "recovery directory " + v.Dir + ": " + b.String(), errs: errs}
}

// partHistory is what one partition records about executions.
type partHistory struct {
	execs  []execInfo     // every execution, oldest first
	fronts map[int]uint64 // committed frontier per worker of the newest one
}

func (h partHistory) newest() execInfo {
	if len(h.execs) == 0 {
		return execInfo{ex: -1}
	}
	return h.execs[len(h.execs)-1]
}

// frontier is the partition's committed frontier: the minimum over the
// newest execution's workers, a worker without a commit counting as the
// execution's resume epoch; 0 without an execution.
func (h partHistory) frontier() uint64 {
	last := h.newest()
	if last.ex < 0 {
		return 0
	}
	f := uint64(math.MaxUint64)
	for w := range last.workers {
		wf, ok := h.fronts[w]
		if !ok {
			wf = last.resume
		}
		f = min(f, wf)
	}
	if f == math.MaxUint64 { // an execution with no workers: only by hand
		f = last.resume
	}
	return f
}

// committed says whether any epoch was ever committed in this partition:
// the newest execution resumed after one, or committed one itself.
func (h partHistory) committed() bool {
	last := h.newest()
	if last.ex < 0 {
		return false
	}
	if last.resume > 1 {
		return true
	}
	for _, f := range h.fronts {
		if f > last.resume {
			return true
		}
	}
	return false
}

func readHistory(db querier, format int) (partHistory, error) {
	var h partHistory
	q := "SELECT ex_num, worker_count, resume_epoch, exec_id FROM executions ORDER BY ex_num"
	if format < 2 {
		q = "SELECT ex_num, worker_count, resume_epoch, '' FROM executions ORDER BY ex_num"
	}
	rows, err := db.Query(q)
	if err != nil {
		return h, fmt.Errorf("read executions: %w", err)
	}
	for rows.Next() {
		var e execInfo
		var resume int64
		if err := rows.Scan(&e.ex, &e.workers, &resume, &e.id); err != nil {
			rows.Close()
			return h, fmt.Errorf("read executions: %w", err)
		}
		e.resume = uint64(resume)
		h.execs = append(h.execs, e)
	}
	if err := rows.Close(); err != nil {
		return h, fmt.Errorf("read executions: %w", err)
	}
	last := h.newest()
	h.fronts = map[int]uint64{}
	if last.ex < 0 {
		return h, nil
	}
	rows, err = db.Query("SELECT worker_index, worker_frontier FROM fronts WHERE ex_num = ?", last.ex)
	if err != nil {
		return h, fmt.Errorf("read fronts of execution %d: %w", last.ex, err)
	}
	defer rows.Close()
	for rows.Next() {
		var w int
		var f int64
		if err := rows.Scan(&w, &f); err != nil {
			return h, fmt.Errorf("read fronts of execution %d: %w", last.ex, err)
		}
		h.fronts[w] = uint64(f)
	}
	return h, rows.Err()
}

// Check re-reads every partition's metadata and history and judges whether
// the directory can be resumed exactly; see [Verdict]. Open refuses a
// directory with problems, Begin checks again before it writes, and
// `runnel recovery inspect` and --recovery-plan print the same verdict. The
// error is about reading the files, not about what they say.
func (s *Store) Check() (Verdict, error) {
	if err := s.checkOpen(); err != nil {
		return Verdict{}, err
	}
	metas := make([]partMeta, len(s.parts))
	hists := make([]partHistory, len(s.parts))
	err := s.each(func(p *partition) error {
		m, err := readMeta(p.db, p.path)
		if err != nil {
			return err
		}
		h, err := readHistory(p.db, m.format)
		metas[p.index], hists[p.index] = m, h
		return err
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("recovery: check %s: %w", s.dir, err)
	}
	return judge(s.dir, metas, hists), nil
}

// sameExecution says whether two partitions' rows describe the same run.
// An id is "" in rows written in format 1, which then cannot tell.
func sameExecution(a, b execInfo) bool {
	return a.ex == b.ex && a.workers == b.workers && a.resume == b.resume &&
		(a.id == "" || b.id == "" || a.id == b.id)
}

// judge is the consistency check proper, a pure function of what the
// partitions record, in index order.
func judge(dir string, metas []partMeta, hists []partHistory) Verdict {
	v := Verdict{Dir: dir}
	for i, m := range metas {
		h := hists[i]
		v.Partitions = append(v.Partitions, PartitionState{
			Path: m.path, Format: m.format, DirID: m.dirID, FlowID: m.flowID,
			Execution: h.newest().ex, Frontier: h.frontier(), GCEpoch: m.gcEpoch,
		})
	}
	mismatch := func(paths []string, format string, args ...any) {
		v.Problems = append(v.Problems, Problem{Err: ErrPartitionMismatch, Paths: paths, Text: fmt.Sprintf(format, args...)})
	}

	// One directory: every partition records the identity Init gave it
	// (format 1 partitions, written before identities, record none).
	byDir := map[string][]string{}
	for _, m := range metas {
		if m.dirID != "" {
			byDir[m.dirID] = append(byDir[m.dirID], m.path)
		}
	}
	if len(byDir) > 1 {
		ids := make([]string, 0, len(byDir))
		for id := range byDir {
			ids = append(ids, id)
		}
		// The largest group is this directory; ties in path order.
		sort.Slice(ids, func(a, b int) bool {
			if len(byDir[ids[a]]) != len(byDir[ids[b]]) {
				return len(byDir[ids[a]]) > len(byDir[ids[b]])
			}
			return byDir[ids[a]][0] < byDir[ids[b]][0]
		})
		var foreign []string
		var parts []string
		for _, id := range ids[1:] {
			foreign = append(foreign, byDir[id]...)
			parts = append(parts, fmt.Sprintf("%s (directory %s)", strings.Join(byDir[id], ", "), id))
		}
		mismatch(foreign, "%s %s from another recovery directory than %s (directory %s): each `runnel recovery init` gives its directory an identity, "+
			"and a partition of another directory would resume its keys from that directory's state; put back this directory's own files (all from one backup)",
			strings.Join(parts, "; "), plural(len(foreign), "comes", "come"), strings.Join(byDir[ids[0]], ", "), ids[0])
	}

	// One dataflow.
	flow, flowFile := "", ""
	for _, m := range metas {
		if m.flowID == "" {
			continue
		}
		if flow != "" && m.flowID != flow {
			mismatch([]string{flowFile, m.path}, "%s belongs to dataflow %q but %s to %q",
				flowFile, flow, m.path, m.flowID)
			break
		}
		flow, flowFile = m.flowID, m.path
	}

	// One history: an execution recorded by several partitions is recorded
	// alike (Begin writes the same row everywhere).
	type seenExec struct {
		e    execInfo
		path string
	}
	seen := map[int]seenExec{}
	conflict := false
	for i, h := range hists {
		for _, e := range h.execs {
			first, ok := seen[e.ex]
			if !ok {
				seen[e.ex] = seenExec{e, metas[i].path}
				continue
			}
			if !sameExecution(first.e, e) && !conflict {
				conflict = true
				mismatch([]string{first.path, metas[i].path},
					"%s and %s disagree about execution %d (%s, against %s): "+
						"they come from different histories (a copy of the directory that was run on its own, say); put back this directory's own files (all from one backup)",
					first.path, metas[i].path, e.ex, first.e, e)
			}
		}
	}
	// A partition that records no run beside one that committed epochs was
	// initialised anew or restored from before the first run; resuming
	// would silently start over.
	var blank, used []string
	for i, h := range hists {
		switch {
		case len(h.execs) == 0:
			blank = append(blank, metas[i].path)
		case h.committed():
			used = append(used, fmt.Sprintf("%s (frontier %d)", metas[i].path, hists[i].frontier()))
		}
	}
	if len(blank) > 0 && len(used) > 0 {
		mismatch(blank, "%s %s no run, but %s committed epochs: the file was initialised anew or restored from before the first run, "+
			"and resuming would start over from epoch 1; put back this directory's own files (all from one backup)",
			strings.Join(blank, ", "), plural(len(blank), "records", "record"), strings.Join(used, ", "))
	}
	if len(v.Problems) > 0 {
		return v
	}

	// Where the next execution resumes: each partition counts at the
	// frontier of its own newest execution. A partition can lag after a
	// crash in the middle of a commit or of Begin, or when it was restored
	// from an older copy; the whole directory then goes back to its epoch.
	last := execInfo{ex: -1}
	for _, h := range hists {
		if e := h.newest(); e.ex > last.ex {
			last = e
		}
	}
	v.Resume = Resume{Execution: 0, Epoch: 1, Fresh: true}
	if last.ex < 0 {
		return v
	}
	v.Resume = Resume{Execution: last.ex + 1, Epoch: math.MaxUint64, PrevWorkers: last.workers}
	for _, h := range hists {
		f := h.frontier()
		if f == 0 {
			f = 1 // knows of no commit at all
		}
		v.Resume.Epoch = min(v.Resume.Epoch, f)
	}
	// A partition never collects garbage past its own frontier (it
	// records the horizon only once every partition committed up to it):
	// one that says otherwise holds pages of different moments, such as a
	// -wal file put back beside a partition file it does not belong to.
	torn := false
	for _, p := range v.Partitions {
		if f := max(p.Frontier, 1); p.GCEpoch > f {
			torn = true
			v.Problems = append(v.Problems, Problem{Err: ErrStale, Paths: []string{p.Path}, Text: fmt.Sprintf(
				"%s is inconsistent in itself: its committed frontier is %d, but it already garbage-collected state before epoch %d, "+
					"which it only does once that epoch is committed. Its pages come from different moments: a -wal file that belongs to another copy of the file "+
					"(or an older -wal put back), or a copy of the file taken while a run wrote it. Put back the file with its own -wal and -shm files, "+
					"or restore all partitions from one backup",
				p.Path, f, p.GCEpoch)})
		}
	}
	if torn {
		return v
	}
	// Going back is exact only if every partition still holds the rows
	// that epoch needs: none may have collected garbage past it.
	r := v.Resume.Epoch
	var behind, ahead []string
	var aheadPaths []string
	for _, p := range v.Partitions {
		f := max(p.Frontier, 1)
		if f == r {
			behind = append(behind, fmt.Sprintf("%s (frontier %d)", p.Path, f))
		}
		if p.GCEpoch > r {
			ahead = append(ahead, fmt.Sprintf("%s (frontier %d, collected before epoch %d)", p.Path, f, p.GCEpoch))
			aheadPaths = append(aheadPaths, p.Path)
		}
	}
	if len(ahead) > 0 {
		var paths []string
		for _, p := range v.Partitions {
			if max(p.Frontier, 1) == r {
				paths = append(paths, p.Path)
			}
		}
		v.Problems = append(v.Problems, Problem{Err: ErrStale, Paths: append(paths, aheadPaths...), Text: fmt.Sprintf(
			"the next run would resume from epoch %d, where %s %s, but %s already garbage-collected state that a resume from epoch %d needs, "+
				"so state, input and output positions would be lost. The partitions behind were restored from an older copy, copied at another moment "+
				"than the others (further apart than the backup interval -b), or lost their -wal file. "+
				"Restore all partitions from one backup, or put back copies taken within -b of each other",
			r, strings.Join(behind, ", "), plural(len(behind), "stands", "stand"), strings.Join(ahead, ", "), r)})
	}
	return v
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// querier is what reading a partition's metadata and history needs: a
// *sql.DB, or a *sql.Tx that pins one snapshot of it.
type querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}
