package recovery

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"modernc.org/sqlite" // registers the "sqlite" driver; hidden behind Store

	"github.com/runnel-dev/runnel/internal/codec"
)

// FormatVersion is the version of the partition schema described in the
// package documentation. A partition with a larger format_version is refused
// with [ErrVersion]. Format 1 partitions (no directory identity, no state
// shapes) are read as they are and upgraded to format 2 in place by the next
// run ([Store.Begin]); so are format 2 partitions (no change log). Reading
// one (inspect, --recovery-plan) never upgrades it.
const FormatVersion = 3

// oldestFormat is the oldest format this release reads.
const oldestFormat = 1

const createdBy = "runnel"

// schema creates one partition. It is part of the public, versioned contract
// documented in doc.go: change it only together with FormatVersion.
var schema = []string{
	`CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE steps(step_id TEXT PRIMARY KEY, state_type TEXT NOT NULL, state_shape TEXT NOT NULL DEFAULT '') WITHOUT ROWID`,
	`CREATE TABLE executions(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL, resume_epoch INTEGER NOT NULL,
		exec_id TEXT NOT NULL DEFAULT '')`,
	`CREATE TABLE fronts(ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL, worker_frontier INTEGER NOT NULL,
		PRIMARY KEY(ex_num, worker_index)) WITHOUT ROWID`,
	`CREATE TABLE snaps(step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL, ser_change BLOB,
		PRIMARY KEY(step_id, state_key, epoch)) WITHOUT ROWID`,
	`CREATE INDEX snaps_epoch ON snaps(epoch)`,
	`CREATE INDEX snaps_deleted ON snaps(epoch) WHERE ser_change IS NULL`,
	changesTable,
}

// changesTable is the change log, new in format 3.
const changesTable = `CREATE TABLE changes(seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, step_id TEXT NOT NULL,
		entries INTEGER NOT NULL, batch TEXT NOT NULL)`

// tables are the tables every partition has; format 3 adds changes.
var tables = []string{"meta", "steps", "executions", "fronts", "snaps"}

var partName = regexp.MustCompile(`^part-(0|[1-9][0-9]{0,8})\.sqlite3$`)

func partFile(i int) string { return fmt.Sprintf("part-%d.sqlite3", i) }

// PartitionFor returns the partition, in [0, n), that stores the rows of
// state key key of step step. It is xxhash64(step + "\x00" + key) mod n, a
// frozen function: changing it would strand every existing row.
func PartitionFor(step, key string, n int) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(step)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(key)
	return int(d.Sum64() % uint64(n))
}

// Store is an open set of recovery partitions. Its methods are safe for
// concurrent use; each partition is an independent SQLite file, and
// operations that touch every partition run on all of them in parallel.
//
// Any error from a method that writes (Begin, WriteEpoch, Commit) must end
// the run: the partitions may then hold a mix of old and new data, which the
// next [Store.Begin] resolves by resuming from the older epoch.
type Store struct {
	dir   string
	parts []*partition

	readOnly bool    // opened by OpenReadOnly: nothing may write
	verdict  Verdict // of the directory as opened

	mu      sync.Mutex
	closed  bool
	flowID  string
	dirID   string // "" for a directory still in format 1
	begun   bool
	ex      int      // current execution, valid when begun
	resume  uint64   // its resume epoch
	fronts  []uint64 // per worker of the current execution: last committed frontier
	gcEpoch []uint64 // per partition: horizon of the last garbage collection
	// nextHorizon is the horizon the last Commit's frontiers allow, which
	// the next Commit records.
	nextHorizon uint64
	lock        *os.File // held by Lock until Close

	// writing is held by WriteEpoch; it guards the partitions' scratch.
	writing sync.Mutex
}

type partition struct {
	index  int
	path   string // dir joined with the file name, as errors show it
	db     *sql.DB
	format int    // format_version as opened; as opened until Begin upgrades it
	tmpDir string // a private copy read instead of path (read-only opens), removed by Close
	// opened is path's file as it was just before SQLite opened it
	// (read-write opens), for Lock to tell that it is still the file at
	// path: a repartition or restore may replace it in between.
	opened os.FileInfo
	// log is what the change log holds per epoch, from Begin on; guarded
	// by the Store's mu.
	log map[int64]logStats
	// base is what the log held below the horizon after the last
	// compaction (at Begin: all of it); Compact waits for twice as much.
	base logStats
	// WriteEpoch's scratch, kept from one epoch to the next: the rows
	// of this partition, and the text of a batch.
	rows   []int32
	text   []byte
	sorter rowSorter
	// compacting is held by a compaction of the partition; it guards
	// compactScratch.
	compacting     sync.Mutex
	compactScratch compactScratch
}

