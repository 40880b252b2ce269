package recovery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBatchRoundTrip: every key (quotes, backslashes, control characters,
// bytes that are not UTF-8, the empty key) and value (empty, deleted)
// reads back as written.
func TestBatchRoundTrip(t *testing.T) {
	rows := []Row{
		{Key: "", Value: []byte{}},
		{Key: "plain", Value: []byte{0x01}},
		{Key: `q"uo\te`, Value: []byte{0xff, 0x00, 0x7f}},
		{Key: "ctl\x00\x01\n\t\x1f", Deleted: true},
		{Key: "not utf-8 \xff\xfe", Value: []byte("x")},
		{Key: "ünï/cødé ✓", Value: []byte{0x18, 0x2a}},
	}
	idx := []int{0, 1, 2, 3, 4, 5}
	b := appendBatch(nil, rows, idx)
	var got []Row
	err := decodeBatch(b, int64(len(rows)), func(key string, value []byte, deleted bool) {
		got = append(got, Row{Key: key, Value: value, Deleted: deleted})
	})
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	want := slices.Clone(rows)
	want[3].Value = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\nbatch: %s", diff, b)
	}
}

// TestBatchEscapes: escapes another JSON writer may use (sqlite's json_set,
// a hand edit) read as JSON says.
func TestBatchEscapes(t *testing.T) {
	var keys []string
	err := decodeBatch([]byte(` { "a\/b\u00e9\ud83d\ude00\n" : "0a" , "\"" :null } `), 2, func(key string, _ []byte, _ bool) {
		keys = append(keys, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/bé😀\n", `"`}; !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}
}

func TestBatchMalformed(t *testing.T) {
	for _, c := range []struct {
		batch string
		n     int64
		want  string
	}{
		{``, 0, "not a JSON object"},
		{`[]`, 0, "not a JSON object"},
		{`{"k":"0g"}`, 1, `value of key "k" is not hex`},
		{`{"k":"abc"}`, 1, `value of key "k" is not hex`},
		{`{"k":1}`, 1, "neither a hex string nor null"},
		{`{"k":"00"`, 1, "no ',' or '}'"},
		{`{"k" "00"}`, 1, "no ':'"},
		{`{"k":"00"} x`, 1, "data after the object"},
		{`{"k":"00"}`, 2, "1 entries, the entries column says 2"},
		{`{"k\q":"00"}`, 1, "bad key"},
		{`{"k`, 1, "bad key"},
	} {
		err := decodeBatch([]byte(c.batch), c.n, func(string, []byte, bool) {})
		if !errors.Is(err, errBatch) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("decode %q: %v, want %q", c.batch, err, c.want)
		}
	}
}

// TestMergeRuns: runs merge stably (equal rows keep their order).
func TestMergeRuns(t *testing.T) {
	mk := func(key string, epoch int64, v string) logRow {
		return logRow{step: "s", key: key, epoch: epoch, value: []byte(v)}
	}
	rows := []logRow{mk("a", 1, "1"), mk("c", 1, "1"), mk("a", 2, "x"), mk("b", 2, "2"), mk("c", 2, "2"), mk("a", 2, "y"), mk("d", 0, "0")}
	got := mergeRuns(slices.Clone(rows), []int{0, 2, 5, 6})
	var keys []string
	for _, r := range got {
		keys = append(keys, r.key+string(r.value))
	}
	if want := []string{"a1", "ax", "ay", "b2", "c1", "c2", "d0"}; !slices.Equal(keys, want) {
		t.Errorf("merged %v, want %v", keys, want)
	}
}
