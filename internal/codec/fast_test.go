package codec

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// agree checks that Decode and Unmarshal give the same value and the same
// error for data decoded into a fresh T, and reports whether the fast
// path took it.
func agree[T any](t *testing.T, data []byte) (fast bool) {
	t.Helper()
	var got, want T
	gerr := Decode(data, &got)
	werr := Unmarshal(data, &want)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("%T from % x: Decode error %v, Unmarshal error %v", got, data, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) && !(isNaN(got) && isNaN(want)) {
		t.Fatalf("%T from % x: Decode %#v, Unmarshal %#v", got, data, got, want)
	}
	if f, ok := any(got).(float64); ok && werr == nil && math.Signbit(f) != math.Signbit(any(want).(float64)) {
		t.Fatalf("float64 from % x: sign of %v differs from %v", data, got, want)
	}
	var probe T
	return decodeBasic(data, &probe)
}

func isNaN(v any) bool {
	f, ok := v.(float64)
	return ok && math.IsNaN(f)
}

// TestDecodeMatchesUnmarshal: the fast path of Decode must be invisible:
// for what Marshal writes and for arbitrary bytes, it gives what Unmarshal
// gives, value and error.
func TestDecodeMatchesUnmarshal(t *testing.T) {
	enc := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ints := []int64{0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535, 65536, -65537,
		math.MaxInt8, math.MinInt8, math.MaxInt8 + 1, math.MinInt8 - 1, math.MaxInt16, math.MinInt16 - 1,
		math.MaxInt32, math.MinInt32, math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MinInt64}
	for _, n := range ints {
		b := enc(n)
		if !agree[int](t, b) {
			t.Errorf("int %d: the fast path did not take Marshal's encoding % x", n, b)
		}
		agree[int64](t, b)
		agree[int32](t, b)
		agree[int16](t, b)
		agree[int8](t, b)
		agree[uint](t, b)
		agree[uint64](t, b)
		agree[uint32](t, b)
		agree[uint16](t, b)
		agree[uint8](t, b)
		agree[string](t, b)
		agree[float64](t, b)
	}
	big := enc(uint64(math.MaxUint64))
	if !agree[uint64](t, big) {
		t.Error("uint64 max: not fast")
	}
	agree[int](t, big) // out of range: Unmarshal's error
	for _, s := range []string{"", "a", "key-12345", string(make([]byte, 23)), string(make([]byte, 24)), string(make([]byte, 300)), "\xff\xfe not UTF-8"} {
		if !agree[string](t, enc(s)) {
			t.Errorf("string %q: not fast", s)
		}
		agree[int](t, enc(s))
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 65504, 1e300, math.SmallestNonzeroFloat64,
		math.Ldexp(1, -24), math.Ldexp(3, -20), math.Inf(1), math.Inf(-1), math.NaN(), float64(float32(0.1))} {
		b := enc(f)
		if fast := agree[float64](t, b); fast == math.IsNaN(f) {
			t.Errorf("float64 %v (% x): fast %v", f, b, fast)
		}
		agree[int](t, b)
	}
	for h := range 1 << 16 { // every half-precision value
		agree[float64](t, []byte{0xf9, byte(h >> 8), byte(h)})
	}
	for _, v := range []bool{false, true} {
		if !agree[bool](t, enc(v)) {
			t.Errorf("bool %v: not fast", v)
		}
	}
	// Forms Marshal never writes: a longer head, a tag, trailing bytes,
	// indefinite lengths, a byte string, truncation.
	for _, b := range [][]byte{
		{0x18, 0x05}, {0x19, 0x00, 0x05}, {0x1a, 0, 0, 0, 5}, {0x1b, 0, 0, 0, 0, 0, 0, 0, 5},
		{0x38, 0x05}, {0xc2, 0x41, 0x05}, {0x05, 0x00}, {0x61, 'a', 'b'}, {0x62, 'a'},
		{0x7f, 0x61, 'a', 0xff}, {0x41, 'a'}, {0x78, 0x01, 'a'}, {}, {0x18}, {0x1c}, {0xf6}, {0xf7},
		{0xfa, 0x7f, 0xc0, 0, 0}, {0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1},
	} {
		agree[int](t, b)
		agree[uint8](t, b)
		agree[string](t, b)
		agree[bool](t, b)
		agree[float64](t, b)
	}
	// Arbitrary short inputs.
	rng := rand.New(rand.NewPCG(14, 6))
	for range 20000 {
		b := make([]byte, rng.IntN(10))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 0 && rng.IntN(2) == 0 {
			b[0] = []byte{0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x20, 0x38, 0x3b, 0x60, 0x78, 0xf4, 0xf5, 0xf9, 0xfa, 0xfb}[rng.IntN(16)]
		}
		agree[int](t, b)
		agree[int16](t, b)
		agree[uint32](t, b)
		agree[string](t, b)
		agree[bool](t, b)
		agree[float64](t, b)
	}
}

// A named type may decode itself: Decode leaves it to Unmarshal.
type count int

func TestDecodeNamedTypeTakesUnmarshal(t *testing.T) {
	var c count
	if decodeBasic([]byte{0x05}, &c) {
		t.Fatal("the fast path took a named type")
	}
	if err := Decode([]byte{0x05}, &c); err != nil || c != 5 {
		t.Fatalf("Decode = %v, %v", c, err)
	}
}
