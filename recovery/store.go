package recovery

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	_ "modernc.org/sqlite" // registers the "sqlite" driver; hidden behind Store

	"github.com/runnel-dev/runnel/internal/codec"
)

// FormatVersion is the version of the partition schema described in the
// package documentation. A partition with a larger format_version is refused
// with [ErrVersion]; one with a smaller version would be migrated.
const FormatVersion = 1

const createdBy = "runnel"

// schema creates one partition. It is part of the public, versioned contract
// documented in doc.go: change it only together with FormatVersion.
var schema = []string{
	`CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE steps(step_id TEXT PRIMARY KEY, state_type TEXT NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE executions(ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL, resume_epoch INTEGER NOT NULL)`,
	`CREATE TABLE fronts(ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL, worker_frontier INTEGER NOT NULL,
		PRIMARY KEY(ex_num, worker_index)) WITHOUT ROWID`,
	`CREATE TABLE snaps(step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL, ser_change BLOB,
		PRIMARY KEY(step_id, state_key, epoch)) WITHOUT ROWID`,
	`CREATE INDEX snaps_epoch ON snaps(epoch)`,
	`CREATE INDEX snaps_deleted ON snaps(epoch) WHERE ser_change IS NULL`,
}

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

	mu      sync.Mutex
	closed  bool
	flowID  string
	begun   bool
	ex      int      // current execution, valid when begun
	resume  uint64   // its resume epoch
	fronts  []uint64 // per worker of the current execution: last committed frontier
	gcEpoch []uint64 // per partition: horizon of the last garbage collection
	lock    *os.File // held by Lock until Close
}

type partition struct {
	index int
	path  string
	db    *sql.DB
}

func (p *partition) name() string { return filepath.Base(p.path) }

// dsn builds the SQLite URI for path. mode is "rw" (open, never create) or
// "rwc" (create). The pragmas apply to every pooled connection; none of them
// writes to the file. synchronous=FULL makes every commit fsync the WAL, which
// is what lets a nil error from WriteEpoch and Commit mean "durable".
func dsn(path, mode string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	q := url.Values{}
	q.Set("mode", mode)
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "mmap_size(268435456)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Add("_pragma", "temp_store(MEMORY)")
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String()
}

func openDB(path, mode string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, mode))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	return db, nil
}

