package keyed

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keys"
)

func TestOwnerIsHashModWorkers(t *testing.T) {
	// Recovery data written by earlier releases was routed with
	// hash % workers: the owner of a key must not change.
	ops := keys.For[string]()
	for _, k := range []string{"", "a", "hello", "key-12345"} {
		for w := 1; w <= 7; w++ {
			if got, want := Owner(ops.Hash(k), w), int(ops.Hash(k)%uint64(w)); got != want {
				t.Errorf("Owner(%q, %d) = %d, want %d", k, w, got, want)
			}
			r, err := RouteText(ops)(k, w)
			if err != nil || r != Owner(ops.Hash(k), w) {
				t.Errorf("RouteText(%q, %d) = %d, %v", k, w, r, err)
			}
		}
	}
	if _, err := RouteText(keys.For[int]())("x", 2); err == nil {
		t.Error("RouteText of a non-integer for an int key: no error")
	}
	route := Router(keys.For[int](), 3, func(p [2]int) int { return p[0] })
	if got := route([2]int{42, 0}); got != Owner(keys.For[int]().Hash(42), 3) {
		t.Errorf("Router = %d", got)
	}
}

func TestTimersComeOutInTimeOrder(t *testing.T) {
	tb := NewTable[int, string](keys.For[int](), false)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[int]int64{}
	for k := range 200 {
		e := tb.Add(k)
		at := rng.Int64N(1000)
		tb.Schedule(e, at+500)
		tb.Schedule(e, at) // earlier: moves it
		tb.Schedule(e, at+100)
		want[k] = at
	}
	// Unschedule and delete some.
	for k := 0; k < 200; k += 7 {
		tb.Unschedule(tb.Get(k))
		delete(want, k)
	}
	for k := 3; k < 200; k += 11 {
		if e := tb.Get(k); e != nil {
			tb.Delete(e)
			delete(want, k)
		}
	}
	if tb.Timers() != len(want) {
		t.Fatalf("Timers = %d, want %d", tb.Timers(), len(want))
	}
	last := int64(-1)
	for n := 0; ; n++ {
		next, ok := tb.Next()
		e := tb.PopDue(2000)
		if e == nil {
			if ok || n != len(want) {
				t.Fatalf("popped %d of %d", n, len(want))
			}
			break
		}
		if at := want[e.Key]; e.at != at || next != at || at < last {
			t.Fatalf("key %d at %d (next %d), want %d, after %d", e.Key, e.at, next, at, last)
		}
		if _, on := e.Wake(); on {
			t.Fatal("a popped entry is still scheduled")
		}
		last = e.at
	}
	e := tb.Get(1)
	tb.Schedule(e, 10)
	if tb.PopDue(9) != nil || !tb.Due(10) || tb.Due(9) || tb.PopDue(10) != e {
		t.Error("PopDue pops only what is due")
	}
}

