package recovery

import (
	"bytes"
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
func appendBatch(b []byte, rows []Row, idx []int) []byte {
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
// batch's structure, not the values. Keys are cut from one string and
// values from one buffer per batch: two allocations, not two per entry.
func decodeBatch(b []byte, want int64, fn func(key string, value []byte, deleted bool)) error {
	fail := func(n int64, what string) error {
		return fmt.Errorf("%w: entry %d: %s", errBatch, n, what)
	}
	b = skipSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", errBatch)
	}
	b = skipSpace(b[1:])
	type span struct{ keyEnd, valStart, valEnd int } // valStart < 0: deleted
	spans := make([]span, 0, max(0, min(want, int64(len(b)/4))))
	keyArena := make([]byte, 0, len(b)/2)
	valArena := make([]byte, 0, len(b)/2)
	var n int64
	if len(b) > 0 && b[0] == '}' {
		b = b[1:]
	} else {
		for {
			var err error
			keyStart := len(keyArena)
			keyArena, b, err = appendJSONStringAt(keyArena, b)
			if err != nil {
				return fail(n, "bad key")
			}
			key := func() string { return string(keyArena[keyStart:]) }
			b = skipSpace(b)
			if len(b) == 0 || b[0] != ':' {
				return fail(n, "no ':' after the key")
			}
			b = skipSpace(b[1:])
			switch {
			case len(b) >= 4 && string(b[:4]) == "null":
				spans = append(spans, span{len(keyArena), -1, -1})
				b = b[4:]
			case len(b) > 0 && b[0] == '"':
				end := bytes.IndexByte(b[1:], '"')
				if end < 0 {
					return fail(n, "unterminated value")
				}
				start := len(valArena)
				valArena = slices.Grow(valArena, hex.DecodedLen(end))[:start+hex.DecodedLen(end)]
				if _, err := hex.Decode(valArena[start:], b[1:1+end]); err != nil {
					return fail(n, fmt.Sprintf("value of key %q is not hex", key()))
				}
				spans = append(spans, span{len(keyArena), start, len(valArena)})
				b = b[end+2:]
			default:
				return fail(n, fmt.Sprintf("value of key %q is neither a hex string nor null", key()))
			}
			n++
			b = skipSpace(b)
			if len(b) > 0 && b[0] == ',' {
				b = skipSpace(b[1:])
				continue
			}
			if len(b) > 0 && b[0] == '}' {
				b = b[1:]
				break
			}
			return fail(n, "no ',' or '}' after the entry")
		}
	}
	if len(skipSpace(b)) != 0 {
		return fmt.Errorf("%w: data after the object", errBatch)
	}
	if n != want {
		return fmt.Errorf("%w: %d entries, the entries column says %d", errBatch, n, want)
	}
	keys := string(keyArena)
	at := 0
	for _, sp := range spans {
		key := keys[at:sp.keyEnd]
		at = sp.keyEnd
		if sp.valStart < 0 {
			fn(key, nil, true)
			continue
		}
		fn(key, valArena[sp.valStart:sp.valEnd:sp.valEnd], false)
	}
	return nil
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// appendJSONStringAt appends the JSON string at the start of b, unquoted,
// to dst. Bytes that are not valid UTF-8 are kept as they are.
func appendJSONStringAt(dst, b []byte) ([]byte, []byte, error) {
	if len(b) == 0 || b[0] != '"' {
		return dst, nil, errBatch
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
			return dst, nil, errBatch
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
				return dst, nil, errBatch
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
			return dst, nil, errBatch
		}
	}
	return dst, nil, errBatch
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var v [2]byte
	if _, err := hex.Decode(v[:], b[:4]); err != nil {
		return 0, false
	}
	return rune(v[0])<<8 | rune(v[1]), true
}

// writeBatches appends rows[idx] (sorted by step and key, one row per key)
// to the change log as batches of epoch, in one transaction.
func writeBatches(db *sql.DB, epoch int64, rows []Row, idx []int) (batches, bytes int64, err error) {
	err = inTx(context.Background(), db, func(tx *sql.Tx) error {
		batches, bytes, err = insertBatches(tx, epoch, rows, idx)
		return err
	})
	return batches, bytes, err
}

// insertBatches appends rows[idx] (sorted by step and key, one row per key)
// to the change log as batches of epoch.
func insertBatches(tx *sql.Tx, epoch int64, rows []Row, idx []int) (batches, bytes int64, err error) {
	var buf []byte
	for start := 0; start < len(idx); {
		end := start + 1
		step := rows[idx[start]].Step
		for end < len(idx) && end-start < batchEntries && rows[idx[end]].Step == step {
			end++
		}
		buf = appendBatch(buf[:0], rows, idx[start:end])
		if _, err := tx.Exec("INSERT INTO changes(epoch, step_id, entries, batch) VALUES(?, ?, ?, ?)",
			epoch, step, end-start, string(buf)); err != nil {
			return batches, bytes, fmt.Errorf("write rows of step %s: %w", step, err)
		}
		batches++
		bytes += int64(len(buf))
		start = end
	}
	return batches, bytes, nil
}

// readLog reads the entries of the change log with epoch < below (and of
// step, when not ""), sorted by step, key and epoch; entries of one key and
// epoch keep the order they were written in, so that the last one wins.
func readLog(ctx context.Context, q querier, below int64, step string) ([]logRow, error) {
	query := "SELECT epoch, step_id, entries, batch FROM changes WHERE epoch < ?"
	args := []any{below}
	if step != "" {
		query += " AND step_id = ?"
		args = append(args, step)
	}
	var total int64
	if err := queryRow(ctx, q, strings.Replace(query, "epoch, step_id, entries, batch", "coalesce(sum(entries), 0)", 1), args...).Scan(&total); err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	rows, err := queryContext(ctx, q, query+" ORDER BY epoch, step_id, seq", args...)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	defer rows.Close()
	out := make([]logRow, 0, min(total, 1<<24))
	var runs []int // start of each sorted run in out
	for rows.Next() {
		var epoch, n int64
		var stepID string
		var batch []byte
		if err := rows.Scan(&epoch, &stepID, &n, &batch); err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		err := decodeBatch(batch, n, func(key string, value []byte, deleted bool) {
			r := logRow{step: stepID, key: key, epoch: epoch, value: value, deleted: deleted}
			if len(out) == 0 || compareRows(&out[len(out)-1], &r) >= 0 {
				runs = append(runs, len(out))
			}
			out = append(out, r)
		})
		if err != nil {
			return nil, fmt.Errorf("%w: changes batch of step %s epoch %d: %w", ErrCorrupt, stepID, epoch, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	return mergeRuns(out, runs), nil
}

// mergeRuns sorts rows made of sorted runs starting at runs, stably, by
// merging neighbouring runs until one is left.
func mergeRuns(rows []logRow, runs []int) []logRow {
	if len(runs) <= 1 {
		return rows
	}
	buf := make([]logRow, len(rows))
	for len(runs) > 1 {
		next := runs[:0:0]
		for i := 0; i < len(runs); i += 2 {
			lo := runs[i]
			if i+1 == len(runs) {
				copy(buf[lo:], rows[lo:])
				next = append(next, lo)
				break
			}
			mid, hi := runs[i+1], len(rows)
			if i+2 < len(runs) {
				hi = runs[i+2]
			}
			a, b, k := lo, mid, lo
			for a < mid && b < hi {
				if compareRows(&rows[b], &rows[a]) < 0 {
					buf[k] = rows[b]
					b++
				} else {
					buf[k] = rows[a]
					a++
				}
				k++
			}
			k += copy(buf[k:], rows[a:mid])
			copy(buf[k:], rows[b:hi])
			next = append(next, lo)
		}
		rows, buf, runs = buf, rows, next
	}
	return rows
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
// of step, when not ""), snaps rows and change log entries together, in
// order of step, key and epoch, one row per (step, key, epoch): where both
// hold one, the log's (written later) wins. fn must not keep r.
func scanPart(ctx context.Context, q querier, format int, below int64, step string, fn func(r *logRow) error) error {
	var log []logRow
	if format >= 3 {
		var err error
		if log, err = readLog(ctx, q, below, step); err != nil {
			return err
		}
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
		pending  logRow
		have     bool
		rawStep  sql.RawBytes
		rawKey   sql.RawBytes
		lastStep string
	)
	emit := func(r *logRow) error {
		if have && r.epoch == pending.epoch && r.key == pending.key && r.step == pending.step {
			pending = *r // a later row of the same (step, key, epoch) wins
			return nil
		}
		if have {
			if err := fn(&pending); err != nil {
				return err
			}
		}
		pending, have = *r, true
		return nil
	}
	i := 0
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
		for i < len(log) && compareRows(&log[i], &r) < 0 {
			if err := emit(&log[i]); err != nil {
				return err
			}
			i++
		}
		if err := emit(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read snapshot rows: %w", err)
	}
	for ; i < len(log); i++ {
		if err := emit(&log[i]); err != nil {
			return err
		}
	}
	if have {
		return fn(&pending)
	}
	return nil
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
	out := map[int64]logStats{}
	var kept logStats
	err := inTx(ctx, p.db, func(tx *sql.Tx) error {
		var rows []Row
		byEpoch := map[int64][]int{}
		var cur logRow
		have := false
		keep := func() {
			if have && !cur.deleted {
				byEpoch[cur.epoch] = append(byEpoch[cur.epoch], len(rows))
				rows = append(rows, Row{Step: cur.step, Key: cur.key, Value: cur.value})
			}
		}
		err := scanPart(ctx, tx, p.format, horizon, "", func(r *logRow) error {
			if have && r.key == cur.key && r.step == cur.step {
				cur = *r
				return nil
			}
			keep()
			cur, have = *r, true
			return nil
		})
		if err != nil {
			return err
		}
		keep()
		if _, err := tx.Exec("DELETE FROM changes WHERE epoch < ?", horizon); err != nil {
			return err
		}
		if _, err := tx.Exec("DELETE FROM snaps WHERE epoch < ?", horizon); err != nil {
			return err
		}
		epochs := make([]int64, 0, len(byEpoch))
		for e := range byEpoch {
			epochs = append(epochs, e)
		}
		slices.Sort(epochs)
		for _, e := range epochs {
			idx := byEpoch[e] // sorted by step and key, as scanPart reads
			batches, bytes, err := insertBatches(tx, e, rows, idx)
			if err != nil {
				return err
			}
			st := logStats{entries: int64(len(idx)), bytes: bytes, batches: batches}
			out[e] = st
			kept.entries += st.entries
			kept.bytes += st.bytes
			kept.batches += st.batches
		}
		return recordGC(tx, uint64(horizon))
	})
	if err != nil {
		return err
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
