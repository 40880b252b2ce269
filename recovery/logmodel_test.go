package recovery

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

// modelWrite is one row written, as the model keeps it.
type modelWrite struct {
	epoch   int64
	order   int64 // log rows in the order written; rows put into snaps: -1
	value   string
	deleted bool
}

// logModel is what a store should hold: every row ever written, per key.
type logModel struct {
	rows  map[[2]string][]modelWrite
	order int64
}

// at returns the state Load(epoch) must give: each key's newest row before
// epoch, newest by epoch, then by the order written (a change log row wins
// over a snaps row).
func (m *logModel) at(epoch int64) []kv {
	out := []kv{}
	for k, ws := range m.rows {
		var best *modelWrite
		for i := range ws {
			w := &ws[i]
			if w.epoch < epoch && (best == nil || w.epoch > best.epoch || w.epoch == best.epoch && w.order > best.order) {
				best = w
			}
		}
		if best != nil && !best.deleted {
			out = append(out, kv{k[0], k[1], best.value})
		}
	}
	sortKVs(out)
	return out
}

func sortKVs(s []kv) {
	slices.SortFunc(s, func(a, b kv) int { return cmp.Or(strings.Compare(a.Step, b.Step), strings.Compare(a.Key, b.Key)) })
}

// diffKVs is gocmp.Diff, skipped when equal (Diff is slow).
func diffKVs(want, got []kv) string {
	if slices.Equal(want, got) {
		return ""
	}
	return gocmp.Diff(want, got)
}

// forget drops the rows at or after epoch, as Begin deletes them.
func (m *logModel) forget(epoch int64) {
	for k, ws := range m.rows {
		m.rows[k] = slices.DeleteFunc(ws, func(w modelWrite) bool { return w.epoch >= epoch })
	}
}

