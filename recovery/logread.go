package recovery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// Reading the change log. A partition's log is read into a logIndex: the
// text of every batch as the driver returns it, and one small,
// pointer-free logEntry per entry locating the entry's key and value in
// that text (nothing is decoded or copied per entry). The entries of one
// WriteEpoch or compaction ascend by (step, key); where that order breaks
// (the next epoch, or a batch a hand or another tool wrote) a new sorted
// run starts. A tree of losers merges the runs in order of step, key and
// position in the log (batches ordered by epoch, step and seq), so that
// among the rows of one (step, key, epoch) the one written last comes
// last, and among those of one (step, key) the newest. Compaction copies each surviving entry's text as it stands into
// its output batch; Load decodes only the entries it passes on.

// batchScanner walks the entries of one change batch (a JSON object) in
// order, without copying.
type batchScanner struct {
	s     string
	i     int   // next byte of s to read
	n     int64 // entries read so far
	first bool  // no entry or '}' read yet
}

// batchEntry is one entry of a batch: s[start:end] is its text, "key":value.
type batchEntry struct {
	start, end int
	key        string // unescaped: a substring of the batch unless it had escapes
	escaped    bool   // key holds escapes, so it is not a substring
	hex        string // the value's hex digits, a substring of the batch; "" when deleted
	deleted    bool
}

func (p *batchScanner) fail(what string) error {
	return fmt.Errorf("%w: entry %d: %s", errBatch, p.n, what)
}

func (p *batchScanner) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// start reads the opening brace.
func (p *batchScanner) start(s string) error {
	*p = batchScanner{s: s, first: true}
	p.skipSpace()
	if p.i >= len(s) || s[p.i] != '{' {
		return fmt.Errorf("%w: not a JSON object", errBatch)
	}
	p.i++
	p.skipSpace()
	return nil
}

// more reports whether another entry follows, reading the ',' before it,
// or the '}' that ends the batch (and checking that nothing but blanks
// comes after it).
func (p *batchScanner) more() (bool, error) {
	s := p.s
	if p.first {
		p.first = false
		if p.i < len(s) && s[p.i] == '}' {
			return false, p.finish()
		}
		return true, nil
	}
	switch {
	case p.i < len(s) && s[p.i] == ',':
		p.i++
		p.skipSpace()
		return true, nil
	case p.i < len(s) && s[p.i] == '}':
		return false, p.finish()
	}
	return false, p.fail("no ',' or '}' after the entry")
}

// count checks, at the end, that the batch held want entries.
func (p *batchScanner) count(want int64) error {
	if p.n != want {
		return fmt.Errorf("%w: %d entries, the entries column says %d", errBatch, p.n, want)
	}
	return nil
}

// next reads the entry at the scanner into e, and the blanks after it.
func (p *batchScanner) next(e *batchEntry) error {
	s := p.s
	*e = batchEntry{}
	// The key.
	if p.i >= len(s) || s[p.i] != '"' {
		return p.fail("bad key")
	}
	e.start = p.i
	j := p.i + 1
	for ; j < len(s); j++ {
		c := s[j]
		if c == '"' {
			break
		}
		if c == '\\' {
			e.escaped = true
			j++
		}
	}
	if j >= len(s) {
		return p.fail("bad key")
	}
	if e.escaped {
		b, rest, err := appendJSONStringAt(nil, s[p.i:])
		if err != nil || len(rest) != len(s)-j-1 {
			return p.fail("bad key")
		}
		e.key = string(b)
	} else {
		e.key = s[p.i+1 : j]
	}
	p.i = j + 1
	p.skipSpace()
	if p.i >= len(s) || s[p.i] != ':' {
		return p.fail("no ':' after the key")
	}
	p.i++
	p.skipSpace()
	// The value.
	switch {
	case strings.HasPrefix(s[p.i:], "null"):
		e.deleted = true
		p.i += 4
	case p.i < len(s) && s[p.i] == '"':
		end := strings.IndexByte(s[p.i+1:], '"')
		if end < 0 {
			return p.fail("unterminated value")
		}
		e.hex = s[p.i+1 : p.i+1+end]
		if !isHex(e.hex) {
			return p.fail(fmt.Sprintf("value of key %q is not hex", e.key))
		}
		p.i += end + 2
	default:
		return p.fail(fmt.Sprintf("value of key %q is neither a hex string nor null", e.key))
	}
	e.end = p.i
	p.n++
	p.skipSpace()
	return nil
}