func TestRowsAndResume(t *testing.T) {
	ops := keys.For[string]()
	tb := NewTable[string, int](ops, true)
	a, b := tb.Add("a"), tb.Add("b")
	a.State, b.State = 1, 2
	tb.Changed("a", a, 1)
	tb.Changed("a", a, 1) // once per epoch
	tb.Changed("b", b, 1)
	tb.Delete(b)
	tb.Changed("b", nil, 1)
	tb.Changed("gone", nil, 1)
	enc := func(e *Entry[string, int]) ([]byte, error) { return []byte{byte(e.State)}, nil }
	rows, _, err := tb.Rows("s", enc, func(k string) ([]byte, bool, error) {
		if k == "gone" {
			return []byte("tomb"), true, nil
		}
		return nil, false, nil
	})
	want := []engine.Row{{Step: "s", Key: "a", Value: []byte{1}}, {Step: "s", Key: "b", Deleted: true}, {Step: "s", Key: "gone", Value: []byte("tomb")}}
	if err != nil || !slices.EqualFunc(rows, want, func(x, y engine.Row) bool {
		return x.Key == y.Key && x.Deleted == y.Deleted && string(x.Value) == string(y.Value)
	}) {
		t.Errorf("Rows = %v, %v; want %v", rows, err, want)
	}
	if rows, _, _ := tb.Rows("s", enc, nil); len(rows) != 0 {
		t.Errorf("second Rows = %v", rows)
	}
	tb.Changed("a", a, 2)
	if _, key, err := tb.Rows("s", func(*Entry[string, int]) ([]byte, error) { return nil, errors.New("boom") }, nil); err == nil || key != "a" {
		t.Errorf("encode error: %q %v", key, err)
	}

	// A key changed, deleted and added again in one epoch (as a window
	// does: it frees a key with nothing open, then the key's next item
	// makes a new entry) is one row, its last state.
	c := tb.Add("c")
	c.State = 3
	tb.Changed("c", c, 3)
	tb.Delete(c)
	c = tb.Add("c")
	c.State = 4
	tb.Changed("c", c, 3)
	if rows, _, err := tb.Rows("s", enc, nil); err != nil || len(rows) != 1 || rows[0].Key != "c" || string(rows[0].Value) != "\x04" {
		t.Errorf("key deleted and added again: Rows = %v, %v; want one row of c with 4", rows, err)
	}
	// And an epoch without deletions lists each key once without the set.
	c.State = 5
	tb.Changed("c", c, 4)
	tb.Changed("c", c, 4)
	if rows, _, _ := tb.Rows("s", enc, nil); len(rows) != 1 {
		t.Errorf("Rows = %v, want one row", rows)
	}

	// Without snapshots nothing is tracked.
	off := NewTable[string, int](ops, false)
	off.Changed("a", off.Add("a"), 1)
	if rows, _, _ := off.Rows("s", enc, nil); len(rows) != 0 {
		t.Errorf("rows without snapshots: %v", rows)
	}

	r := NewTable[int, int](keys.For[int](), false)
	err = r.Resume([][]engine.StateRow{{{Key: "1", Value: []byte{5}}, {Key: "2", Value: []byte{0}}}}, "int", func(e *Entry[int, int], raw []byte) (bool, error) {
		e.State = int(raw[0])
		r.Schedule(e, int64(raw[0]))
		return raw[0] != 0, nil
	})
	if err != nil || r.Len() != 1 || r.Get(1).State != 5 || r.Timers() != 1 {
		t.Errorf("Resume: %v, %d keys, %d timers", err, r.Len(), r.Timers())
	}
	err = r.Resume([][]engine.StateRow{{{Key: "x"}}}, "int", nil)
	if err == nil || !strings.Contains(err.Error(), `key "x": recovered key does not parse`) {
		t.Errorf("bad key: %v", err)
	}
	err = r.Resume([][]engine.StateRow{{{Key: "3"}}}, "thing", func(*Entry[int, int], []byte) (bool, error) { return false, errors.New("bad") })
	if err == nil || !strings.Contains(err.Error(), `key "3": recovered state does not decode into thing: bad`) {
		t.Errorf("bad value: %v", err)
	}
}

func TestSorted(t *testing.T) {
	tb := NewTable[int, struct{}](keys.For[int](), false)
	for _, k := range rand.Perm(100) {
		tb.Add(k - 50)
	}
	var got []int
	for _, e := range tb.Sorted() {
		got = append(got, e.Key)
	}
	if !slices.IsSorted(got) || len(got) != 100 || got[0] != -50 {
		t.Errorf("Sorted = %v", got)
	}
	tb.Reset()
	if tb.Len() != 0 || tb.Timers() != 0 {
		t.Error("Reset left entries")
	}
}

func TestNanosClamps(t *testing.T) {
	if Nanos(time.Unix(0, 5)) != 5 {
		t.Error("Nanos(5ns)")
	}
	if Nanos(time.Unix(1<<40, 0)) != 1<<63-1 || Nanos(time.Unix(-(1<<40), 0)) != -1<<63 {
		t.Error("Nanos does not clamp")
	}
}

// resumedState has a pointer, so that an entry Resume reuses after a
// dropped key would show what decode left in it.
type resumedState struct {
	N    int
	Name *string
}