func (p *partition) name() string { return p.path }

// dsn builds the SQLite URI for path. mode is "rw" (open, never create) or
// "rwc" (create). The pragmas apply to every pooled connection; none of them
// writes to the file. synchronous=FULL makes every commit fsync the WAL, which
// is what lets a nil error from WriteEpoch and Commit mean "durable".
func dsn(path, mode string) string {
	q := url.Values{}
	q.Set("mode", mode)
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "mmap_size(268435456)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Add("_pragma", "temp_store(MEMORY)")
	return fileURI(path, q)
}

// roDSN builds the URI of a read-only connection that changes no byte of
// the partition, its -wal or its -shm. SQLite's plain mode=ro is not enough:
// it writes read marks into the -shm file, and creates -wal and -shm when
// they are missing. So a partition with a write-ahead log is read with
// readonly_shm (the -shm file is opened read-only; SQLite falls back to a
// private heap copy of the index when it cannot use it), and one without a
// log as immutable (no locks, no side files).
func roDSN(path string, hasWAL bool) string {
	q := url.Values{}
	q.Set("mode", "ro")
	if hasWAL {
		q.Set("readonly_shm", "1")
	} else {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "temp_store(MEMORY)")
	return fileURI(path, q)
}

func fileURI(path string, q url.Values) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String()
}

func openDB(path, mode string) (*sql.DB, error) {
	return openURI(dsn(path, mode))
}

func openURI(uri string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	return db, nil
}

// initMarker is created in a non-empty directory before Init moves the
// partition files into it and removed after the last one, so that an
// interrupted Init is recognised instead of reported as a missing partition.
const initMarker = ".runnel-init"

