package recovery

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/runnel-dev/runnel/internal/tuning"
)

// The change log (format 3). WriteEpoch appends each epoch's rows to the
// changes table as a few JSON batches instead of one snaps row per key: an
// epoch then costs one insert per batch, not one B-tree insert, index update
// and later garbage-collection probe per changed key. Compact (run by the
// committer when it is idle) rewrites the batches of the epochs that no
// resume can need apart as one deduplicated set, each key's newest row
// only, once they hold twice what the last rewrite left: a key that changes
// in every epoch is rewritten once per compaction, not stored once per
// epoch. Compaction also moves snaps rows (written by formats 1 and 2) into
// the log. Every reader sees the union of both tables (scanPart).

// batchEntries bounds the entries of one batch, so that a batch stays a
// modest blob however large an epoch is.
const batchEntries = 8192

// Compaction thresholds, per partition: Compact rewrites the log below the
// garbage-collection horizon once it holds a multiple (2 or 4) of the
// entries, bytes or batches that the last compaction (or, at Begin, the
// log) held, and at least these many. Growing by a factor keeps the cost
// of compaction proportional to what is written (each entry is read a few
// times at most), and what a resume reads within a few times the live
// state plus these minimums.
var (
	compactEverything       = false // tests: compact whatever the log holds
	compactEntries    int64 = 1 << 16
	compactBytes      int64 = 16 << 20
	compactBatches    int64 = 1024
)

// logRow is one row of a partition as readers see it: a snaps row or an
// entry of a changes batch.
type logRow struct {
	step, key string
	epoch     int64
	value     []byte // nil when deleted
	deleted   bool
}

func compareRows(a, b *logRow) int {
	if c := strings.Compare(a.step, b.step); c != 0 {
		return c
	}
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(a.epoch, b.epoch)
}