// Resume allocates entries in chunks and reuses the entry of a key decode
// drops: every kept key must still have an entry of its own, the timer
// heap must hold exactly the kept keys decode scheduled, and deleting and
// adding keys afterwards must leave the other keys' entries alone.
func TestResumeChunkedEntries(t *testing.T) {
	n := 3*resumeChunk[int, resumedState]() + 17
	rows := make([]engine.StateRow, n)
	for k := range n {
		rows[k] = engine.StateRow{Key: strconv.Itoa(k), Value: []byte(strconv.Itoa(k))}
	}
	kept := func(k int) bool { return k%5 != 0 }
	scheduled := func(k int) bool { return k%3 == 0 }
	tb := NewTable[int, resumedState](keys.For[int](), true)
	// In blocks of uneven sizes, one of them empty, as the runner hands
	// them over.
	blocks := [][]engine.StateRow{rows[:100], rows[100:101], nil, rows[101:700], rows[700:]}
	err := tb.Resume(blocks, "resumedState", func(e *Entry[int, resumedState], raw []byte) (bool, error) {
		if e.State.Name != nil || e.State.N != 0 || e.mark != 0 {
			t.Fatalf("key %d: entry not fresh: %+v", e.Key, e)
		}
		if _, on := e.Wake(); on {
			t.Fatalf("key %d: fresh entry is scheduled", e.Key)
		}
		name := string(raw)
		e.State = resumedState{N: 10 * e.Key, Name: &name}
		if scheduled(e.Key) {
			tb.Schedule(e, int64(n-e.Key))
		}
		return kept(e.Key), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*Entry[int, resumedState]]int{}
	timers := 0
	for k := range n {
		e := tb.Get(k)
		if !kept(k) {
			if e != nil {
				t.Fatalf("dropped key %d has an entry", k)
			}
			continue
		}
		if e == nil || e.Key != k || e.State.N != 10*k || *e.State.Name != strconv.Itoa(k) {
			t.Fatalf("key %d: entry %+v", k, e)
		}
		if other, dup := seen[e]; dup {
			t.Fatalf("keys %d and %d share an entry", other, k)
		}
		seen[e] = k
		if at, on := e.Wake(); on != scheduled(k) || (on && at != int64(n-k)) {
			t.Fatalf("key %d: wake %d %v", k, at, on)
		}
		if scheduled(k) {
			timers++
		}
	}
	if tb.Len() != len(seen) || tb.Timers() != timers {
		t.Fatalf("Len %d Timers %d, want %d and %d", tb.Len(), tb.Timers(), len(seen), timers)
	}

	// Delete every even key, add the dropped and deleted keys again (new
	// entries), and check the heap and the other entries.
	for k := 0; k < n; k += 2 {
		if e := tb.Get(k); e != nil {
			tb.Delete(e)
			tb.Changed(k, nil, 5)
		}
	}
	for k := 0; k < n; k += 2 {
		e := tb.Add(k)
		if _, old := seen[e]; old {
			t.Fatalf("key %d added again got a resumed entry", k)
		}
		e.State = resumedState{N: -k}
		tb.Changed(k, e, 5)
		if k%4 == 0 {
			tb.Schedule(e, int64(n-k))
		}
	}
	for k := 1; k < n; k += 2 {
		if e := tb.Get(k); kept(k) && (e == nil || e.State.N != 10*k || e.Key != k) {
			t.Fatalf("odd key %d after deletes: %+v", k, e)
		}
	}
	last := int64(-1)
	for e := tb.PopDue(int64(n)); e != nil; e = tb.PopDue(int64(n)) {
		if e.at < last || tb.Get(e.Key) != e {
			t.Fatalf("popped key %d at %d after %d (in the table: %v)", e.Key, e.at, last, tb.Get(e.Key) == e)
		}
		if e.Key%2 == 0 && e.Key%4 != 0 || e.Key%2 == 1 && !(kept(e.Key) && scheduled(e.Key)) {
			t.Fatalf("popped key %d, which is not scheduled", e.Key)
		}
		last = e.at
	}
	rows2, _, err := tb.Rows("s", func(e *Entry[int, resumedState]) ([]byte, error) { return []byte(strconv.Itoa(e.State.N)), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows2 {
		if _, dup := got[r.Key]; dup {
			t.Fatalf("Rows lists key %s twice", r.Key)
		}
		got[r.Key] = string(r.Value)
	}
	for k := 0; k < n; k += 2 {
		if got[strconv.Itoa(k)] != strconv.Itoa(-k) {
			t.Fatalf("key %d deleted and added again: row %q, want %d", k, got[strconv.Itoa(k)], -k)
		}
	}
	if len(got) != (n+1)/2 {
		t.Fatalf("Rows lists %d keys, want %d", len(got), (n+1)/2)
	}
}

// A migrated step's Resume lists every recovered key in the first epoch:
// the kept ones with their state, the dropped ones as deletions, each
// once, even when a dropped key gets an entry again in that epoch.
func TestRewriteOnResumeListsEveryKeyOnce(t *testing.T) {
	tb := NewTable[int, int](keys.For[int](), true)
	tb.RewriteOnResume(7)
	var rows []engine.StateRow
	for k := range 600 {
		rows = append(rows, engine.StateRow{Key: strconv.Itoa(k)})
	}
	if err := tb.Resume([][]engine.StateRow{rows[:300], rows[300:]}, "int", func(e *Entry[int, int], _ []byte) (bool, error) {
		e.State = e.Key
		return e.Key%2 == 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	e := tb.Add(1) // dropped on resume, back in the same epoch
	e.State = 100
	tb.Changed(1, e, 7)
	tb.Changed(2, tb.Get(2), 7) // already listed
	out, _, err := tb.Rows("s", func(e *Entry[int, int]) ([]byte, error) { return []byte(strconv.Itoa(e.State)), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]engine.Row{}
	for _, r := range out {
		if _, dup := got[r.Key]; dup {
			t.Fatalf("key %s listed twice", r.Key)
		}
		got[r.Key] = r
	}
	for k := range 600 {
		r, ok := got[strconv.Itoa(k)]
		switch {
		case !ok:
			t.Fatalf("key %d not rewritten", k)
		case k == 1:
			if r.Deleted || string(r.Value) != "100" {
				t.Fatalf("key 1: %+v, want 100", r)
			}
		case k%2 == 1 && !r.Deleted, k%2 == 0 && string(r.Value) != strconv.Itoa(k):
			t.Fatalf("key %d: %+v", k, r)
		}
	}
}
