package recovery

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel/internal/codec"
)

// Finding is one thing [Verify] found, about one file or, for problems that
// involve several partitions, the directory.
type Finding struct {
	Path string // the partition file, or the directory
	// Warning marks a finding that does not stop a resume: rows written
	// after the last commit (a run stopped by a crash or a kill leaves
	// them; the next run deletes them).
	Warning bool
	Text    string
}

// String is the finding as verify prints it: the file, its kind and text.
func (f Finding) String() string {
	kind := "problem"
	if f.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s: %s: %s", f.Path, kind, f.Text)
}

// VerifiedPartition is what [Verify] read from one partition file.
type VerifiedPartition struct {
	Path     string
	Index    int
	Readable bool   // header, integrity_check and metadata passed
	Frontier uint64 // committed frontier of the newest execution (0 for none)
	Rows     int64  // snapshot rows checked
}

// VerifyReport is the result of [Verify].
type VerifyReport struct {
	Dir        string
	Partitions []VerifiedPartition // the files found, in index order
	Findings   []Finding           // in file order; directory-wide ones last
	// Resume is where the next run would resume; meaningful only when
	// Problems returns 0.
	Resume Resume
}

// Problems counts the findings that stop a resume.
func (r VerifyReport) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if !f.Warning {
			n++
		}
	}
	return n
}

// Warnings counts the findings that do not stop a resume.
func (r VerifyReport) Warnings() int { return len(r.Findings) - r.Problems() }

// Verify checks, without running a flow and without modifying a byte of any
// file in dir (it reads like [OpenReadOnly]), everything a resume of dir
// relies on, and reports every finding rather than stopping at the first:
//
//   - the directory holds exactly part-0 … part-{N-1}.sqlite3 and no
//     interrupted init; every file has an intact SQLite header and passes
//     SQLite's PRAGMA integrity_check;
//   - every partition has the Runnel schema, a format and codec this
//     release reads, and records its own index and the same count N;
//   - executions are coherent within each partition (worker counts, and
//     frontiers that belong to a recorded execution and worker and are not
//     before its resume epoch), and the partitions agree as [Store.Check]
//     requires (one directory identity, one dataflow, one history, none
//     behind what the others garbage-collected);
//   - every stored value is well-formed CBOR, and every row is in the
//     partition [PartitionFor] assigns to its step and key;
//   - rows at or after a partition's committed frontier are reported as
//     warnings: they were never committed, and the next run deletes them.
//
// The error is for a directory that cannot be examined at all (missing,
// not a directory, no partition files).
func Verify(dir string) (VerifyReport, error) {
	r := VerifyReport{Dir: dir}
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return r, notInitialized(dir)
	}
	if err != nil {
		return r, fmt.Errorf("recovery: verify %s: %w", dir, accessErr(err))
	}
	if !st.IsDir() {
		return r, fmt.Errorf("recovery: verify %s: %w: not a directory", dir, ErrNotInitialized)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return r, fmt.Errorf("recovery: verify %s: %w", dir, accessErr(err))
	}
	var dirFindings []Finding
	problem := func(path, format string, args ...any) {
		dirFindings = append(dirFindings, Finding{Path: path, Text: fmt.Sprintf(format, args...)})
	}
	byIndex := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if name == initMarker {
			problem(filepath.Join(dir, name), "`runnel recovery init` was interrupted; remove the part-*.sqlite3 files and %s, and run init again", name)
		}
		if ok, _ := filepath.Match("part-*.sqlite3", name); !ok {
			continue
		}
		m := partName.FindStringSubmatch(name)
		if m == nil || !e.Type().IsRegular() {
			problem(filepath.Join(dir, name), "unexpected file: %s; partition files are regular files named part-0.sqlite3 … part-{N-1}.sqlite3",
				strayReason(dir, e, m != nil))
			continue
		}
		i, _ := strconv.Atoi(m[1])
		byIndex[i] = filepath.Join(dir, name)
	}
	if len(byIndex) == 0 {
		return r, notInitialized(dir)
	}
	indexes := make([]int, 0, len(byIndex))
	for i := range byIndex {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)

	// Each file on its own.
	var metas []partMeta
	var hists []partHistory
	var vps []*VerifiedPartition
	var rowChecks []func() []Finding
	allRead := true
	for _, i := range indexes {
		path := byIndex[i]
		vp := &VerifiedPartition{Path: path, Index: i}
		r.Partitions = append(r.Partitions, VerifiedPartition{})
		vps = append(vps, vp)
		m, h, check, fs := verifyFile(path, i)
		r.Findings = append(r.Findings, fs...)
		if check == nil {
			allRead = false
			continue
		}
		vp.Readable = true
		vp.Frontier = h.frontier()
		metas = append(metas, m)
		hists = append(hists, h)
		rowChecks = append(rowChecks, func() []Finding { return check(vp) })
	}

	// The set of files: one count, every index present.
	if len(metas) > 0 {
		counts := map[int][]string{}
		for _, m := range metas {
			counts[m.count] = append(counts[m.count], m.path)
		}
		n := metas[0].count
		if len(counts) > 1 {
			var parts []string
			for c, paths := range counts {
				if len(paths) > len(counts[n]) || (len(paths) == len(counts[n]) && c > n) {
					n = c
				}
				parts = append(parts, fmt.Sprintf("%s: %d", strings.Join(paths, ", "), c))
			}
			sort.Strings(parts)
			problem(dir, "the partitions disagree about the partition count (%s); the files come from different recovery directories", strings.Join(parts, "; "))
		}
		for _, i := range indexes {
			if i >= n {
				problem(byIndex[i], "out of range: the partitions say there are %d (part-0 … part-%d)", n, n-1)
			}
		}
		for i := range n {
			if _, ok := byIndex[i]; !ok {
				allRead = false
				problem(filepath.Join(dir, partFile(i)), "missing: the partitions say there are %d; without it the keys and positions it holds would start over. "+
					"Put back this directory's own file (all partitions from one backup)", n)
			}
		}
	}
	// The rows, now that the partition count is known to be right.
	for _, check := range rowChecks {
		r.Findings = append(r.Findings, check()...)
	}
	// The history across partitions, as a run would judge it.
	if allRead && len(dirFindings) == 0 {
		v := judge(dir, metas, hists)
		for _, p := range v.Problems {
			problem(dir, "%v: %s", p.Err, p.Text)
		}
		r.Resume = v.Resume
	}
	for i, vp := range vps {
		r.Partitions[i] = *vp
	}
	r.Findings = append(r.Findings, dirFindings...)
	return r, nil
}