// appendBatch encodes the entries of one batch as a JSON object: each key
// maps to its value, the encoded state in lower-case hex, or to null for a
// deletion, in the order of rows[idx] (sorted, one entry per key). JSON so
// that the sqlite3 tool reads the log with json_each (see doc.go). Bytes
// of a key that are not valid UTF-8 are written as they are, like the
// snaps table's TEXT keys; control characters, '"' and '\' are escaped.
func appendBatch(b []byte, rows []Row, idx []int32) []byte {
	b = append(b, '{')
	for k, i := range idx {
		r := &rows[i]
		if k > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r.Key)
		b = append(b, ':')
		if r.Deleted {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '"')
		b = hex.AppendEncode(b, r.Value)
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

var errBatch = errors.New("malformed change batch")

// decodeBatch calls fn with each entry of a batch, in order, and checks
// that it holds want entries. value is nil for a deletion. It checks the
// batch's structure, not the values. fn may have been called for some
// entries when an error about a later part of the batch is returned.
func decodeBatch(b string, want int64, fn func(key string, value []byte, deleted bool)) error {
	var arena []byte
	return scanBatch(b, want, func(e *batchEntry) error {
		if e.deleted {
			fn(e.key, nil, true)
			return nil
		}
		arena = carve(arena, len(e.hex)/2)
		start := len(arena)
		arena = appendUnhex(arena, e.hex)
		fn(e.key, arena[start:len(arena):len(arena)], false)
		return nil
	})
}

// appendJSONStringAt appends the JSON string at the start of b, unquoted,
// to dst. Bytes that are not valid UTF-8 are kept as they are.
func appendJSONStringAt(dst []byte, b string) ([]byte, string, error) {
	if len(b) == 0 || b[0] != '"' {
		return dst, "", errBatch
	}
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			return dst, b[i+1:], nil
		case c != '\\':
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(b) {
			return dst, "", errBatch
		}
		switch b[i] {
		case '"', '\\', '/':
			dst = append(dst, b[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(b[i+1:])
			if !ok {
				return dst, "", errBatch
			}
			i += 4
			if utf16.IsSurrogate(r) && i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
				if r2, ok := hex4(b[i+3:]); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					}
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, "", errBatch
		}
	}
	return dst, "", errBatch
}

func hex4(b string) (rune, bool) {
	if len(b) < 4 || !isHex(b[:4]) {
		return 0, false
	}
	v := appendUnhex(make([]byte, 0, 2), b[:4])
	return rune(v[0])<<8 | rune(v[1]), true
}

// insertBatches appends rows[idx] (sorted by step and key, one row per key)
// to the change log as batches of epoch, building their text in buf,
// which it returns for reuse.
func insertBatches(tx *sql.Tx, epoch int64, rows []Row, idx []int32, buf []byte) (batches, bytes int64, _ []byte, err error) {
	for start := 0; start < len(idx); {
		end := start + 1
		step := rows[idx[start]].Step
		for end < len(idx) && end-start < batchEntries && rows[idx[end]].Step == step {
			end++
		}
		buf = appendBatch(buf[:0], rows, idx[start:end])
		if err := insertBatch(tx, epoch, step, end-start, buf); err != nil {
			return batches, bytes, buf, err
		}
		batches++
		bytes += int64(len(buf))
		start = end
	}
	return batches, bytes, buf, nil
}

// insertBatch appends one batch to the change log, as TEXT (so that
// sqlite3's json_each reads it; a BLOB would be taken for JSONB).
func insertBatch(tx *sql.Tx, epoch int64, step string, entries int, text []byte) error {
	// The driver copies the text into SQLite's memory while it binds it,
	// so a string sharing text's bytes is safe and saves a copy.
	if _, err := tx.Exec("INSERT INTO changes(epoch, step_id, entries, batch) VALUES(?, ?, ?, ?)",
		epoch, step, entries, unsafe.String(unsafe.SliceData(text), len(text))); err != nil {
		return fmt.Errorf("write rows of step %s: %w", step, err)
	}
	return nil
}

func queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	if c, ok := q.(interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}); ok {
		return c.QueryRowContext(ctx, query, args...)
	}
	panic("recovery: querier without QueryRowContext")
}

func queryContext(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	if c, ok := q.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}); ok {
		return c.QueryContext(ctx, query, args...)
	}
	return q.Query(query, args...)
}

