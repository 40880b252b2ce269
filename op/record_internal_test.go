package op

import (
	"bytes"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/codec"
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
