package op

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/keyed"
	"github.com/runnel-dev/runnel/internal/keys"
)

type recordTestState struct {
	Count int
	Names []string
	Seen  map[string]bool
}

// encodeRecord must give exactly the bytes of the reflective encoding, so
// the stored format does not depend on which path wrote it.
func TestEncodeRecordMatchesCodec(t *testing.T) {
	check := func(name string, want func() ([]byte, error), got func() ([]byte, error)) {
		t.Helper()
		w, err1 := want()
		g, err2 := got()
		if err1 != nil || err2 != nil || !bytes.Equal(w, g) {
			t.Errorf("%s: encodeRecord = %x, %v; codec = %x, %v", name, g, err2, w, err1)
		}
	}
	wake := time.Unix(1700000000, 5).UTC()
	check("int", func() ([]byte, error) { return codec.Marshal(stateRecord[int]{State: 42}) },
		func() ([]byte, error) { return encodeRecord(42, time.Time{}) })
	check("struct", func() ([]byte, error) {
		return codec.Marshal(stateRecord[recordTestState]{State: recordTestState{3, []string{"a"}, map[string]bool{"x": true, "a": false}}})
	}, func() ([]byte, error) {
		return encodeRecord(recordTestState{3, []string{"a"}, map[string]bool{"x": true, "a": false}}, time.Time{})
	})
	check("with wake", func() ([]byte, error) { return codec.Marshal(stateRecord[string]{State: "s", NotifyAt: &wake}) },
		func() ([]byte, error) { return encodeRecord("s", wake) })
	// And it decodes back through the struct.
	b, _ := encodeRecord([]int{1, 2}, time.Time{})
	var rec stateRecord[[]int]
	if err := codec.Unmarshal(b, &rec); err != nil || len(rec.State) != 2 || rec.NotifyAt != nil {
		t.Errorf("decode: %v %+v", err, rec)
	}
}

// resumeOne resumes one row of key 1 into a fresh node with state S and
// returns the key's entry (nil if it has none) and the error.
func resumeOne[S any](raw []byte) (*keyed.Entry[int, entry[S]], *statefulNode[int, int, S, int], error) {
	n := &statefulNode[int, int, S, int]{table: keyed.NewTable[int, entry[S]](keys.For[int](), false)}
	err := n.resume([][]engine.StateRow{{{Key: "1", Value: raw}}})
	return n.table.Get(1), n, err
}