// Init creates the recovery directory dir (with parents) and n empty
// partitions, part-0.sqlite3 … part-{n-1}.sqlite3, all recording the same
// new directory identity. n is fixed for the life of the recovery data; the
// number of workers may change between runs.
//
// Init refuses, with [ErrAlreadyInitialized], a directory that already holds
// partition files. It is atomic: the partitions are built in a hidden
// directory beside dir (".NAME.init-*") and renamed into place when complete,
// so that an interrupted Init leaves either no dir or a complete one. (When
// dir already exists and holds other files, the finished partitions are
// moved in one by one under a marker file, .runnel-init, that [Open]
// recognises.) On a nil error the files and their directory entries are
// durable.
func Init(dir string, n int) error {
	if dir == "" {
		return errors.New("recovery: init: the directory is empty; name the directory to create (`runnel recovery init DIR N`)")
	}
	if n < 1 {
		return fmt.Errorf("recovery: init %s: partition count must be at least 1, got %d", dir, n)
	}
	clean := filepath.Clean(dir)
	parent := filepath.Dir(clean)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	var entries []os.DirEntry
	st, err := os.Stat(clean)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("recovery: init %s: not a directory", dir)
	default:
		if entries, err = os.ReadDir(clean); err != nil {
			return fmt.Errorf("recovery: init %s: %w", dir, err)
		}
	}
	var existing []string
	for _, e := range entries {
		if ok, _ := filepath.Match("part-*.sqlite3*", e.Name()); ok || e.Name() == initMarker {
			existing = append(existing, e.Name())
		}
	}
	if len(existing) > 0 {
		sort.Strings(existing)
		return fmt.Errorf("recovery: init %s: %w: found %s; remove the directory first to start over",
			dir, ErrAlreadyInitialized, strings.Join(existing, ", "))
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(clean)+".init-")
	if err != nil {
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place
	id, err := newDirID()
	if err != nil {
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	for i := range n {
		if err := createPartition(filepath.Join(tmp, partFile(i)), i, n, id); err != nil {
			return fmt.Errorf("recovery: init %s: %s: %w", dir, partFile(i), err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	// rename(2) replaces a missing or empty directory atomically.
	if len(entries) == 0 {
		if err := os.Rename(tmp, clean); err == nil {
			if err := syncDir(parent); err != nil {
				return fmt.Errorf("recovery: init %s: %w", dir, err)
			}
			return nil
		} else if st == nil {
			return fmt.Errorf("recovery: init %s: %w", dir, err)
		}
	}
	return moveInto(tmp, clean, n)
}

// moveInto moves the partitions built in tmp into the existing directory
// dir under the init marker.
func moveInto(tmp, dir string, n int) error {
	fail := func(err error) error { return fmt.Errorf("recovery: init %s: %w", dir, err) }
	marker := filepath.Join(dir, initMarker)
	if err := os.WriteFile(marker, []byte("runnel recovery init is in progress or was interrupted\n"), 0o644); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	for i := range n {
		if err := os.Rename(filepath.Join(tmp, partFile(i)), filepath.Join(dir, partFile(i))); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	if err := os.Remove(marker); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return nil
}

func newDirID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("directory identity: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func createPartition(path string, index, n int, dirID string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	db, err := openDB(path, "rwc")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	meta := [][2]string{
		{"format_version", strconv.Itoa(FormatVersion)},
		{"partition_index", strconv.Itoa(index)},
		{"partition_count", strconv.Itoa(n)},
		{"codec", codec.Name},
		{"flow_id", ""},
		{"created_by", createdBy},
		{"gc_epoch", "0"},
		{"dir_id", dirID},
	}
	for _, kv := range meta {
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta(name, value) VALUES(?, ?)", kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return db.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

func notInitialized(dir string) error {
	clean := filepath.Clean(dir)
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(clean), "."+filepath.Base(clean)+".init-*"))
	if len(left) > 0 {
		return fmt.Errorf("recovery: %s: %w: `runnel recovery init` was interrupted and left %s; remove it and run `runnel recovery init %s N` again",
			dir, ErrNotInitialized, strings.Join(left, ", "), dir)
	}
	return fmt.Errorf("recovery: %s: %w; run `runnel recovery init %s N` to create N partitions",
		dir, ErrNotInitialized, dir)
}

// partMeta is what Open reads from one partition before trusting it.
type partMeta struct {
	path    string
	index   int // from meta
	count   int // from meta
	format  int
	flowID  string
	dirID   string // "" in format 1
	gcEpoch uint64
}

// Open opens every partition in dir for a run and validates all of them
// before returning: they must form one complete set (same partition count,
// indexes 0..N-1 matching their file names), be readable SQLite files with
// the Runnel schema, in a format and codec this release reads, writable, and
// consistent with each other (see [Store.Check]: one directory identity, one
// dataflow, one history, and no partition behind what the others have
// garbage-collected). Validation never modifies a file; it fails with
// [ErrNotInitialized], [ErrPartitionMismatch], [ErrStale], [ErrCorrupt],
// [ErrVersion] or [ErrAccess], naming the files.
func Open(dir string) (*Store, error) {
	// Validate read-only first: closing a read-write connection checkpoints
	// the -wal into the partition and deletes it, which a refusal must not.
	ro, err := open(dir, true)
	if err != nil {
		return nil, err
	}
	verr := ro.verdict.Err()
	if err := ro.closeAll(); err != nil && verr == nil {
		verr = fmt.Errorf("recovery: open %s: %w", dir, err)
	}
	if verr != nil {
		return nil, verr
	}
	return open(dir, false)
}

// OpenReadOnly opens dir for inspection: it never modifies a byte of any
// file in dir (not even SQLite's -wal and -shm files, which a normal open
// would checkpoint and delete), works on a read-only directory, and opens a
// directory whose partitions are inconsistent, reporting that in
// [Store.Check] rather than failing. Methods that write return [ErrReadOnly].
//
// SQLite cannot read a partition's write-ahead log without its -shm index
// when it may not create one; such a partition (its -wal was copied without
// the -shm) is read from a private copy in the system's temporary directory.
func OpenReadOnly(dir string) (*Store, error) {
	return open(dir, true)
}

func open(dir string, readOnly bool) (*Store, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, notInitialized(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: open %s: %w", dir, accessErr(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("recovery: open %s: %w: not a directory", dir, ErrNotInitialized)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: open %s: %w", dir, accessErr(err))
	}
	byIndex := map[int]string{}
	var stray []string
	interrupted := false
	for _, e := range entries {
		name := e.Name()
		if name == initMarker {
			interrupted = true
		}
		if ok, _ := filepath.Match("part-*.sqlite3", name); !ok {
			continue
		}
		m := partName.FindStringSubmatch(name)
		if m == nil || !e.Type().IsRegular() {
			stray = append(stray, name+" ("+strayReason(dir, e, m != nil)+")")
			continue
		}
		i, _ := strconv.Atoi(m[1])
		byIndex[i] = filepath.Join(dir, name)
	}
	if interrupted {
		return nil, fmt.Errorf("recovery: open %s: %w: `runnel recovery init` was interrupted (%s is still there); remove the part-*.sqlite3 files and %s, and run init again",
			dir, ErrNotInitialized, filepath.Join(dir, initMarker), initMarker)
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		return nil, fmt.Errorf("recovery: open %s: %w: unexpected %s; partition files are regular files named part-0.sqlite3 … part-{N-1}.sqlite3",
			dir, ErrPartitionMismatch, strings.Join(stray, ", "))
	}
	if len(byIndex) == 0 {
		return nil, notInitialized(dir)
	}
	indexes := make([]int, 0, len(byIndex))
	for i := range byIndex {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)

	// Cheap checks of every file before SQLite touches any of them.
	for _, i := range indexes {
		if err := checkHeader(byIndex[i]); err != nil {
			return nil, fmt.Errorf("recovery: open %s: %w", dir, err)
		}
	}
	if !readOnly {
		if err := checkWritable(dir, indexes, byIndex); err != nil {
			return nil, err
		}
	}

	s := &Store{dir: dir, readOnly: readOnly}
	metas := make([]partMeta, 0, len(indexes))
	hists := make([]partHistory, 0, len(indexes))
	for _, i := range indexes {
		path := byIndex[i]
		p := &partition{index: i, path: path}
		var err error
		if readOnly {
			err = p.openReadOnly()
		} else {
			p.opened, err = os.Stat(path)
			if err == nil {
				p.db, err = openDB(path, "rw")
			}
			if err == nil {
				err = probe(p.db)
			}
		}
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", path, accessErr(err))
		}
		s.parts = append(s.parts, p)
		m, err := readMeta(p.db, path)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", dir, err)
		}
		p.format = m.format
		metas = append(metas, m)
		h, err := readHistory(p.db, m.format)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", dir, damaged(path, err))
		}
		hists = append(hists, h)
	}
	if err := checkSet(dir, indexes, metas); err != nil {
		s.closeAll()
		return nil, err
	}
	s.verdict = judge(dir, metas, hists)
	s.gcEpoch = make([]uint64, len(metas))
	for i, m := range metas {
		s.gcEpoch[i] = m.gcEpoch
		if m.flowID != "" {
			s.flowID = m.flowID
		}
		if m.dirID != "" {
			s.dirID = m.dirID
		}
	}
	if readOnly {
		return s, nil
	}
	// Persistent and idempotent: a no-op on the files Init created.
	for _, p := range s.parts {
		if _, err := p.db.Exec("PRAGMA journal_mode=WAL"); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", p.path, classify(p.path, err))
		}
	}
	return s, nil
}

