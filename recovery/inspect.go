package recovery

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Report describes recovery data for `runnel recovery inspect`: enough to
// answer "where will the next run resume, and how much state is there".
type Report struct {
	Dir           string
	FormatVersion int // the partitions' format (the oldest, while an upgrade is under way)
	Codec         string
	DirID         string // identity given by init; "" for a format 1 directory
	FlowID        string // "" before the first execution
	Partitions    []PartitionReport
	Executions    []ExecutionReport // oldest first
	Steps         []StepReport      // sorted by id; includes steps with rows but no steps entry
	// ResumeEpoch is where the next execution would resume: the minimum
	// committed frontier of the last execution over all partitions (1 for a
	// fresh store). It is 0 when the directory cannot be resumed.
	ResumeEpoch uint64
	// Verdict is the consistency check of [Store.Check]; when it has
	// problems, the next run is refused with Verdict.Err().
	Verdict Verdict
}

// PartitionReport describes one partition file.
type PartitionReport struct {
	Index int
	File  string
	// Frontier is the committed frontier recorded in this partition: the
	// minimum over the last execution's workers (0 when none ran).
	Frontier uint64
	Rows     int64  // snapshot rows, including superseded ones and deletions
	GCEpoch  uint64 // rows before this epoch have been garbage-collected
	Format   int    // format_version of the file
}

// ExecutionReport describes one execution (one run).
type ExecutionReport struct {
	Num         int
	Workers     int
	ResumeEpoch uint64
	// Fronts holds each worker's committed frontier, the minimum over the
	// partitions; 0 for a worker that never committed.
	Fronts []uint64
}

// StepReport sums up the latest state of one step.
type StepReport struct {
	ID        string
	StateType string // as stored in the steps table; "" if absent
	Shape     string // the state type's shape as stored; "" if absent or format 1
	Keys      int64  // keys whose newest row holds a value
	Bytes     int64  // total encoded size of those values
	// PendingType is the type a state migration converted the step to in
	// a run that has not committed its first epoch, PendingEpoch: the
	// stored rows still have StateType, and PendingType applies once
	// PendingEpoch is committed (a crashed migrating run; the next run
	// converts again). "" when no migration is pending.
	PendingType  string
	PendingEpoch uint64
}

// Inspect opens dir with [OpenReadOnly] (it changes no byte of any file,
// and works on a read-only directory) and describes it, including the
// verdict of [Store.Check]. It fails like [Open] on a directory that is not
// a complete set of partitions, but not on one whose partitions disagree:
// that is in Report.Verdict.
func Inspect(dir string) (Report, error) {
	s, err := OpenReadOnly(dir)
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	return s.Report()
}

// Report describes the open store; see [Inspect].
func (s *Store) Report() (Report, error) {
	if err := s.checkOpen(); err != nil {
		return Report{}, err
	}
	r := Report{Dir: s.dir, FormatVersion: FormatVersion, FlowID: s.FlowID(), DirID: s.DirID()}
	v, err := s.Check()
	if err != nil {
		return Report{}, err
	}
	r.Verdict = v
	types, err := s.StepTypes()
	if err != nil {
		return Report{}, err
	}
	steps := map[string]*StepReport{}
	for id, t := range types {
		steps[id] = &StepReport{ID: id, StateType: t.Type, Shape: t.Shape}
	}
	for _, p := range s.parts {
		pending, err := readPending(p.db)
		if err != nil {
			return Report{}, fmt.Errorf("recovery: %s: read migrations: %w", p.name(), err)
		}
		for id, m := range pending {
			if st := steps[id]; st != nil && st.PendingType == "" && (st.StateType != m.Type || st.Shape != m.Shape) {
				st.PendingType, st.PendingEpoch = m.Type, m.Epoch
			}
		}
	}
	execs := map[int]*ExecutionReport{}
	lastEx := -1
	type front struct{ ex, w int }
	fronts := map[front]uint64{}
	r.ResumeEpoch = math.MaxUint64
	for _, p := range s.parts {
		fail := func(err error) (Report, error) {
			return Report{}, fmt.Errorf("recovery: inspect %s: %s: %w", s.dir, p.name(), err)
		}
		pr := PartitionReport{Index: p.index, File: p.name(), Format: p.format}
		r.FormatVersion = min(r.FormatVersion, p.format)
		var gc string
		if err := p.db.QueryRow("SELECT value FROM meta WHERE name = 'codec'").Scan(&r.Codec); err != nil {
			return fail(err)
		}
		if err := p.db.QueryRow("SELECT coalesce((SELECT value FROM meta WHERE name = 'gc_epoch'), '0')").Scan(&gc); err != nil {
			return fail(err)
		}
		fmt.Sscan(gc, &pr.GCEpoch)
		if err := p.db.QueryRow("SELECT count(*) FROM snaps").Scan(&pr.Rows); err != nil {
			return fail(err)
		}
		if p.format >= 3 {
			n, err := logEntries(p.db)
			if err != nil {
				return fail(err)
			}
			pr.Rows += n
		}
		rows, err := p.db.Query("SELECT ex_num, worker_count, resume_epoch FROM executions ORDER BY ex_num")
		if err != nil {
			return fail(err)
		}
		pexec := map[int]*ExecutionReport{}
		plast := -1
		for rows.Next() {
			var e ExecutionReport
			var resume int64
			if err := rows.Scan(&e.Num, &e.Workers, &resume); err != nil {
				rows.Close()
				return fail(err)
			}
			e.ResumeEpoch = uint64(resume)
			pexec[e.Num] = &e
			plast = max(plast, e.Num)
			if execs[e.Num] == nil {
				c := e
				execs[e.Num] = &c
			}
		}
		if err := rows.Close(); err != nil {
			return fail(err)
		}
		lastEx = max(lastEx, plast)
		rows, err = p.db.Query("SELECT ex_num, worker_index, worker_frontier FROM fronts")
		if err != nil {
			return fail(err)
		}
		pfronts := map[front]uint64{}
		for rows.Next() {
			var f front
			var v int64
			if err := rows.Scan(&f.ex, &f.w, &v); err != nil {
				rows.Close()
				return fail(err)
			}
			pfronts[f] = uint64(v)
			if old, ok := fronts[f]; !ok || uint64(v) < old {
				fronts[f] = uint64(v)
			}
		}
		if err := rows.Close(); err != nil {
			return fail(err)
		}
		if e := pexec[plast]; e != nil {
			pr.Frontier = math.MaxUint64
			for w := range e.Workers {
				f, ok := pfronts[front{plast, w}]
				if !ok {
					f = e.ResumeEpoch
				}
				pr.Frontier = min(pr.Frontier, f)
			}
		}
		r.Partitions = append(r.Partitions, pr)

		// Every key's newest row, from snaps and the change log together.
		var cur logRow
		have := false
		count := func() {
			if !have || cur.deleted {
				return
			}
			if steps[cur.step] == nil {
				steps[cur.step] = &StepReport{ID: cur.step}
			}
			steps[cur.step].Keys++
			steps[cur.step].Bytes += int64(len(cur.value))
		}
		err = scanPart(context.Background(), p.db, p.format, math.MaxInt64, "", nil, func(r *logRow) error {
			if have && r.key == cur.key && r.step == cur.step {
				cur = *r
				return nil
			}
			count()
			cur, have = *r, true
			return nil
		})
		if err != nil {
			return fail(err)
		}
		count()
	}
	for _, e := range execs {
		e.Fronts = make([]uint64, e.Workers)
		for w := range e.Workers {
			e.Fronts[w] = fronts[front{e.Num, w}]
		}
		r.Executions = append(r.Executions, *e)
	}
	sort.Slice(r.Executions, func(i, j int) bool { return r.Executions[i].Num < r.Executions[j].Num })
	for _, st := range steps {
		r.Steps = append(r.Steps, *st)
	}
	sort.Slice(r.Steps, func(i, j int) bool { return r.Steps[i].ID < r.Steps[j].ID })
	_ = lastEx
	r.ResumeEpoch = 0
	if len(v.Problems) == 0 {
		r.ResumeEpoch = v.Resume.Epoch
	}
	return r, nil
}