// modelKeys are keys that JSON, the radix sort and the merge must all get
// right: escapes, control characters, bytes that are not UTF-8, the empty
// key, keys that are prefixes of others, long shared prefixes.
func modelKeys(r *rand.Rand) []string {
	keys := []string{
		"", "a", "a\x00", "a\x00b", "ab", "a\"b", `a\b`, `\`, `"`, `\"`, "\x01\x1f\n\t", "\x7f",
		"\xff\xfe", "\xc3", "é", "\u2028", `\u0041`, "A", "user-1", "user-10", "user-2",
		"user-100000000", "user-100000001", "user-10000000", "prefix-shared-long-0001",
		"prefix-shared-long-0002", "prefix-shared-long-00010", "}", ",", ":", "null",
	}
	alphabet := []string{"a", "b", "z", "0", "9", `"`, `\`, "\x00", "\n", "\x1f", "\x7f", "\xff", "\xc3\xa9", "\xe2\x80\xa8", "u", "/"}
	for range 30 {
		var b strings.Builder
		for range r.IntN(14) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		keys = append(keys, b.String())
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TestLogModel writes random epochs of random keys (deletions, escaped
// keys, keys written twice in one call, epochs written in two calls, rows
// an older release left in snaps), commits with random backup intervals,
// compacts at random points, and now and then stops and resumes, losing
// what was not committed; after each epoch, Load from every epoch that
// garbage collection keeps must equal a plain map model, and so must the
// general reader (scanPart) and StateAt. Every batch must stay valid JSON
// to SQLite, with as many entries as its entries column says.
func TestLogModel(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 14))
			compactAlways(t)
			compactEverything = false
			compactEntries, compactBytes, compactBatches = int64(1+r.IntN(60)), 1<<40, 1<<40
			logModelRun(t, r, 1+r.IntN(3), seed%2 == 1)
		})
	}
}

func logModelRun(t *testing.T, r *rand.Rand, parts int, snaps bool) {
	dir := mustInit(t, parts)
	s := mustOpen(t, dir)
	steps := map[string]string{"f.a": "int", "f.b": "int", "f.c\"d": "int"}
	stepIDs := slices.Sorted(func(yield func(string) bool) {
		for id := range steps {
			if !yield(id) {
				return
			}
		}
	})
	res := begin(t, s, "f", 1, steps)
	keys := modelKeys(r)
	m := &logModel{rows: map[[2]string][]modelWrite{}}
	epoch := int64(res.Epoch)
	committed := epoch // frontier
	for range 40 {
		// Write an epoch, in one call or two.
		var rows []Row
		var writes [][2]string
		for range r.IntN(2 * len(keys)) {
			step, key := stepIDs[r.IntN(len(stepIDs))], keys[r.IntN(len(keys))]
			row := Row{Step: step, Key: key}
			if r.IntN(4) == 0 {
				row.Deleted = true
			} else {
				v := make([]byte, r.IntN(6))
				for i := range v {
					v[i] = byte(r.IntN(256))
				}
				row.Value = v
			}
			rows = append(rows, row)
			writes = append(writes, [2]string{step, key})
		}
		split := len(rows)
		if r.IntN(4) == 0 {
			split = r.IntN(len(rows) + 1)
		}
		for _, part := range [][]Row{rows[:split], rows[split:]} {
			if len(part) == 0 {
				continue
			}
			if err := s.WriteEpoch(uint64(epoch), part); err != nil {
				t.Fatal(err)
			}
			// Within one call the last row of a key wins.
			last := map[[2]string]int{}
			for i, row := range part {
				last[[2]string{row.Step, row.Key}] = i
			}
			for i, row := range part {
				k := [2]string{row.Step, row.Key}
				if last[k] != i {
					continue
				}
				m.order++
				m.rows[k] = append(m.rows[k], modelWrite{epoch: epoch, order: m.order, value: string(row.Value), deleted: row.Deleted})
			}
		}
		epoch++

		switch x := r.IntN(10); {
		case x == 0:
			// Stop without committing the epoch, and resume.
			s.Close()
			s = mustOpen(t, dir)
			res = begin(t, s, "f", 1, steps)
			if int64(res.Epoch) != committed {
				t.Fatalf("resumed at epoch %d, want %d", res.Epoch, committed)
			}
			m.forget(committed)
			epoch = committed
		default:
			keep := uint64(r.IntN(4))
			if err := s.Commit(res.Execution, []int{0}, uint64(epoch), keep); err != nil {
				t.Fatal(err)
			}
			committed = epoch
		}
		if snaps && r.IntN(3) == 0 {
			logModelSnaps(t, r, s, m, stepIDs, keys, committed)
		}
		if r.IntN(2) == 0 {
			if err := s.Compact(int64(1 + r.IntN(3))); err != nil {
				t.Fatal(err)
			}
		}
		logModelCheck(t, s, m, committed)
	}
}

// logModelSnaps puts rows into snaps, as an older release left them, at
// epochs that garbage collection keeps.
func logModelSnaps(t *testing.T, r *rand.Rand, s *Store, m *logModel, steps, keys []string, frontier int64) {
	gc := int64(slices.Max(s.gcEpoch))
	if gc >= frontier {
		return
	}
	for range 1 + r.IntN(8) {
		step, key := steps[r.IntN(len(steps))], keys[r.IntN(len(keys))]
		e := gc + r.Int64N(frontier-gc)
		var value any
		w := modelWrite{epoch: e, order: -1, deleted: true}
		if r.IntN(3) > 0 {
			v := fmt.Sprint("snap", e)
			value, w.value, w.deleted = []byte(v), v, false
		}
		p := s.parts[PartitionFor(step, key, len(s.parts))]
		if _, err := p.db.Exec("INSERT OR REPLACE INTO snaps(step_id, state_key, epoch, ser_change) VALUES(?, ?, ?, ?)", step, key, e, value); err != nil {
			t.Fatal(err)
		}
		k := [2]string{step, key}
		m.rows[k] = slices.DeleteFunc(m.rows[k], func(w modelWrite) bool { return w.order < 0 && w.epoch == e })
		m.rows[k] = append(m.rows[k], w)
	}
}

func logModelCheck(t *testing.T, s *Store, m *logModel, frontier int64) {
	t.Helper()
	gc := int64(slices.Max(s.gcEpoch))
	for e := max(gc, 1); e <= frontier; e++ {
		want := m.at(e)
		got := append([]kv{}, loadAll(t, s, uint64(e))...)
		sortKVs(got)
		if diff := diffKVs(want, got); diff != "" {
			t.Fatalf("Load(%d), frontier %d, gc epoch %d (-want +got):\n%s", e, frontier, gc, diff)
		}
		// The general reader, as dump and inspect use it.
		general := []kv{}
		for _, p := range s.parts {
			var cur logRow
			have := false
			flush := func() {
				if have && !cur.deleted {
					general = append(general, kv{cur.step, cur.key, string(cur.value)})
				}
			}
			err := scanPart(context.Background(), p.db, p.format, e, "", nil, func(r *logRow) error {
				if have && r.step == cur.step && r.key == cur.key {
					if r.epoch <= cur.epoch {
						return fmt.Errorf("step %s key %q: epoch %d after %d", r.step, r.key, r.epoch, cur.epoch)
					}
				} else {
					flush()
				}
				cur, have = *r, true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			flush()
		}
		sortKVs(general)
		if diff := diffKVs(want, general); diff != "" {
			t.Fatalf("scanPart before %d (-want +got):\n%s", e, diff)
		}
	}
	// StateAt, per step.
	want := m.at(frontier)
	entries, err := s.StateAt(uint64(frontier-1), "")
	if err != nil {
		t.Fatal(err)
	}
	got := []kv{}
	for _, e := range entries {
		got = append(got, kv{e.Step, e.Key, string(e.Value)})
	}
	sortKVs(got)
	if diff := diffKVs(want, got); diff != "" {
		t.Fatalf("StateAt(%d) (-want +got):\n%s", frontier-1, diff)
	}
	// Every batch is JSON to SQLite, holding what its entries column says,
	// each key once.
	for _, p := range s.parts {
		var bad, mismatched, repeated int
		err := p.db.QueryRow(`SELECT
			(SELECT count(*) FROM changes WHERE NOT json_valid(batch)),
			(SELECT count(*) FROM changes AS c WHERE entries != (SELECT count(*) FROM json_each(c.batch))),
			(SELECT count(*) FROM changes AS c WHERE entries != (SELECT count(DISTINCT key) FROM json_each(c.batch)))`).Scan(&bad, &mismatched, &repeated)
		if err != nil {
			t.Fatal(err)
		}
		if bad+mismatched+repeated > 0 {
			t.Fatalf("%s: %d batches not JSON, %d with another number of entries, %d with repeated keys", p.name(), bad, mismatched, repeated)
		}
	}
}

// TestSortRows: the radix sort orders rows as a comparison sort does,
// keeping each key's last row, for keys of any bytes and steps in any
// order.
func TestSortRows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s rowSorter
	for round := range 300 {
		keys := modelKeys(r)
		steps := []string{"s", "s", "t", "a.b"}
		if round%3 == 0 {
			steps = steps[:1]
		}
		n := r.IntN(200)
		if round%50 == 0 {
			n = 20000
		}
		rows := make([]Row, n)
		idx := make([]int32, n)
		for i := range rows {
			key := keys[r.IntN(len(keys))]
			if round%5 == 0 {
				key = fmt.Sprintf("user-%d", r.IntN(n+1))
			}
			rows[i] = Row{Step: steps[r.IntN(len(steps))], Key: key}
			idx[i] = int32(i)
		}
		if round%7 == 0 {
			slices.SortStableFunc(rows, func(a, b Row) int {
				return cmp.Or(strings.Compare(a.Step, b.Step), strings.Compare(a.Key, b.Key))
			})
		}
		want := slices.Clone(idx)
		slices.SortStableFunc(want, func(a, b int32) int {
			return cmp.Or(strings.Compare(rows[a].Step, rows[b].Step), strings.Compare(rows[a].Key, rows[b].Key))
		})
		var last []int32
		for k, i := range want {
			if k+1 < len(want) && rows[want[k+1]].Step == rows[i].Step && rows[want[k+1]].Key == rows[i].Key {
				continue
			}
			last = append(last, i)
		}
		got := s.sortRows(rows, idx)
		if !slices.Equal(got, last) {
			t.Fatalf("round %d: sorted %v, want %v", round, got, last)
		}
	}
}