// verifyFile checks one partition file on its own. When it could be read,
// check (nil otherwise) goes on to check its rows.
func verifyFile(path string, index int) (partMeta, partHistory, func(*VerifiedPartition) []Finding, []Finding) {
	var fs []Finding
	problem := func(format string, args ...any) {
		fs = append(fs, Finding{Path: path, Text: fmt.Sprintf(format, args...)})
	}
	// Errors below name the path already; the finding does too.
	strip := func(err error) string { return strings.ReplaceAll(err.Error(), path+": ", "") }
	if err := checkHeader(path); err != nil {
		problem("%s", strip(err))
		return partMeta{}, partHistory{}, nil, fs
	}
	p := &partition{index: index, path: path}
	if err := p.openReadOnly(); err != nil {
		problem("cannot be opened: %s", strip(err))
		closePart(p)
		return partMeta{}, partHistory{}, nil, fs
	}
	if msgs, err := integrity(p.db); err != nil {
		problem("integrity_check failed: %s", strip(classify(path, err)))
		closePart(p)
		return partMeta{}, partHistory{}, nil, fs
	} else if len(msgs) > 0 {
		problem("SQLite integrity_check: %s", strings.Join(msgs, "; "))
		closePart(p)
		return partMeta{}, partHistory{}, nil, fs
	}
	m, err := readMeta(p.db, path)
	if err != nil {
		problem("%s", strip(err))
		closePart(p)
		return partMeta{}, partHistory{}, nil, fs
	}
	p.format = m.format
	if m.index != index {
		problem("records partition index %d; was it renamed?", m.index)
	}
	h, err := readHistory(p.db, m.format)
	if err != nil {
		problem("%s", strip(classify(path, err)))
		closePart(p)
		return partMeta{}, partHistory{}, nil, fs
	}
	fs = append(fs, coherent(p, h)...)
	check := func(vp *VerifiedPartition) []Finding {
		defer closePart(p)
		return checkRows(p, m, h, vp)
	}
	return m, h, check, fs
}