// WriteTo writes the report as aligned, human-readable text.
func (r Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	flow := r.FlowID
	if flow == "" {
		flow = "(none yet)"
	}
	fmt.Fprintf(&b, "recovery directory %s\n", r.Dir)
	fmt.Fprintf(&b, "  format %d, codec %s, %d partition(s)\n", r.FormatVersion, r.Codec, len(r.Partitions))
	id := r.DirID
	if id == "" {
		id = "(none: format 1, given by the next run)"
	}
	fmt.Fprintf(&b, "  directory identity %s\n", id)
	fmt.Fprintf(&b, "  dataflow %s\n", flow)
	if err := r.Verdict.Err(); err != nil {
		fmt.Fprintf(&b, "  next run is REFUSED:\n")
		for _, p := range r.Verdict.Problems {
			fmt.Fprintf(&b, "    %v: %s\n", p.Err, p.Text)
		}
	} else {
		fmt.Fprintf(&b, "  next run resumes at epoch %d\n", r.ResumeEpoch)
	}
	fmt.Fprintf(&b, "partitions:\n")
	for _, p := range r.Partitions {
		format := ""
		if p.Format != FormatVersion {
			format = fmt.Sprintf(", format %d", p.Format)
		}
		fmt.Fprintf(&b, "  %-18s frontier %d, %d rows, collected before epoch %d%s\n", p.File, p.Frontier, p.Rows, p.GCEpoch, format)
	}
	fmt.Fprintf(&b, "executions:\n")
	if len(r.Executions) == 0 {
		fmt.Fprintf(&b, "  (none)\n")
	}
	for _, e := range r.Executions {
		fronts := make([]string, len(e.Fronts))
		for i, f := range e.Fronts {
			fronts[i] = fmt.Sprint(f)
		}
		fmt.Fprintf(&b, "  #%d: %d worker(s), resumed at epoch %d, worker frontiers [%s]\n",
			e.Num, e.Workers, e.ResumeEpoch, strings.Join(fronts, " "))
	}
	fmt.Fprintf(&b, "steps:\n")
	if len(r.Steps) == 0 {
		fmt.Fprintf(&b, "  (none)\n")
	}
	for _, st := range r.Steps {
		typ := st.StateType
		if typ == "" {
			typ = "(not in steps table)"
		}
		fmt.Fprintf(&b, "  %s (%s): %d key(s), %d byte(s)", st.ID, typ, st.Keys, st.Bytes)
		if st.PendingType != "" {
			fmt.Fprintf(&b, "; migration to %s pending: it applies once epoch %d is committed", st.PendingType, st.PendingEpoch)
		}
		b.WriteString("\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// String returns the text WriteTo writes.
func (r Report) String() string {
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	return b.String()
}