// strayReason says why the entry e of dir, named like a partition, is not
// one: its name is not part-N.sqlite3 (named false), or it is not a
// regular file. A symbolic link is refused rather than followed: the lock,
// the -wal and the -shm files would live beside the link, not the file.
func strayReason(dir string, e fs.DirEntry, named bool) string {
	switch t := e.Type(); {
	case !named:
		return "not a partition file name"
	case t.IsDir():
		return "a directory, not a partition file"
	case t&fs.ModeSymlink != 0:
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			return "a symbolic link; copy or move the partition file itself here"
		}
		return fmt.Sprintf("a symbolic link to %s; copy or move the partition file itself here", target)
	default:
		return fmt.Sprintf("not a regular file (%s)", t)
	}
}

// openReadOnly opens p.path without changing any file; see OpenReadOnly.
func (p *partition) openReadOnly() error {
	walInfo, err := os.Stat(p.path + "-wal")
	hasWAL := err == nil && walInfo.Size() > 0
	if !hasWAL {
		db, err := openURI(roDSN(p.path, false))
		p.db = db
		return err
	}
	if _, err := os.Stat(p.path + "-shm"); err == nil {
		db, err := openURI(roDSN(p.path, true))
		if err != nil {
			return err
		}
		// After a crash the -shm index may need a recovery that a reader
		// without write access to it cannot run; SQLite then answers
		// "locking protocol" (or a read-only variant) to the first query.
		// Probe now and read such a partition from a private copy instead.
		var n int
		perr := db.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n)
		if perr == nil || !needsPrivateWAL(perr) {
			p.db = db
			return nil
		}
		db.Close()
	}
	return p.openPrivateCopy()
}