func closePart(p *partition) {
	if p.db != nil {
		p.db.Close()
	}
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
}

// integrity runs PRAGMA integrity_check and returns its messages, none
// when the file is intact.
func integrity(db *sql.DB) ([]string, error) {
	rows, err := db.Query("PRAGMA integrity_check(20)")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		if m != "ok" {
			msgs = append(msgs, m)
		}
	}
	return msgs, rows.Err()
}

// coherent checks one partition's executions and frontiers against each
// other.
func coherent(p *partition, h partHistory) []Finding {
	var fs []Finding
	problem := func(format string, args ...any) {
		fs = append(fs, Finding{Path: p.path, Text: fmt.Sprintf(format, args...)})
	}
	execs := map[int]execInfo{}
	for _, e := range h.execs {
		execs[e.ex] = e
		if e.workers < 1 {
			problem("execution %d records %d workers", e.ex, e.workers)
		}
		if e.resume < 1 {
			problem("execution %d records resume epoch %d; epochs start at 1", e.ex, e.resume)
		}
	}
	rows, err := p.db.Query("SELECT ex_num, worker_index, worker_frontier FROM fronts ORDER BY ex_num, worker_index")
	if err != nil {
		problem("read fronts: %v", err)
		return fs
	}
	defer rows.Close()
	for rows.Next() {
		var ex, w int
		var f int64
		if err := rows.Scan(&ex, &w, &f); err != nil {
			problem("read fronts: %v", err)
			return fs
		}
		e, ok := execs[ex]
		switch {
		case !ok:
			problem("a frontier of worker %d belongs to execution %d, which the partition does not record", w, ex)
		case w < 0 || w >= e.workers:
			problem("a frontier belongs to worker %d of execution %d, which had %d worker(s)", w, ex, e.workers)
		case uint64(f) < e.resume:
			problem("worker %d of execution %d records frontier %d, before the execution's resume epoch %d", w, ex, f, e.resume)
		}
	}
	if err := rows.Err(); err != nil {
		problem("read fronts: %v", err)
	}
	return fs
}

// maxListed bounds how many rows one finding names.
const maxListed = 5

// checkLog reads every batch of one partition's change log, passing each
// entry to check.
func checkLog(p *partition, check func(step, key string, epoch int64, value []byte), problem func(format string, args ...any)) {
	rows, err := p.db.Query("SELECT seq, epoch, step_id, entries, batch FROM changes ORDER BY seq")
	if err != nil {
		problem("read the change log: %v", err)
		return
	}
	defer rows.Close()
	var undecodable []string
	for rows.Next() {
		var seq, epoch, n int64
		var step string
		var batch string
		if err := rows.Scan(&seq, &epoch, &step, &n, &batch); err != nil {
			problem("read the change log: %v", err)
			return
		}
		var entries []logRow
		err := decodeBatch(batch, n, func(key string, value []byte, deleted bool) {
			entries = append(entries, logRow{key: key, value: value, deleted: deleted})
		})
		if err != nil {
			undecodable = append(undecodable, fmt.Sprintf("seq %d (step %s, epoch %d, %d bytes): %v", seq, step, epoch, len(batch), err))
			continue
		}
		for _, e := range entries {
			check(step, e.key, epoch, e.value)
		}
	}
	if err := rows.Err(); err != nil {
		problem("read the change log: %v", err)
	}
	if len(undecodable) > 0 {
		problem("%d change log batch(es) cannot be decoded, so a resume would fail on them: %s", len(undecodable), strings.Join(undecodable, "; "))
	}
}

