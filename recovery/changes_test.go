package recovery

import (
	"errors"
	"fmt"
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
	idx := []int32{0, 1, 2, 3, 4, 5}
	b := appendBatch(nil, rows, idx)
	var got []Row
	err := decodeBatch(string(b), int64(len(rows)), func(key string, value []byte, deleted bool) {
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
	err := decodeBatch((` { "a\/b\u00e9\ud83d\ude00\n" : "0a" , "\"" :null } `), 2, func(key string, _ []byte, _ bool) {
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
		err := decodeBatch(c.batch, c.n, func(string, []byte, bool) {})
		if !errors.Is(err, errBatch) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("decode %q: %v, want %q", c.batch, err, c.want)
		}
	}
}

// TestIndexMerge: batches read in any order merge by step, key, epoch
// and seq: among rows of one (step, key, epoch) the one of the highest seq
// comes last, whatever order the batches' keys are in.
func TestIndexMerge(t *testing.T) {
	batches := []logBatch{
		{seq: 5, epoch: 2, step: "s", n: 2, text: `{"a":"79","c":"02"}`},
		{seq: 1, epoch: 1, step: "s", n: 2, text: `{"a":"01","c":"01"}`},
		{seq: 2, epoch: 2, step: "s", n: 2, text: `{"a":"78","b":"02"}`},
		{seq: 3, epoch: 0, step: "s", n: 2, text: `{"d":"00","b\u0000":null}`}, // not sorted
		{seq: 4, epoch: 0, step: "r", n: 1, text: `{"z":"00"}`},
	}
	x, err := indexBatches(batches, 9, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	it := x.rows()
	for r, ok := it.next(); ok; r, ok = it.next() {
		got = append(got, fmt.Sprintf("%s/%q/%d=%x,%v", r.step, r.key, r.epoch, r.value, r.deleted))
	}
	want := []string{
		`r/"z"/0=00,false`,
		`s/"a"/1=01,false`, `s/"a"/2=79,false`,
		`s/"b"/2=02,false`, `s/"b\x00"/0=,true`,
		`s/"c"/1=01,false`, `s/"c"/2=02,false`,
		`s/"d"/0=00,false`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var newest []string
	if err := x.newest(func(i int32) error {
		newest = append(newest, x.text(i))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{`"z":"00"`, `"a":"79"`, `"b":"02"`, `"b\u0000":null`, `"c":"02"`, `"d":"00"`}; !slices.Equal(newest, want) {
		t.Errorf("newest %q, want %q", newest, want)
	}
}