// probe runs a first query on a read-write connection. After a crash the
// first reader of a log rebuilds its -shm index, and SQLite answers others
// that look meanwhile with "locking protocol", which is transient: retry.
func probe(db *sql.DB) error {
	var err error
	for attempt := range 20 {
		var n int
		if err = db.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err == nil || !isProtocol(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

func isProtocol(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteProtocol
}

// needsPrivateWAL reports an error with which SQLite refuses to read a
// write-ahead log through a read-only -shm index.
func needsPrivateWAL(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqliteProtocol, sqliteReadOnly:
		return true
	}
	return false
}

// openPrivateCopy reads p.path and its -wal from a copy in the system's
// temporary directory, where SQLite may rebuild the log's index without
// touching the originals.
func (p *partition) openPrivateCopy() error {
	tmp, err := os.MkdirTemp("", "runnel-inspect-")
	if err != nil {
		return fmt.Errorf("%s has a write-ahead log but no -shm index, which SQLite cannot read without writing one, "+
			"and a private copy to read it from cannot be made: %w; set TMPDIR to a directory with room for a copy of the partition and its -wal, "+
			"or let a run (which may write) recover the log", p.path, err)
	}
	p.tmpDir = tmp
	copyPath := filepath.Join(tmp, filepath.Base(p.path))
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFileTo(p.path+suffix, copyPath+suffix); err != nil {
			return fmt.Errorf("%s has a write-ahead log but no -shm index, which SQLite cannot read without writing one; copying it to read it privately: %w; "+
				"set TMPDIR to a directory with room for the copy, or let a run (which may write) recover the log", p.path, err)
		}
	}
	db, err := openDB(copyPath, "rw")
	p.db = db
	return err
}

func copyFileTo(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// checkWritable reports a directory or partition a run cannot write as what
// it is, with the full path, before SQLite turns it into a vaguer error.
func checkWritable(dir string, indexes []int, byIndex map[int]string) error {
	paths := []string{dir}
	for _, i := range indexes {
		paths = append(paths, byIndex[i])
		for _, suffix := range []string{"-wal", "-shm"} {
			if _, err := os.Stat(byIndex[i] + suffix); err == nil {
				paths = append(paths, byIndex[i]+suffix)
			}
		}
	}
	for _, p := range paths {
		if err := writable(p); err != nil {
			abs, aerr := filepath.Abs(p)
			if aerr != nil {
				abs = p
			}
			return fmt.Errorf("recovery: open %s: %w: %s is not writable (%v); a run records its progress there, so fix the permissions or the mount (`runnel recovery inspect %s` reads it without writing)",
				dir, ErrAccess, abs, err, dir)
		}
	}
	return nil
}

// accessErr marks permission errors with ErrAccess, keeping the cause.
func accessErr(err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: %w", ErrAccess, err)
	}
	return err
}

// SQLite's primary result codes (stable parts of its C API) that classify
// looks at.
const (
	sqlitePerm     = 3
	sqliteBusy     = 5
	sqliteProtocol = 15
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteCantOpen = 14
	sqliteAuth     = 23
)

// classify tells an SQLite error that is about access (permissions, a
// read-only file or file system, a file that cannot be opened) from one
// that means the file's content is bad.
func classify(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlitePerm, sqliteReadOnly, sqliteCantOpen, sqliteAuth:
			abs, aerr := filepath.Abs(path)
			if aerr != nil {
				abs = path
			}
			return fmt.Errorf("%w: %s: %w (check the permissions of the file, its -wal and -shm files and the directory)", ErrAccess, abs, err)
		case sqliteBusy, sqliteLocked:
			return fmt.Errorf("%s is in use by another process: %w", path, err)
		case sqliteProtocol:
			return fmt.Errorf("%s: SQLite could not lock its write-ahead log (another process may be using or recovering it); run again: %w", path, err)
		}
	}
	return accessErr(err)
}

// checkHeader verifies that path looks like an intact SQLite database without
// opening it with SQLite, which would happily treat an empty file as a new
// database and write to it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return accessErr(err) // *PathError names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, accessErr(err))
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			hint := ""
			if fi.Size() == 0 {
				hint = "; an interrupted `runnel recovery init` of an older release leaves empty files: if no run has used the directory, remove it and run init again"
			}
			return fmt.Errorf("%s: %w: file too short for an SQLite database (%d bytes)%s", path, ErrCorrupt, fi.Size(), hint)
		}
		return fmt.Errorf("%s: %w", path, accessErr(err))
	}
	if !bytes.Equal(h[:16], []byte("SQLite format 3\x00")) {
		return fmt.Errorf("%s: %w: not an SQLite database", path, ErrCorrupt)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%s: %w: invalid page size %d", path, ErrCorrupt, pageSize)
	}
	size := fi.Size()
	if size%pageSize != 0 {
		return fmt.Errorf("%s: %w: size %d is not a multiple of the page size %d (truncated?)", path, ErrCorrupt, size, pageSize)
	}
	changeCounter := binary.BigEndian.Uint32(h[24:28])
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	validFor := binary.BigEndian.Uint32(h[92:96])
	if changeCounter == validFor && pages > 0 && size < pages*pageSize {
		return fmt.Errorf("%s: %w: file has %d bytes but its header says %d pages of %d bytes (truncated?)",
			path, ErrCorrupt, size, pages, pageSize)
	}
	return nil
}

// damaged reports err, met reading path's tables, as what it is: an access
// error or a busy file as classify says, and otherwise damage to the file
// ([ErrCorrupt]): a table without a column this release reads, a NULL
// where a value must be, a malformed page.
func damaged(path string, err error) error {
	if c := classify(path, err); errors.Is(c, ErrAccess) || c != err || errors.Is(err, ErrCorrupt) {
		return c
	}
	return fmt.Errorf("%s: %w: %w (`runnel recovery verify` checks every file)", path, ErrCorrupt, err)
}