func (p *batchScanner) finish() error {
	p.i++ // '}'
	p.skipSpace()
	if p.i != len(p.s) {
		return fmt.Errorf("%w: data after the object", errBatch)
	}
	return nil
}

// scanBatch calls fn with each entry of a batch, in order, and checks that
// it holds want entries. fn may have been called for some entries when an
// error about a later part of the batch is returned.
func scanBatch(s string, want int64, fn func(e *batchEntry) error) error {
	var p batchScanner
	if err := p.start(s); err != nil {
		return err
	}
	var e batchEntry
	for {
		more, err := p.more()
		if err != nil {
			return err
		}
		if !more {
			return p.count(want)
		}
		if err := p.next(&e); err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
}

var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = byte(10 + i)
	}
	return t
}()

func isHex(s string) bool {
	if len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexValue[s[i]] == 0xff {
			return false
		}
	}
	return true
}

// appendUnhex appends the bytes of hex digits s (checked by isHex).
func appendUnhex(dst []byte, s string) []byte {
	for i := 0; i+1 < len(s); i += 2 {
		dst = append(dst, hexValue[s[i]]<<4|hexValue[s[i+1]])
	}
	return dst
}

// logBatch is one batch of a logIndex.
type logBatch struct {
	seq   int64
	epoch int64
	step  string
	n     int64 // the entries column
	rank  int32 // order of step among the index's steps
	text  string
}

// logEntry locates one entry of a logIndex: batches[batch].text[start:end]
// is its text, and its key is text[key:key+keyLen], or escaped[key:...]
// when keyLen has escapedKey set. val is where its hex digits start (they
// end before end-1, the closing quote), 0 when it is a deletion.
type logEntry struct {
	batch            int32
	start, end       uint32
	key, keyLen, val uint32
}

const escapedKey = 1 << 31

// logIndex is the change log of a partition below some epoch, as read by
// readLogIndex.
type logIndex struct {
	batches []logBatch
	entries []logEntry
	runs    []int32 // start of each sorted run in entries
	escaped string  // the unescaped keys of entries whose key had escapes
}

func (x *logIndex) key(i int32) string {
	e := &x.entries[i]
	if e.keyLen&escapedKey != 0 {
		return x.escaped[e.key : e.key+e.keyLen&^escapedKey]
	}
	return x.batches[e.batch].text[e.key : e.key+e.keyLen]
}

// text returns the entry's text, "key":value, as stored.
func (x *logIndex) text(i int32) string {
	e := &x.entries[i]
	return x.batches[e.batch].text[e.start:e.end]
}

// hex returns the hex digits of the entry's value; ok is false for a
// deletion.
func (x *logIndex) hex(i int32) (string, bool) {
	e := &x.entries[i]
	if e.val == 0 {
		return "", false
	}
	return x.batches[e.batch].text[e.val : e.end-1], true
}

func (x *logIndex) batchOf(i int32) *logBatch { return &x.batches[x.entries[i].batch] }