// checkRows reads every snapshot row of one partition, from snaps and the
// change log.
func checkRows(p *partition, m partMeta, h partHistory, vp *VerifiedPartition) []Finding {
	var fs []Finding
	problem := func(format string, args ...any) {
		fs = append(fs, Finding{Path: p.path, Text: fmt.Sprintf(format, args...)})
	}
	rows, err := p.db.Query("SELECT step_id, state_key, epoch, ser_change FROM snaps ORDER BY step_id, state_key, epoch")
	if err != nil {
		problem("read snapshot rows: %v", err)
		return fs
	}
	defer rows.Close()
	frontier := h.frontier()
	if h.newest().ex < 0 {
		frontier = 1 // no run: nothing was ever committed
	}
	var bad, misplaced []string
	nBad, nMisplaced, nLate := 0, 0, 0
	var lateMin, lateMax int64
	check := func(step, key string, epoch int64, value []byte) {
		vp.Rows++
		if value != nil {
			if err := codec.Wellformed(value); err != nil {
				nBad++
				if len(bad) < maxListed {
					bad = append(bad, fmt.Sprintf("step %s key %q epoch %d (%d bytes): %v", step, key, epoch, len(value), err))
				}
			}
		}
		if want := PartitionFor(step, key, m.count); want != p.index && m.count > 0 {
			nMisplaced++
			if len(misplaced) < maxListed {
				misplaced = append(misplaced, fmt.Sprintf("step %s key %q epoch %d belongs in %s", step, key, epoch, partFile(want)))
			}
		}
		if epoch < 1 {
			problem("step %s key %q has a row at epoch %d; epochs start at 1", step, key, epoch)
		}
		if uint64(epoch) >= frontier {
			if nLate == 0 || epoch < lateMin {
				lateMin = epoch
			}
			lateMax = max(lateMax, epoch)
			nLate++
		}
	}
	for rows.Next() {
		var step, key string
		var epoch int64
		var value []byte
		if err := rows.Scan(&step, &key, &epoch, &value); err != nil {
			problem("read snapshot rows: %v", err)
			return fs
		}
		check(step, key, epoch, value)
	}
	if err := rows.Err(); err != nil {
		problem("read snapshot rows: %v", err)
	}
	if m.format >= 3 {
		checkLog(p, check, problem)
	}
	more := func(n int) string {
		if n > maxListed {
			return fmt.Sprintf("; and %d more", n-maxListed)
		}
		return ""
	}
	if nBad > 0 {
		problem("%d stored value(s) cannot be decoded, so a resume would fail on them: %s%s", nBad, strings.Join(bad, "; "), more(nBad))
	}
	if nMisplaced > 0 {
		problem("%d row(s) in the wrong partition (a resume would load them beside the right partition's rows for the same key): %s%s",
			nMisplaced, strings.Join(misplaced, "; "), more(nMisplaced))
	}
	if nLate > 0 {
		fs = append(fs, Finding{Path: p.path, Warning: true, Text: fmt.Sprintf(
			"%d row(s) at epochs %d to %d, at or after the committed frontier %d: never committed (a run stopped by a crash or kill before committing them leaves such rows); the next run deletes them and resumes from the committed state",
			nLate, lateMin, lateMax, frontier)})
	}
	return fs
}

// WriteTo writes the report as text, one line per file, each finding under
// the file it is about, and a last line with the verdict.
func (r VerifyReport) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "verify %s: %d partition file(s)\n", r.Dir, len(r.Partitions))
	byPath := map[string][]Finding{}
	for _, f := range r.Findings {
		byPath[f.Path] = append(byPath[f.Path], f)
	}
	printed := map[string]bool{}
	show := func(path string) {
		printed[path] = true
		for _, f := range byPath[path] {
			kind := "PROBLEM"
			if f.Warning {
				kind = "warning"
			}
			fmt.Fprintf(&b, "    %s: %s\n", kind, f.Text)
		}
	}
	for _, p := range r.Partitions {
		status := "ok"
		for _, f := range byPath[p.Path] {
			if !f.Warning {
				status = "DAMAGED"
				break
			}
		}
		if p.Readable {
			fmt.Fprintf(&b, "  %s: %s (frontier %d, %d row(s))\n", p.Path, status, p.Frontier, p.Rows)
		} else {
			fmt.Fprintf(&b, "  %s: %s (unreadable)\n", p.Path, status)
		}
		show(p.Path)
	}
	for _, f := range r.Findings {
		if printed[f.Path] {
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", f.Path)
		show(f.Path)
	}
	switch n := r.Problems(); {
	case n > 0:
		fmt.Fprintf(&b, "%d problem(s), %d warning(s): the next run would be refused or could not resume exactly; nothing was changed\n", n, r.Warnings())
	case r.Resume.Fresh:
		fmt.Fprintf(&b, "ok, %d warning(s): no run has committed yet; the next run starts at epoch 1\n", r.Warnings())
	default:
		fmt.Fprintf(&b, "ok, %d warning(s): the next run resumes at epoch %d as execution %d\n", r.Warnings(), r.Resume.Epoch, r.Resume.Execution)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