func readMeta(db querier, path string) (partMeta, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrCorrupt, fmt.Sprintf(format, args...))
	}
	// Access errors surface on the first statement; they are not corruption.
	queryErr := func(what string, err error) error {
		if c := classify(path, err); errors.Is(c, ErrAccess) || c != err {
			return c
		}
		return corrupt("%s: %v", what, err)
	}
	rows, err := db.Query("SELECT name, value FROM meta")
	if err != nil {
		return partMeta{}, queryErr("reading metadata", err)
	}
	meta := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return partMeta{}, queryErr("reading metadata", err)
		}
		meta[k] = v
	}
	if err := rows.Close(); err != nil {
		return partMeta{}, queryErr("reading metadata", err)
	}
	if err := rows.Err(); err != nil {
		return partMeta{}, queryErr("reading metadata", err)
	}
	for _, k := range []string{"format_version", "partition_index", "partition_count", "codec", "flow_id", "created_by"} {
		if _, ok := meta[k]; !ok {
			return partMeta{}, corrupt("metadata has no %s", k)
		}
	}
	if meta["created_by"] != createdBy {
		return partMeta{}, corrupt("created by %q, not by runnel", meta["created_by"])
	}
	fv, err := strconv.Atoi(meta["format_version"])
	if err != nil || fv < oldestFormat {
		return partMeta{}, corrupt("bad format_version %q", meta["format_version"])
	}
	if fv > FormatVersion {
		return partMeta{}, fmt.Errorf("%s: %w: written by a newer runnel (format %d); this release reads formats %d to %d",
			path, ErrVersion, fv, oldestFormat, FormatVersion)
	}
	if meta["codec"] != codec.Name {
		return partMeta{}, fmt.Errorf("%s: %w: unknown codec %q; this release reads %q",
			path, ErrVersion, meta["codec"], codec.Name)
	}
	m := partMeta{path: path, format: fv, flowID: meta["flow_id"], dirID: meta["dir_id"]}
	if fv >= 2 && m.dirID == "" {
		return partMeta{}, corrupt("format %d metadata has no dir_id", fv)
	}
	if m.index, err = strconv.Atoi(meta["partition_index"]); err != nil {
		return partMeta{}, corrupt("bad partition_index %q", meta["partition_index"])
	}
	if m.count, err = strconv.Atoi(meta["partition_count"]); err != nil || m.count < 1 {
		return partMeta{}, corrupt("bad partition_count %q", meta["partition_count"])
	}
	if v, ok := meta["gc_epoch"]; ok {
		if m.gcEpoch, err = strconv.ParseUint(v, 10, 64); err != nil {
			return partMeta{}, corrupt("bad gc_epoch %q", v)
		}
	}
	have := map[string]bool{}
	trows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table'")
	if err != nil {
		return partMeta{}, queryErr("listing tables", err)
	}
	for trows.Next() {
		var t string
		if err := trows.Scan(&t); err != nil {
			trows.Close()
			return partMeta{}, queryErr("listing tables", err)
		}
		have[t] = true
	}
	if err := trows.Close(); err != nil {
		return partMeta{}, queryErr("listing tables", err)
	}
	for _, t := range tables {
		if !have[t] {
			return partMeta{}, corrupt("missing table %s", t)
		}
	}
	if fv >= 3 && !have["changes"] {
		return partMeta{}, corrupt("missing table changes")
	}
	// Every column this release reads, so that a damaged schema is named
	// here rather than failing a query later.
	for _, tc := range columns {
		if fv < tc.since || !have[tc.table] {
			continue
		}
		crows, err := db.Query("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", tc.table, tc.column)
		if err != nil {
			return partMeta{}, queryErr("listing columns", err)
		}
		found := crows.Next()
		if err := errors.Join(crows.Err(), crows.Close()); err != nil {
			return partMeta{}, queryErr("listing columns", err)
		}
		if !found {
			return partMeta{}, corrupt("table %s has no column %s", tc.table, tc.column)
		}
	}
	return m, nil
}