// Init creates the recovery directory dir (with parents) and n empty
// partitions, part-0.sqlite3 … part-{n-1}.sqlite3. n is fixed for the life
// of the recovery data; the number of workers may change between runs.
//
// Init refuses, with [ErrAlreadyInitialized], a directory that already holds
// partition files. If it fails part way it removes the files it created. On
// a nil error the files and their directory entries are durable.
func Init(dir string, n int) error {
	if n < 1 {
		return fmt.Errorf("recovery: init %s: partition count must be at least 1, got %d", dir, n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("recovery: init: %w", err)
	}
	existing, err := filepath.Glob(filepath.Join(dir, "part-*.sqlite3"))
	if err != nil {
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	if len(existing) > 0 {
		return fmt.Errorf("recovery: init %s: %w: found %s; remove the directory first to start over",
			dir, ErrAlreadyInitialized, baseNames(existing))
	}
	var created []string
	fail := func(err error) error {
		for _, p := range created {
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				_ = os.Remove(p + suffix)
			}
		}
		return fmt.Errorf("recovery: init %s: %w", dir, err)
	}
	for i := range n {
		path := filepath.Join(dir, partFile(i))
		created = append(created, path)
		if err := createPartition(path, i, n); err != nil {
			return fail(fmt.Errorf("%s: %w", partFile(i), err))
		}
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return nil
}

func createPartition(path string, index, n int) error {
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

func baseNames(paths []string) string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func notInitialized(dir string) error {
	return fmt.Errorf("recovery: %s: %w; run `runnel recovery init %s N` to create N partitions",
		dir, ErrNotInitialized, dir)
}

// partMeta is what Open reads from one partition before trusting it.
type partMeta struct {
	path    string
	index   int // from meta
	count   int // from meta
	flowID  string
	gcEpoch uint64
}

// Open opens every partition in dir and validates all of them before
// returning: they must form one complete set (same partition count, indexes
// 0..N-1 matching their file names), be readable SQLite files with the
// Runnel schema, and be written in a format and codec this release reads.
// Validation never modifies a file; it fails with [ErrNotInitialized],
// [ErrPartitionMismatch], [ErrCorrupt] or [ErrVersion], naming the files.
func Open(dir string) (*Store, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, notInitialized(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: open %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("recovery: open %s: %w: not a directory", dir, ErrNotInitialized)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: open %s: %w", dir, err)
	}
	byIndex := map[int]string{}
	var stray []string
	for _, e := range entries {
		name := e.Name()
		if ok, _ := filepath.Match("part-*.sqlite3", name); !ok {
			continue
		}
		m := partName.FindStringSubmatch(name)
		if m == nil || !e.Type().IsRegular() {
			stray = append(stray, name)
			continue
		}
		i, _ := strconv.Atoi(m[1])
		byIndex[i] = filepath.Join(dir, name)
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		return nil, fmt.Errorf("recovery: open %s: %w: unexpected %s; partition files are named part-0.sqlite3 … part-{N-1}.sqlite3",
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

	s := &Store{dir: dir}
	metas := make([]partMeta, 0, len(indexes))
	for _, i := range indexes {
		path := byIndex[i]
		db, err := openDB(path, "rw")
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", path, err)
		}
		s.parts = append(s.parts, &partition{index: i, path: path, db: db})
		m, err := readMeta(db, path)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", dir, err)
		}
		metas = append(metas, m)
	}
	if err := checkSet(dir, indexes, metas); err != nil {
		s.closeAll()
		return nil, err
	}
	s.gcEpoch = make([]uint64, len(metas))
	for i, m := range metas {
		s.gcEpoch[i] = m.gcEpoch
		if m.flowID != "" {
			s.flowID = m.flowID
		}
	}
	// Persistent and idempotent: a no-op on the files Init created.
	for _, p := range s.parts {
		if _, err := p.db.Exec("PRAGMA journal_mode=WAL"); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("recovery: open %s: %w", p.path, err)
		}
	}
	return s, nil
}

// checkHeader verifies that path looks like an intact SQLite database without
// opening it with SQLite, which would happily treat an empty file as a new
// database and write to it.
func checkHeader(path string) error {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("%s: %w: file too short for an SQLite database (%d bytes)", name, ErrCorrupt, fi.Size())
	}
	if !bytes.Equal(h[:16], []byte("SQLite format 3\x00")) {
		return fmt.Errorf("%s: %w: not an SQLite database", name, ErrCorrupt)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%s: %w: invalid page size %d", name, ErrCorrupt, pageSize)
	}
	size := fi.Size()
	if size%pageSize != 0 {
		return fmt.Errorf("%s: %w: size %d is not a multiple of the page size %d (truncated?)", name, ErrCorrupt, size, pageSize)
	}
	changeCounter := binary.BigEndian.Uint32(h[24:28])
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	validFor := binary.BigEndian.Uint32(h[92:96])
	if changeCounter == validFor && pages > 0 && size < pages*pageSize {
		return fmt.Errorf("%s: %w: file has %d bytes but its header says %d pages of %d bytes (truncated?)",
			name, ErrCorrupt, size, pages, pageSize)
	}
	return nil
}

func readMeta(db *sql.DB, path string) (partMeta, error) {
	name := filepath.Base(path)
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, ErrCorrupt, fmt.Sprintf(format, args...))
	}
	rows, err := db.Query("SELECT name, value FROM meta")
	if err != nil {
		return partMeta{}, corrupt("reading metadata: %v", err)
	}
	meta := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return partMeta{}, corrupt("reading metadata: %v", err)
		}
		meta[k] = v
	}
	if err := rows.Close(); err != nil {
		return partMeta{}, corrupt("reading metadata: %v", err)
	}
	if err := rows.Err(); err != nil {
		return partMeta{}, corrupt("reading metadata: %v", err)
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
	if err != nil || fv < 1 {
		return partMeta{}, corrupt("bad format_version %q", meta["format_version"])
	}
	if fv > FormatVersion {
		return partMeta{}, fmt.Errorf("%s: %w: written by a newer runnel (format %d); this release reads format %d",
			name, ErrVersion, fv, FormatVersion)
	}
	if meta["codec"] != codec.Name {
		return partMeta{}, fmt.Errorf("%s: %w: unknown codec %q; this release reads %q",
			name, ErrVersion, meta["codec"], codec.Name)
	}
	m := partMeta{path: path, flowID: meta["flow_id"]}
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
		return partMeta{}, corrupt("listing tables: %v", err)
	}
	for trows.Next() {
		var t string
		if err := trows.Scan(&t); err != nil {
			trows.Close()
			return partMeta{}, corrupt("listing tables: %v", err)
		}
		have[t] = true
	}
	if err := trows.Close(); err != nil {
		return partMeta{}, corrupt("listing tables: %v", err)
	}
	for _, t := range tables {
		if !have[t] {
			return partMeta{}, corrupt("missing table %s", t)
		}
	}
	return m, nil
}

