package codec

import (
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

type shapeInner struct {
	At   time.Time
	Tags []string
}

type shapeState struct {
	Count  int
	Names  map[string]bool
	Inner  *shapeInner
	Big    big.Int
	Tagged int `cbor:"t"`
	Skip   int `cbor:"-"`
	hidden int
}

type shapeRenamed struct {
	N      int
	Names  map[string]bool
	Inner  *shapeInner
	Big    big.Int
	Tagged int `cbor:"t"`
}

type shapeReordered struct {
	Inner  shapeInner
	Tagged int64 `json:"t"`
	Big    *big.Int
	Names  map[string]bool
	Count  int64
}

type shapeTree struct {
	Value    int
	Children []shapeTree
}

type shapeEmbedded struct {
	shapeInner
	Count int
}

type shapeArray struct {
	_    struct{} `cbor:",toarray"`
	B, A int
}

func TestShape(t *testing.T) {
	_ = shapeState{}.hidden
	got := Shape(reflect.TypeFor[shapeState]())
	want := "{Big:self(big.Int);Count:int64;Inner:{At:self(time.Time);Tags:[]string};Names:map[string]bool;t:int64}"
	if got != want {
		t.Errorf("Shape = %s\nwant    %s", got, want)
	}
	// Same encoding, same shape: field order, pointers, int vs int64, tag source.
	if r := Shape(reflect.TypeFor[shapeReordered]()); r != got {
		t.Errorf("reordered shape %s differs from %s", r, got)
	}
	// A renamed field changes it.
	if r := Shape(reflect.TypeFor[shapeRenamed]()); r == got || !strings.Contains(r, "N:int64") {
		t.Errorf("renamed shape %s", r)
	}
	for _, c := range []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[int](), "int64"},
		{reflect.TypeFor[uint32](), "uint32"},
		{reflect.TypeFor[[]byte](), "[]uint8"},
		{reflect.TypeFor[[4]int8](), "[4]int8"},
		{reflect.TypeFor[map[int]*float32](), "map[int64]float32"},
		{reflect.TypeFor[shapeTree](), "{Children:[]@codec.shapeTree;Value:int64}"},
		{reflect.TypeFor[shapeEmbedded](), "{At:self(time.Time);Count:int64;Tags:[]string}"},
		{reflect.TypeFor[shapeArray](), "array{B:int64;A:int64}"},
		{reflect.TypeFor[any](), "interface(interface {})"},
	} {
		if got := Shape(c.t); got != c.want {
			t.Errorf("Shape(%s) = %s, want %s", c.t, got, c.want)
		}
	}
}

// TestStrictDecoding: a stored field the type no longer has is an error,
// not a value dropped silently.
func TestStrictDecoding(t *testing.T) {
	type old struct{ N int }
	type renamed struct{ Count int }
	b, err := Marshal(old{N: 5})
	if err != nil {
		t.Fatal(err)
	}
	var r renamed
	err = Unmarshal(b, &r)
	if err == nil || !strings.Contains(err.Error(), "unknown field") || !strings.Contains(err.Error(), "was a field renamed or removed?") {
		t.Errorf("decoding {N} into {Count} = %v (value %+v), want an unknown-field error", err, r)
	}
	var o old
	if err := Unmarshal(b, &o); err != nil || o.N != 5 {
		t.Errorf("round trip = %+v, %v", o, err)
	}
}

// BenchmarkDecodeStrict compares the strict decoding mode (unknown fields
// are an error) with the same mode without that check, on a small struct
// state, the per-key path of a resume. Compare the two in one run.
func BenchmarkDecodeStrict(b *testing.B) {
	type state struct {
		Count int
		Sum   int64
		Names []string
	}
	data, err := Marshal(state{Count: 3, Sum: 1 << 40, Names: []string{"a", "bc"}})
	if err != nil {
		b.Fatal(err)
	}
	do := decOptions()
	do.ExtraReturnErrors = 0
	lenient, err := do.DecMode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s state
			if err := Unmarshal(data, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lenient", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s state
			if err := lenient.Unmarshal(data, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