// columns lists the columns of each table that this release reads, with
// the format that introduced them.
var columns = []struct {
	table, column string
	since         int
}{
	{"meta", "name", 1}, {"meta", "value", 1},
	{"steps", "step_id", 1}, {"steps", "state_type", 1}, {"steps", "state_shape", 2},
	{"executions", "ex_num", 1}, {"executions", "worker_count", 1}, {"executions", "resume_epoch", 1}, {"executions", "exec_id", 2},
	{"fronts", "ex_num", 1}, {"fronts", "worker_index", 1}, {"fronts", "worker_frontier", 1},
	{"snaps", "step_id", 1}, {"snaps", "state_key", 1}, {"snaps", "epoch", 1}, {"snaps", "ser_change", 1},
	{"changes", "seq", 3}, {"changes", "epoch", 3}, {"changes", "step_id", 3}, {"changes", "entries", 3}, {"changes", "batch", 3},
}

// checkSet verifies that the partitions form one complete set of files.
// Whether they also describe one history is judged by judge.
func checkSet(dir string, indexes []int, metas []partMeta) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("recovery: open %s: %w: %s", dir, ErrPartitionMismatch, fmt.Sprintf(format, args...))
	}
	for _, m := range metas {
		if m.count != metas[0].count {
			return mismatch("%s says %d partitions but %s says %d; the files come from different recovery directories",
				metas[0].path, metas[0].count, m.path, m.count)
		}
	}
	n := metas[0].count
	for k, m := range metas {
		if m.index != indexes[k] {
			return mismatch("%s records partition index %d; was it renamed?", m.path, m.index)
		}
		if m.index >= n {
			return mismatch("%s is out of range: the partitions say there are %d (part-0 … part-%d)",
				m.path, n, n-1)
		}
	}
	if len(metas) != n {
		var missing []string
		have := map[int]bool{}
		for _, i := range indexes {
			have[i] = true
		}
		for i := range n {
			if !have[i] {
				missing = append(missing, partFile(i))
			}
		}
		hint := ""
		used := false
		for _, m := range metas {
			used = used || m.flowID != ""
		}
		if !used {
			hint = "; no run has used this directory: if `runnel recovery init` was interrupted, remove the directory and run init again"
		}
		return mismatch("missing %s of %d partitions%s", strings.Join(missing, ", "), n, hint)
	}
	return nil
}

func (s *Store) closeAll() error {
	var errs []error
	for _, p := range s.parts {
		if p.db != nil {
			if err := p.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name(), err))
			}
		}
		if p.tmpDir != "" {
			if err := os.RemoveAll(p.tmpDir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes every partition. It is safe to call more than once; later
// calls return nil. Close does not wait for other goroutines' calls: stop
// using the Store first.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lock := s.lock
	s.lock = nil
	horizon, gc := s.nextHorizon, slices.Clone(s.gcEpoch)
	record := s.begun && !s.readOnly
	s.mu.Unlock()
	var errs []error
	if record {
		// The last Commit's horizon, which only a later Commit or Compact
		// would record: a cleanly stopped run then keeps what -b says,
		// as a crashed one does up to one commit more.
		for _, p := range s.parts {
			if horizon > gc[p.index] {
				err := inTx(context.Background(), p.db, func(tx *sql.Tx) error { return recordGC(tx, horizon) })
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: record gc_epoch: %w", p.name(), err))
				}
			}
		}
	}
	if lock != nil {
		lock.Close()
	}
	if err := s.closeAll(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("recovery: close %s: %w", s.dir, err)
	}
	return nil
}

// Lock claims the directory for one run until Close: a second run on the
// same directory (two replicas given one volume, say) gets [ErrLocked]
// instead of interleaving its commits with the first. Read-only uses such
// as [Inspect] do not lock. It uses flock on part-0.sqlite3, so it guards
// against runs on the same machine (or a file system that honours flock).
func (s *Store) Lock() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	f, err := lockFile(s.parts[0].path)
	if err != nil {
		return fmt.Errorf("recovery: lock %s: %w", s.dir, err)
	}
	// Until now another process (`runnel recovery repartition`, or a
	// restore of the files) may have replaced the files this store opened:
	// then its writes would go to files no longer in the directory.
	for i, p := range s.parts {
		if p.opened == nil {
			continue
		}
		var now os.FileInfo
		if i == 0 {
			now, err = f.Stat()
		} else {
			now, err = os.Stat(p.path)
		}
		if err != nil || !os.SameFile(now, p.opened) {
			f.Close()
			return fmt.Errorf("recovery: lock %s: %w: %s was replaced while the run opened the directory (by `runnel recovery repartition` or a restore?); run again",
				s.dir, ErrLocked, p.path)
		}
	}
	s.mu.Lock()
	s.lock = f
	s.mu.Unlock()
	return nil
}

// Partitions returns the partition count N, fixed at Init.
func (s *Store) Partitions() int { return len(s.parts) }

// Dir returns the recovery directory the Store was opened from.
func (s *Store) Dir() string { return s.dir }