// checkSet verifies that the partitions form one complete set.
func checkSet(dir string, indexes []int, metas []partMeta) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("recovery: open %s: %w: %s", dir, ErrPartitionMismatch, fmt.Sprintf(format, args...))
	}
	for _, m := range metas {
		if m.count != metas[0].count {
			return mismatch("%s says %d partitions but %s says %d; the files come from different recovery directories",
				filepath.Base(metas[0].path), metas[0].count, filepath.Base(m.path), m.count)
		}
	}
	n := metas[0].count
	for k, m := range metas {
		if m.index != indexes[k] {
			return mismatch("%s records partition index %d; was it renamed?", filepath.Base(m.path), m.index)
		}
		if m.index >= n {
			return mismatch("%s is out of range: the partitions say there are %d (part-0 … part-%d)",
				filepath.Base(m.path), n, n-1)
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
		return mismatch("missing %s of %d partitions", strings.Join(missing, ", "), n)
	}
	flow := ""
	flowFile := ""
	for _, m := range metas {
		if m.flowID == "" {
			continue
		}
		if flow != "" && m.flowID != flow {
			return mismatch("%s belongs to dataflow %q but %s to %q",
				flowFile, flow, filepath.Base(m.path), m.flowID)
		}
		flow, flowFile = m.flowID, filepath.Base(m.path)
	}
	return nil
}

func (s *Store) closeAll() error {
	var errs []error
	for _, p := range s.parts {
		if err := p.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name(), err))
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
	s.mu.Unlock()
	if lock != nil {
		lock.Close()
	}
	if err := s.closeAll(); err != nil {
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

// StepTypes returns the stored state type of every stateful step, keyed by
// step id. Partitions normally agree; if a crash interrupted Begin and they
// do not, a step stored anywhere is reported, and conflicting types are
// joined with " | " so that the step shows up as changed in [MakePlan]
// rather than being trusted.
func (s *Store) StepTypes() (map[string]string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	all := map[string]map[string]bool{}
	for _, p := range s.parts {
		rows, err := p.db.Query("SELECT step_id, state_type FROM steps")
		if err != nil {
			return nil, fmt.Errorf("recovery: %s: read steps: %w", p.name(), err)
		}
		for rows.Next() {
			var id, typ string
			if err := rows.Scan(&id, &typ); err != nil {
				rows.Close()
				return nil, fmt.Errorf("recovery: %s: read steps: %w", p.name(), err)
			}
			if all[id] == nil {
				all[id] = map[string]bool{}
			}
			all[id][typ] = true
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("recovery: %s: read steps: %w", p.name(), err)
		}
	}
	out := make(map[string]string, len(all))
	for id, types := range all {
		ts := make([]string, 0, len(types))
		for t := range types {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		out[id] = strings.Join(ts, " | ")
	}
	return out, nil
}