// A resumed record gives the state and wake-up that decoding it as a
// stateRecord gives, whichever path decodes it, and a record that does not
// decode fails with the stateRecord decoding's error.
func TestResumeDecodesLikeStateRecord(t *testing.T) {
	wake := time.Unix(1700000000, 5).UTC()
	check := func(name string, raw []byte, resume func([]byte) (any, time.Time, bool, error), want func([]byte) (any, error)) {
		t.Helper()
		got, gotWake, scheduled, err := resume(raw)
		w, werr := want(raw)
		switch {
		case werr != nil:
			if err == nil || !strings.Contains(err.Error(), werr.Error()) {
				t.Errorf("%s: resume error %v, want one with %v", name, err, werr)
			}
		case err != nil:
			t.Errorf("%s: resume error %v", name, err)
		case !reflect.DeepEqual(got, w.(stateRecordView).state):
			t.Errorf("%s: state %#v, want %#v", name, got, w.(stateRecordView).state)
		case !gotWake.Equal(w.(stateRecordView).wake) || scheduled != !w.(stateRecordView).wake.IsZero():
			t.Errorf("%s: wake %v (scheduled %v), want %v", name, gotWake, scheduled, w.(stateRecordView).wake)
		}
	}
	intResume := func(raw []byte) (any, time.Time, bool, error) {
		e, n, err := resumeOne[int](raw)
		if e == nil {
			return nil, time.Time{}, false, err
		}
		return e.State.state, e.State.wake, n.table.Timers() == 1, err
	}
	intWant := func(raw []byte) (any, error) {
		var rec stateRecord[int]
		err := codec.Unmarshal(raw, &rec)
		v := stateRecordView{state: rec.State}
		if rec.NotifyAt != nil {
			v.wake = *rec.NotifyAt
		}
		return v, err
	}
	structResume := func(raw []byte) (any, time.Time, bool, error) {
		e, n, err := resumeOne[recordTestState](raw)
		if e == nil {
			return nil, time.Time{}, false, err
		}
		return e.State.state, e.State.wake, n.table.Timers() == 1, err
	}
	structWant := func(raw []byte) (any, error) {
		var rec stateRecord[recordTestState]
		err := codec.Unmarshal(raw, &rec)
		v := stateRecordView{state: rec.State}
		if rec.NotifyAt != nil {
			v.wake = *rec.NotifyAt
		}
		return v, err
	}
	enc := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, n := range []int{0, 1, -1, 1 << 40, -(1 << 40)} {
		check(fmt.Sprint("int ", n), enc(encodeRecord(n, time.Time{})), intResume, intWant)
		check(fmt.Sprint("int with wake ", n), enc(encodeRecord(n, wake)), intResume, intWant)
	}
	st := recordTestState{3, []string{"a"}, map[string]bool{"x": true}}
	check("struct", enc(encodeRecord(st, time.Time{})), structResume, structWant)
	check("struct with wake", enc(encodeRecord(st, wake)), structResume, structWant)
	// Records that do not decode into the state: a string into an int, an
	// int out of range, trailing bytes, an unknown field.
	check("string into int", enc(encodeRecord("x", time.Time{})), intResume, intWant)
	check("uint64 max into int", enc(encodeRecord(uint64(math.MaxUint64), time.Time{})), intResume, intWant)
	check("trailing byte", append(enc(encodeRecord(5, time.Time{})), 0x01), intResume, intWant)
	check("unknown field", enc(codec.Marshal(map[string]int{"state": 1, "other": 2})), intResume, intWant)
	check("struct from int", enc(encodeRecord(7, time.Time{})), structResume, structWant)
}

type stateRecordView struct {
	state any
	wake  time.Time
}

// A migration converts what the whole stateRecord decodes to, whichever
// path decodes it, and fails like the record's decoding.
func TestMigrateStateDecodesLikeStateRecord(t *testing.T) {
	conv := MigrateState(func(n int) (string, error) { return fmt.Sprint("n=", n), nil }).m.convert
	want := func(raw []byte) ([]byte, error) {
		var rec stateRecord[int]
		if err := codec.Unmarshal(raw, &rec); err != nil {
			return nil, err
		}
		var wake time.Time
		if rec.NotifyAt != nil {
			wake = *rec.NotifyAt
		}
		return encodeRecord(fmt.Sprint("n=", rec.State), wake)
	}
	wake := time.Unix(1700000000, 5).UTC()
	mustEnc := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, raw := range map[string][]byte{
		"int":            mustEnc(encodeRecord(5, time.Time{})),
		"negative":       mustEnc(encodeRecord(-1<<40, time.Time{})),
		"int with wake":  mustEnc(encodeRecord(5, wake)),
		"string":         mustEnc(encodeRecord("x", time.Time{})),
		"trailing byte":  append(mustEnc(encodeRecord(5, time.Time{})), 0),
		"unknown field":  mustEnc(codec.Marshal(map[string]int{"state": 1, "other": 2})),
		"out of range":   mustEnc(encodeRecord(uint64(math.MaxUint64), time.Time{})),
		"not a record":   mustEnc(codec.Marshal(7)),
		"header, no val": recordHeader,
	} {
		got, err := conv(raw)
		w, werr := want(raw)
		switch {
		case werr != nil:
			if err == nil || !strings.Contains(err.Error(), werr.Error()) {
				t.Errorf("%s: error %v, want one with %v", name, err, werr)
			}
		case err != nil || !bytes.Equal(got, w):
			t.Errorf("%s: % x, %v; want % x", name, got, err, w)
		}
	}
}
