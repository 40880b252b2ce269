package recovery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// BackupResult says what [Backup] copied.
type BackupResult struct {
	Dest       string
	Partitions int
	// Resume is where a run on the copy resumes: the state after epoch
	// Resume.Epoch-1, committed in every copied partition.
	Resume Resume
	// Pins counts how often the partitions' snapshots were taken before
	// they held a common committed epoch (see Backup).
	Pins int
}

// backupPinned, when set by a test, is called after each partition's
// snapshot is pinned, to commit between two pins.
var backupPinned func(round, partition int)

// maxBackupRounds bounds how often Backup takes the partitions' snapshots.
const maxBackupRounds = 100

// checkAttempts is how many times Backup checks a source that looks out of
// step before it refuses it (see Backup).
const checkAttempts = 5

// Backup copies the recovery directory dir to dest, which must not exist,
// consistently even while a flow is running on dir: each partition is copied
// with SQLite's VACUUM INTO, a transactional snapshot of it (not a byte copy
// of a file being written), through a read-only connection. The copies are
// taken one after another, so a running flow may commit between them; the
// copied set resumes from the oldest copy's committed frontier, and the newer
// copies must still hold every row that epoch needs. When garbage collection
// (governed by the backup interval, -b) already removed some, Backup copies
// the lagging partitions again, until every copy holds one committed epoch
// (at most 20 rounds; a flow committing faster than partitions can be copied
// needs a larger -b). The finished copy is checked like [Store.Check] and
// renamed into place from a hidden directory beside dest
// (".NAME.backup-*"), so an interrupted backup leaves no dest (the next
// Backup to the same dest removes its leftovers), and its files are
// durable when Backup returns. It never writes to dir.
func Backup(dir, dest string) (BackupResult, error) {
	res := BackupResult{Dest: dest}
	fail := func(err error) (BackupResult, error) {
		return res, fmt.Errorf("recovery: backup %s to %s: %w", dir, dest, err)
	}
	if dest == "" {
		return fail(errors.New("the destination is empty; name a directory that does not exist yet"))
	}
	if _, err := os.Lstat(dest); err == nil {
		return fail(errors.New("the destination already exists; name a new directory (a backup never overwrites)"))
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail(accessErr(err))
	}
	// Validate the source as a run would, without writing to it. Check
	// reads the partitions one after another: while a flow commits, it
	// may read one partition before a commit and the next after the
	// commit that follows, and see them out of step although they never
	// were at any one moment. So a failed check is repeated a few times:
	// a running flow moves on, damage stays.
	var paths []string
	for attempt := 0; ; attempt++ {
		src, err := OpenReadOnly(dir)
		if err != nil {
			return res, err
		}
		v, err := src.Check()
		paths = make([]string, len(src.parts))
		for i, p := range src.parts {
			paths[i] = p.path
		}
		src.Close()
		if err != nil {
			return res, err
		}
		verr := v.Err()
		if verr == nil {
			break
		}
		if attempt == checkAttempts-1 {
			return fail(fmt.Errorf("the directory cannot be resumed, so no copy of it can: %w", verr))
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	res.Partitions = len(paths)

	clean := filepath.Clean(dest)
	parent := filepath.Dir(clean)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fail(err)
	}
	// What a killed backup to the same dest left (it never became dest).
	leftovers, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(clean)+".backup-*"))
	for _, l := range leftovers {
		if err := os.RemoveAll(l); err != nil {
			return fail(fmt.Errorf("removing what an interrupted backup left: %w", err))
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(clean)+".backup-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place
	copies := make([]string, len(paths))
	for i := range paths {
		copies[i] = filepath.Join(tmp, partFile(i))
	}
	parts := make([]*partition, len(paths))
	defer func() {
		for _, p := range parts {
			if p != nil {
				closePart(p)
			}
		}
	}()
	for i, path := range paths {
		p := &partition{index: i, path: path}
		parts[i] = p
		if err := p.openForBackup(); err != nil {
			return fail(fmt.Errorf("%s: %w", path, classify(path, err)))
		}
	}
	// Pin one snapshot of every partition (a read transaction each, taken
	// one right after the other) and judge them together; a commit that
	// lands between two pins can leave them without a common epoch when
	// garbage collection already moved on, so pin again.
	var txs []*sql.Tx
	release := func() {
		for _, tx := range txs {
			tx.Rollback()
		}
		txs = nil
	}
	defer release()
	var verdict Verdict
	for round := 1; ; round++ {
		metas := make([]partMeta, len(parts))
		hists := make([]partHistory, len(parts))
		for i, p := range parts {
			tx, err := p.db.Begin()
			if err != nil {
				return fail(fmt.Errorf("%s: %w", p.path, classify(p.path, err)))
			}
			txs = append(txs, tx)
			m, err := readMeta(tx, p.path)
			if err == nil {
				hists[i], err = readHistory(tx, m.format)
			}
			if err != nil {
				return fail(err)
			}
			metas[i] = m
			if backupPinned != nil {
				backupPinned(round, i)
			}
		}
		res.Pins = round
		verdict = judge(dir, metas, hists)
		if len(verdict.Problems) == 0 {
			break
		}
		stale := true
		for _, p := range verdict.Problems {
			stale = stale && errors.Is(p.Err, ErrStale)
		}
		if !stale {
			return fail(fmt.Errorf("the partitions do not form one history (did another run begin on the directory during the backup?): %w", verdict.Err()))
		}
		if round == maxBackupRounds {
			return fail(fmt.Errorf("the flow commits faster than the partitions can be read together: after %d tries they still held no common committed epoch; "+
				"run the flow with a backup interval (-b) of at least a few snapshot intervals: %w", maxBackupRounds, verdict.Err()))
		}
		release()
	}
	for i, p := range parts {
		if err := copyPartition(txs[i], copies[i], verdict.Resume.Epoch); err != nil {
			return fail(fmt.Errorf("copy %s: %w", p.path, err))
		}
	}
	release()
	// The copies, checked as a run on them will.
	if v, err := judgeCopies(tmp, copies); err != nil {
		return fail(err)
	} else if err := v.Err(); err != nil {
		return fail(fmt.Errorf("the copy is not consistent: %w", err))
	}
	res.Resume = verdict.Resume
	for _, c := range copies {
		if err := syncFile(c); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, clean); err != nil {
		return fail(err)
	}
	if err := syncDir(parent); err != nil {
		return fail(err)
	}
	return res, nil
}

// openForBackup opens p for reading while a run may write to it. A
// partition with a write-ahead log and its -shm index gets a plain read-only
// connection, which takes SQLite's read locks (in the -shm file, as every
// reader does), so that the writer's checkpoints cannot overwrite pages of a
// snapshot being copied. One without a log is read as immutable, and a log
// without its index (a crash's leftovers, no run is using it) from a private
// copy, as inspect does; neither writes to the directory.
func (p *partition) openForBackup() error {
	walInfo, err := os.Stat(p.path + "-wal")
	hasWAL := err == nil && walInfo.Size() > 0
	_, shmErr := os.Stat(p.path + "-shm")
	if !hasWAL || shmErr != nil {
		return p.openReadOnly()
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := openURI(fileURI(p.path, q))
	p.db = db
	return err
}

// copyPartition writes what tx sees of a partition into the new file to:
// the same schema (so a format 1 partition stays format 1) and every row,
// except snapshot rows at or after the resume epoch: they are not committed
// in every partition, and a run on the copy would delete them first.
func copyPartition(tx *sql.Tx, to string, resume uint64) error {
	f, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	db, err := openDB(to, "rw")
	if err != nil {
		return err
	}
	defer db.Close()
	var ddl, tabs []string
	rows, err := tx.Query(`SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var typ, name, stmt string
		if err := rows.Scan(&typ, &name, &stmt); err != nil {
			rows.Close()
			return err
		}
		ddl = append(ddl, stmt)
		if typ == "table" {
			tabs = append(tabs, name)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return inTx(context.Background(), db, func(out *sql.Tx) error {
		for _, stmt := range ddl {
			if _, err := out.Exec(stmt); err != nil {
				return err
			}
		}
		for _, t := range tabs {
			if err := copyTable(tx, out, t); err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
		}
		if _, err := out.Exec("DELETE FROM snaps WHERE epoch >= ?", int64(min(resume, math.MaxInt64))); err != nil {
			return err
		}
		if slices.Contains(tabs, "changes") {
			if _, err := out.Exec("DELETE FROM changes WHERE epoch >= ?", int64(min(resume, math.MaxInt64))); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyTable(in, out *sql.Tx, table string) error {
	quoted := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
	rows, err := in.Query("SELECT * FROM " + quoted)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	ins, err := out.Prepare("INSERT INTO " + quoted + " VALUES(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")")
	if err != nil {
		return err
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if _, err := ins.Exec(vals...); err != nil {
			return err
		}
	}
	return rows.Err()
}

// judgeCopies checks the copied partitions as Open would.
func judgeCopies(dir string, copies []string) (Verdict, error) {
	metas := make([]partMeta, len(copies))
	hists := make([]partHistory, len(copies))
	for i, c := range copies {
		db, err := openURI(roDSN(c, false))
		if err != nil {
			return Verdict{}, err
		}
		m, err := readMeta(db, c)
		if err == nil {
			hists[i], err = readHistory(db, m.format)
		}
		db.Close()
		if err != nil {
			return Verdict{}, fmt.Errorf("%s: %w", c, err)
		}
		metas[i] = m
	}
	indexes := make([]int, len(copies))
	for i := range indexes {
		indexes[i] = i
	}
	if err := checkSet(dir, indexes, metas); err != nil {
		return Verdict{}, err
	}
	return judge(dir, metas, hists), nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