// FlowID returns the id of the dataflow the recovery data belongs to, or ""
// before the first execution has begun.
func (s *Store) FlowID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flowID
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("recovery: %s: %w", s.dir, ErrClosed)
	}
	return nil
}

// each runs fn on every partition in parallel and joins the errors, each
// prefixed with the partition's file name.
func (s *Store) each(fn func(p *partition) error) error {
	if len(s.parts) == 1 {
		if err := fn(s.parts[0]); err != nil {
			return fmt.Errorf("%s: %w", s.parts[0].name(), err)
		}
		return nil
	}
	errs := make([]error, len(s.parts))
	var wg sync.WaitGroup
	for i, p := range s.parts {
		wg.Go(func() {
			if err := fn(p); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.name(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DirID returns the identity Init gave the directory, recorded in every
// partition, or "" for a directory still in format 1.
func (s *Store) DirID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirID
}

// StepTypes returns what is stored about the state of every stateful step,
// keyed by step id: for a step whose migration is pending (see
// [Store.Begin]), the new type once the migrated epoch is committed in every
// partition, the old one before. Partitions normally agree; if a crash interrupted Begin
// and they do not, a step stored anywhere is reported, and conflicting types
// or shapes are joined with " | " so that the step shows up as changed in
// [MakePlan] rather than being trusted. A format 1 partition records no
// shape; it does not count as a conflict.
func (s *Store) StepTypes() (map[string]StepState, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	types := map[string]map[string]bool{}
	shapes := map[string]map[string]bool{}
	pending := make([]map[string]pendingMigration, len(s.parts))
	anyPending := false
	for i, p := range s.parts {
		var err error
		if pending[i], err = readPending(p.db); err != nil {
			return nil, fmt.Errorf("recovery: %s: read migrations: %w", p.name(), err)
		}
		anyPending = anyPending || len(pending[i]) > 0
	}
	// A migration is committed once its epoch is: from then on its step's
	// rows have the new type. Until then (a crash before the migrated epoch
	// was committed everywhere) they have the old one, as the steps table
	// still says.
	var resume uint64
	if anyPending {
		v, err := s.Check()
		if err != nil {
			return nil, err
		}
		if len(v.Problems) == 0 {
			resume = v.Resume.Epoch
		}
	}
	for i, p := range s.parts {
		q := "SELECT step_id, state_type, state_shape FROM steps"
		if p.format < 2 {
			q = "SELECT step_id, state_type, '' FROM steps"
		}
		rows, err := p.db.Query(q)
		if err != nil {
			return nil, fmt.Errorf("recovery: read steps: %w", damaged(p.name(), err))
		}
		for rows.Next() {
			var id, typ, shape string
			if err := rows.Scan(&id, &typ, &shape); err != nil {
				rows.Close()
				return nil, fmt.Errorf("recovery: read steps: %w", damaged(p.name(), err))
			}
			if m, ok := pending[i][id]; ok && resume > m.Epoch {
				typ, shape = m.Type, m.Shape
			}
			if types[id] == nil {
				types[id], shapes[id] = map[string]bool{}, map[string]bool{}
			}
			types[id][typ] = true
			if shape != "" {
				shapes[id][shape] = true
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("recovery: read steps: %w", damaged(p.name(), err))
		}
	}
	join := func(set map[string]bool) string {
		ts := make([]string, 0, len(set))
		for t := range set {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		return strings.Join(ts, " | ")
	}
	out := make(map[string]StepState, len(types))
	for id := range types {
		out[id] = StepState{Type: join(types[id]), Shape: join(shapes[id])}
	}
	return out, nil
}

// pendingMigration is a meta row "migration:STEP": the step's state was
// converted to Type and Shape by a run that resumed at Epoch and writes
// every key of the step again in that epoch. Until Epoch is committed the
// steps table keeps the old type; from then on the new one applies.
type pendingMigration struct {
	Epoch uint64 `json:"epoch"`
	Type  string `json:"state_type"`
	Shape string `json:"state_shape"`
}

// migrationPrefix starts the meta names of pending migrations.
const migrationPrefix = "migration:"

// readPending reads a partition's pending migrations, by step id.
func readPending(db querier) (map[string]pendingMigration, error) {
	rows, err := db.Query("SELECT name, value FROM meta WHERE substr(name, 1, ?) = ?", len(migrationPrefix), migrationPrefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string]pendingMigration
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		var m pendingMigration
		if err := json.Unmarshal([]byte(value), &m); err != nil {
			return nil, fmt.Errorf("%w: meta %s: %v", ErrCorrupt, name, err)
		}
		if out == nil {
			out = map[string]pendingMigration{}
		}
		out[strings.TrimPrefix(name, migrationPrefix)] = m
	}
	return out, rows.Err()
}