// readLogIndex reads the change log batches with epoch < below (and of
// step, when not "", and not of the steps in skip) into an index, whose
// entries it appends to scratch (nil, or the entries of an index no longer
// used). The batches of skipped steps (steps a run drops) are not parsed:
// one that is damaged does not stop a run that discards it.
func readLogIndex(ctx context.Context, q querier, below int64, step string, skip map[string]bool, scratch []logEntry) (*logIndex, error) {
	query := "SELECT seq, epoch, step_id, entries, batch FROM changes WHERE epoch < ?"
	args := []any{below}
	if step != "" {
		query += " AND step_id = ?"
		args = append(args, step)
	}
	// In the table's order (ORDER BY epoch, step_id, seq would make SQLite
	// copy every batch into a sorter), ordered below.
	rows, err := queryContext(ctx, q, query+" ORDER BY seq", args...)
	if err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	defer rows.Close()
	x := &logIndex{}
	var total int64 // entries, for the index's size
	for rows.Next() {
		var b logBatch
		if err := rows.Scan(&b.seq, &b.epoch, &b.step, &b.n, &b.text); err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		if skip[b.step] {
			continue
		}
		if b.n > 0 {
			total += b.n
		}
		if k := len(x.batches); k > 0 && x.batches[k-1].step == b.step {
			b.step = x.batches[k-1].step // share one string per step
		}
		x.batches = append(x.batches, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read change log: %w", err)
	}
	return indexBatches(x.batches, total, scratch)
}

// indexBatches indexes batches, read in any order, holding total entries,
// appending the entries to scratch.
func indexBatches(batches []logBatch, total int64, scratch []logEntry) (*logIndex, error) {
	x := &logIndex{batches: batches}
	if len(x.batches) > 1<<31-1 || total > 1<<31-1 {
		return nil, fmt.Errorf("read change log: %d batches of %d entries: too many to read at once", len(x.batches), total)
	}
	// The order in which rows of one (step, key) supersede each other.
	slices.SortStableFunc(x.batches, func(a, b logBatch) int {
		if a.epoch != b.epoch {
			return cmp.Compare(a.epoch, b.epoch)
		}
		if c := strings.Compare(a.step, b.step); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	// Steps ordered once, so that entries compare steps as integers.
	steps := make([]string, 0, 4)
	for i := range x.batches {
		if k := len(steps); k == 0 || steps[k-1] != x.batches[i].step {
			steps = append(steps, x.batches[i].step)
		}
	}
	slices.Sort(steps)
	steps = slices.Compact(steps)
	for i := range x.batches {
		r, _ := slices.BinarySearch(steps, x.batches[i].step)
		x.batches[i].rank = int32(r)
	}

	// An entry takes 7 bytes at least ("":null,): a damaged entries
	// column must not make this allocate more than the text can hold.
	var size int
	for i := range x.batches {
		size += len(x.batches[i].text)
	}
	x.entries = slices.Grow(scratch[:0], int(min(total, int64(size/7+1))))
	var escaped []byte
	prevRank, prevKey := int32(-1), ""
	for bi := range x.batches {
		b := &x.batches[bi]
		if len(b.text) > 1<<31-1 {
			return nil, fmt.Errorf("%w: changes batch of step %s epoch %d: %d bytes, too long", ErrCorrupt, b.step, b.epoch, len(b.text))
		}
		if err := x.indexBatch(int32(bi), &escaped, &prevRank, &prevKey); err != nil {
			return nil, fmt.Errorf("%w: changes batch of step %s epoch %d: %w (restore the partition from a backup, or discard the step's state with --drop-state %s)",
				ErrCorrupt, b.step, b.epoch, err, b.step)
		}
	}
	x.escaped = string(escaped)
	return x, nil
}

// indexBatch indexes the entries of batch bi, starting a run wherever
// (step, key) does not ascend from the entry before (prevRank, prevKey).
func (x *logIndex) indexBatch(bi int32, escaped *[]byte, prevRank *int32, prevKey *string) error {
	b := &x.batches[bi]
	var p batchScanner
	if err := p.start(b.text); err != nil {
		return err
	}
	var e batchEntry
	for {
		more, err := p.more()
		if err != nil {
			return err
		}
		if !more {
			return p.count(b.n)
		}
		if err := p.next(&e); err != nil {
			return err
		}
		le := logEntry{batch: bi, start: uint32(e.start), end: uint32(e.end)}
		if e.escaped {
			le.key, le.keyLen = uint32(len(*escaped)), uint32(len(e.key))|escapedKey
			*escaped = append(*escaped, e.key...)
			if len(*escaped) > 1<<31-1 {
				return fmt.Errorf("keys too long")
			}
		} else {
			le.key, le.keyLen = uint32(e.start+1), uint32(len(e.key))
		}
		if !e.deleted {
			le.val = uint32(e.end - 1 - len(e.hex))
		}
		// A run goes on while (step, key) ascends strictly.
		if len(x.entries) == 0 || b.rank < *prevRank || b.rank == *prevRank && e.key <= *prevKey {
			x.runs = append(x.runs, int32(len(x.entries)))
		}
		*prevRank, *prevKey = b.rank, e.key
		x.entries = append(x.entries, le)
	}
}

// mergeHead is the next entry of one run in a logMerge.
type mergeHead struct {
	key    string
	rank   int32
	i, end int32 // the entry, and the end of its run
	epoch  int64
	done   bool // the run has no entry left
}

// less orders entries by step, key and position; a run that is done comes
// after every other.
func (a *mergeHead) less(b *mergeHead) bool {
	if a.done || b.done {
		return !a.done
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.i < b.i // entries are indexed in order of epoch, then as written
}

// logMerge yields the entries of a logIndex in order of step, key, epoch
// and position in the log, merging its runs with a tree of losers: each
// entry costs log2(runs) comparisons.
type logMerge struct {
	x     *logIndex
	heads []mergeHead // per run
	// tree[0] is the run of the next entry; tree[n], for n in [1, runs),
	// the run that lost the match at node n, whose children are nodes 2n
	// and 2n+1 (node runs+j stands for run j).
	tree []int32
}

func (x *logIndex) merge() *logMerge {
	k := len(x.runs)
	m := &logMerge{x: x, heads: make([]mergeHead, k), tree: make([]int32, max(k, 1))}
	for j, lo := range x.runs {
		hi := int32(len(x.entries))
		if j+1 < k {
			hi = x.runs[j+1]
		}
		m.setHead(&m.heads[j], lo, hi)
	}
	if k == 0 {
		m.heads = []mergeHead{{done: true}}
		return m
	}
	winners := make([]int32, 2*k)
	for j := range k {
		winners[k+j] = int32(j)
	}
	for n := k - 1; n >= 1; n-- {
		a, b := winners[2*n], winners[2*n+1]
		if m.heads[b].less(&m.heads[a]) {
			a, b = b, a
		}
		winners[n], m.tree[n] = a, b
	}
	m.tree[0] = winners[1]
	if k == 1 {
		m.tree[0] = 0
	}
	return m
}

func (m *logMerge) setHead(h *mergeHead, i, end int32) {
	b := m.x.batchOf(i)
	*h = mergeHead{key: m.x.key(i), rank: b.rank, i: i, end: end, epoch: b.epoch}
}

// next returns the next entry, or false when every run is done.
func (m *logMerge) next() (*mergeHead, bool) {
	h := &m.heads[m.tree[0]]
	return h, !h.done
}

// advance moves past the entry next returned.
func (m *logMerge) advance() {
	w := m.tree[0]
	top := &m.heads[w]
	if top.i+1 < top.end {
		m.setHead(top, top.i+1, top.end)
	} else {
		top.done = true
	}
	k := int32(len(m.heads))
	for n := (w + k) / 2; n >= 1; n /= 2 {
		if m.heads[m.tree[n]].less(&m.heads[w]) {
			m.tree[n], w = w, m.tree[n]
		}
	}
	m.tree[0] = w
}

// newest calls fn with the newest entry of each (step, key) in the index,
// in order of step and key: the one of the highest epoch, and of those
// the one written last.
func (x *logIndex) newest(fn func(i int32) error) error {
	m := x.merge()
	h, ok := m.next()
	for ok {
		cur := *h
		m.advance()
		for h, ok = m.next(); ok && h.rank == cur.rank && h.key == cur.key; h, ok = m.next() {
			cur = *h
			m.advance()
		}
		if err := fn(cur.i); err != nil {
			return err
		}
	}
	return nil
}

// rowIter yields one row per (step, key, epoch) of an index, in order of
// step, key and epoch: where several exist, the one written last. Values
// are decoded into memory the caller may keep.
type rowIter struct {
	x     *logIndex
	m     *logMerge
	arena []byte
	r     logRow
}

func (x *logIndex) rows() *rowIter { return &rowIter{x: x, m: x.merge()} }

func (it *rowIter) next() (*logRow, bool) {
	x, m := it.x, it.m
	h, ok := m.next()
	if !ok {
		return nil, false
	}
	cur := *h
	m.advance()
	for h, ok = m.next(); ok && h.rank == cur.rank && h.epoch == cur.epoch && h.key == cur.key; h, ok = m.next() {
		cur = *h
		m.advance()
	}
	b := x.batchOf(cur.i)
	it.r = logRow{step: b.step, key: cur.key, epoch: b.epoch, deleted: true}
	if x.entries[cur.i].keyLen&escapedKey == 0 {
		it.r.key = strings.Clone(cur.key) // not a substring that keeps the batch alive
	}
	if hx, ok := x.hex(cur.i); ok {
		it.arena = carve(it.arena, len(hx)/2)
		start := len(it.arena)
		it.arena = appendUnhex(it.arena, hx)
		it.r.value, it.r.deleted = it.arena[start:len(it.arena):len(it.arena)], false
	}
	return &it.r, true
}

// carve makes room for n more bytes in arena, starting a new one (the
// values cut from the old stay where they are) when it is full.
func carve(arena []byte, n int) []byte {
	if arena == nil || cap(arena)-len(arena) < n {
		return make([]byte, 0, max(n, 64<<10))
	}
	return arena
}