// scanPart calls fn with every row of the partition with epoch < below (and
// of step, when not ""; change log batches of the steps in skip are left
// out unparsed), snaps rows and change log entries together, in
// order of step, key and epoch, one row per (step, key, epoch): where both
// hold one, the log's (written later) wins. fn must not keep r; it may keep
// r.value.
func scanPart(ctx context.Context, q querier, format int, below int64, step string, skip map[string]bool, fn func(r *logRow) error) error {
	var log *rowIter
	if format >= 3 {
		x, err := readLogIndex(ctx, q, below, step, skip, nil)
		if err != nil {
			return err
		}
		log = x.rows()
	}
	nextLog := func() *logRow {
		if log == nil {
			return nil
		}
		r, ok := log.next()
		if !ok {
			log = nil
			return nil
		}
		return r
	}
	query := "SELECT step_id, state_key, epoch, ser_change IS NULL, ser_change FROM snaps WHERE +epoch < ?"
	args := []any{below}
	if step != "" {
		query += " AND step_id = ?"
		args = append(args, step)
	}
	rows, err := queryContext(ctx, q, query+" ORDER BY step_id, state_key, epoch", args...)
	if err != nil {
		return fmt.Errorf("read snapshot rows: %w", err)
	}
	defer rows.Close()
	var (
		rawStep  sql.RawBytes
		rawKey   sql.RawBytes
		lastStep string
	)
	l := nextLog()
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&rawStep, &rawKey, &r.epoch, &r.deleted, &r.value); err != nil {
			return fmt.Errorf("read snapshot rows: %w", err)
		}
		if string(rawStep) != lastStep { // step ids repeat: allocate each once
			lastStep = string(rawStep)
		}
		r.step, r.key = lastStep, string(rawKey)
		if r.deleted {
			r.value = nil
		} else if r.value == nil {
			r.value = []byte{} // the driver returns an empty blob as nil
		}
		for l != nil && compareRows(l, &r) < 0 {
			if err := fn(l); err != nil {
				return err
			}
			l = nextLog()
		}
		if l != nil && compareRows(l, &r) == 0 {
			continue // the log's row wins
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read snapshot rows: %w", err)
	}
	for ; l != nil; l = nextLog() {
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// hasSnaps reports whether the partition holds snaps rows (written by
// formats 1 and 2) before epoch below.
func hasSnaps(ctx context.Context, q querier, below int64) (bool, error) {
	var n int
	if err := queryRow(ctx, q, "SELECT EXISTS(SELECT 1 FROM snaps WHERE epoch < ?)", below).Scan(&n); err != nil {
		return false, fmt.Errorf("read snapshot rows: %w", err)
	}
	return n != 0, nil
}

// logStats is what a partition's change log holds per epoch.
type logStats struct {
	entries, bytes, batches int64
}

func readLogStats(q querier) (map[int64]logStats, error) {
	rows, err := q.Query("SELECT epoch, sum(entries), sum(length(batch)), count(*) FROM changes GROUP BY epoch")
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	defer rows.Close()
	out := map[int64]logStats{}
	for rows.Next() {
		var e int64
		var st logStats
		if err := rows.Scan(&e, &st.entries, &st.bytes, &st.batches); err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		out[e] = st
	}
	return out, rows.Err()
}

// Compact rewrites, in each partition whose change log below the horizon
// holds growth times what the last compaction left there (or, at Begin,
// the whole log held), and at least 65536 rows, 16 MiB or 1024 batches,
// the rows below the garbage-collection horizon
// recorded by the last [Store.Commit] (rows no resume needs apart) as each
// key's newest row only, deleted keys left out, moving snaps rows of
// earlier formats into the log on the way; and records that horizon as the
// partition's gc_epoch. It never changes what a resume from an epoch at or
// after the horizon loads, and a crash during it leaves the partition as
// it was. A run's committer calls it with growth 2 when no epoch waits to
// be written, and with growth 4 when epochs keep it busy, so that the log
// stays within a few times the live state either way.
func (s *Store) Compact(growth int64) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	// Every partition recorded the last Commit's frontiers, so its horizon
	// may be recorded (and collected below) anywhere now.
	s.mu.Lock()
	begun, horizon := s.begun, s.nextHorizon
	s.mu.Unlock()
	if !begun || horizon == 0 || horizon > math.MaxInt64 {
		return nil
	}
	growth = max(growth, 1)
	err := s.each(func(p *partition) error {
		s.mu.Lock()
		var below logStats
		for e, st := range p.log {
			if e < int64(horizon) {
				below.entries += st.entries
				below.bytes += st.bytes
				below.batches += st.batches
			}
		}
		base := p.base
		s.mu.Unlock()
		if below.entries == 0 && below.batches == 0 {
			return nil
		}
		minEntries, minBytes, minBatches := compactEntries, compactBytes, compactBatches
		if m := tuning.CompactMin.Load(); m > 0 {
			minEntries, minBytes, minBatches = m, m, m
		}
		if !compactEverything && below.entries < max(minEntries, growth*base.entries) &&
			below.bytes < max(minBytes, growth*base.bytes) &&
			below.batches < max(minBatches, growth*base.batches) {
			return nil
		}
		if err := s.rewrite(p, int64(horizon)); err != nil {
			return fmt.Errorf("compact the change log before epoch %d: %w", horizon, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovery: compact %s: %w", s.dir, err)
	}
	return nil
}

// rewrite replaces every row of p before epoch horizon, in snaps and the
// change log, by change log batches holding each key's newest row there
// (deleted keys left out), and records horizon as p's gc_epoch, in one
// transaction.
func (s *Store) rewrite(p *partition, horizon int64) error {
	ctx := context.Background()
	p.compacting.Lock()
	defer p.compacting.Unlock()
	var out map[int64]logStats
	err := inTx(ctx, p.db, func(tx *sql.Tx) error {
		snaps, err := hasSnaps(ctx, tx, horizon)
		if err != nil {
			return err
		}
		if snaps {
			out, err = rewriteRows(ctx, tx, p.format, horizon)
		} else {
			out, err = rewriteLog(ctx, tx, horizon, &p.compactScratch)
		}
		if err != nil {
			return err
		}
		return recordGC(tx, uint64(horizon))
	})
	if err != nil {
		return err
	}
	var kept logStats
	for _, st := range out {
		kept.entries += st.entries
		kept.bytes += st.bytes
		kept.batches += st.batches
	}
	s.mu.Lock()
	for e := range p.log {
		if e < horizon {
			delete(p.log, e)
		}
	}
	maps.Copy(p.log, out)
	p.base = kept
	s.gcEpoch[p.index] = max(s.gcEpoch[p.index], uint64(horizon))
	s.mu.Unlock()
	return nil
}

// rewriteLog is rewrite's work where every row before horizon is in the
// change log: it merges the log's sorted runs and copies each key's newest
// entry, as written, into the batches of its epoch.
func rewriteLog(ctx context.Context, tx *sql.Tx, horizon int64, scratch *compactScratch) (map[int64]logStats, error) {
	x, err := readLogIndex(ctx, tx, horizon, "", nil, scratch.entries)
	if err != nil {
		return nil, err
	}
	defer scratch.keepEntries(x.entries)
	if _, err := tx.Exec("DELETE FROM changes WHERE epoch < ?", horizon); err != nil {
		return nil, err
	}
	w := newBatchWriter(tx, &scratch.texts)
	err = x.newest(func(i int32) error {
		e := &x.entries[i]
		if e.val == 0 {
			return nil // deleted
		}
		b := &x.batches[e.batch]
		return w.add(b.epoch, b.step, x.text(i))
	})
	if err != nil {
		return nil, err
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	return w.stats, nil
}

// rewriteRows is rewrite's work where snaps rows (formats 1 and 2) exist
// before horizon: it reads both tables (scanPart) and writes each key's
// newest row into the batches of its epoch.
func rewriteRows(ctx context.Context, tx *sql.Tx, format int, horizon int64) (map[int64]logStats, error) {
	var rows []Row
	byEpoch := map[int64][]int32{}
	var cur logRow
	have := false
	keep := func() {
		if have && !cur.deleted {
			byEpoch[cur.epoch] = append(byEpoch[cur.epoch], int32(len(rows)))
			rows = append(rows, Row{Step: cur.step, Key: cur.key, Value: cur.value})
		}
	}
	err := scanPart(ctx, tx, format, horizon, "", nil, func(r *logRow) error {
		if have && r.key == cur.key && r.step == cur.step {
			cur = *r
			return nil
		}
		keep()
		cur, have = *r, true
		return nil
	})
	if err != nil {
		return nil, err
	}
	keep()
	if _, err := tx.Exec("DELETE FROM changes WHERE epoch < ?", horizon); err != nil {
		return nil, err
	}
	if _, err := tx.Exec("DELETE FROM snaps WHERE epoch < ?", horizon); err != nil {
		return nil, err
	}
	epochs := slices.Sorted(maps.Keys(byEpoch))
	out := make(map[int64]logStats, len(epochs))
	var buf []byte
	for _, e := range epochs {
		idx := byEpoch[e] // sorted by step and key, as scanPart reads
		var batches, bytes int64
		batches, bytes, buf, err = insertBatches(tx, e, rows, idx, buf)
		if err != nil {
			return nil, err
		}
		out[e] = logStats{entries: int64(len(idx)), bytes: bytes, batches: batches}
	}
	return out, nil
}

// batchWriter gathers entries, given as their text, into batches per
// epoch, and inserts each batch once it holds batchEntries entries or the
// next entry of its epoch is of another step. Entries of one epoch must
// come in order of step and key.
type batchWriter struct {
	tx    *sql.Tx
	open  map[int64]*openBatch
	last  *openBatch
	stats map[int64]logStats
	spare *[][]byte // batch texts to reuse, and where close leaves them
}

// compactScratch is what a partition's compactions reuse: the entries of
// the index and the texts of the batches written.
type compactScratch struct {
	entries []logEntry
	texts   [][]byte
}

// What a partition keeps between compactions at most: scratch is for the
// steady state of a run, not for the largest compaction it ever did.
const (
	maxKeptEntries = 1 << 18 // 6 MiB
	maxKeptText    = 1 << 20
)

func (c *compactScratch) keepEntries(entries []logEntry) {
	if cap(entries) <= maxKeptEntries {
		c.entries = entries[:0]
	} else {
		c.entries = nil
	}
}

type openBatch struct {
	epoch int64
	step  string
	n     int
	text  []byte
}

func newBatchWriter(tx *sql.Tx, spare *[][]byte) *batchWriter {
	return &batchWriter{tx: tx, open: map[int64]*openBatch{}, stats: map[int64]logStats{}, spare: spare}
}

func (w *batchWriter) add(epoch int64, step, entry string) error {
	b := w.last
	if b == nil || b.epoch != epoch {
		if b = w.open[epoch]; b == nil {
			b = &openBatch{epoch: epoch}
			if n := len(*w.spare); n > 0 {
				b.text, *w.spare = (*w.spare)[n-1], (*w.spare)[:n-1]
			}
			w.open[epoch] = b
		}
		w.last = b
	}
	if b.n > 0 && (b.n == batchEntries || b.step != step) {
		if err := w.flush(b); err != nil {
			return err
		}
	}
	if b.n == 0 {
		b.step = step
		b.text = append(b.text[:0], '{')
	} else {
		b.text = append(b.text, ',')
	}
	b.text = append(b.text, entry...)
	b.n++
	return nil
}

func (w *batchWriter) flush(b *openBatch) error {
	b.text = append(b.text, '}')
	if err := insertBatch(w.tx, b.epoch, b.step, b.n, b.text); err != nil {
		return err
	}
	st := w.stats[b.epoch]
	st.entries += int64(b.n)
	st.bytes += int64(len(b.text))
	st.batches++
	w.stats[b.epoch] = st
	b.n = 0
	return nil
}

// close inserts the batches not yet inserted, and keeps a few of their
// texts for the next compaction.
func (w *batchWriter) close() error {
	for _, e := range slices.Sorted(maps.Keys(w.open)) {
		b := w.open[e]
		if b.n > 0 {
			if err := w.flush(b); err != nil {
				return err
			}
		}
		if len(*w.spare) < 4 && cap(b.text) <= maxKeptText {
			*w.spare = append(*w.spare, b.text[:0])
		}
	}
	return nil
}

// recordGC records horizon as the partition's gc_epoch unless a later one
// is recorded.
func recordGC(tx *sql.Tx, horizon uint64) error {
	_, err := tx.Exec(`INSERT INTO meta(name, value) VALUES('gc_epoch', ?1)
		ON CONFLICT(name) DO UPDATE SET value = CASE WHEN CAST(value AS INTEGER) < CAST(?1 AS INTEGER) THEN ?1 ELSE value END`,
		strconv.FormatUint(horizon, 10))
	return err
}

// logEntries counts the entries of p's change log.
func logEntries(q querier) (int64, error) {
	rows, err := q.Query("SELECT coalesce(sum(entries), 0) FROM changes")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}
