package codec

import (
	"errors"
	"math"
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
)

type inner struct {
	A int
	B []string
}

type rich struct {
	I    int64
	U    uint8
	F    float64
	S    string
	Bs   []byte
	T    time.Time
	M    map[string]int
	IM   map[int32]inner
	AK   map[[2]int]bool
	P    *inner
	Arr  [3]float32
	Deep map[string][]map[string]*inner
}

func roundTrip[T any](t *testing.T, in T) T {
	t.Helper()
	b, err := Marshal(in)
	if err != nil {
		t.Fatalf("Marshal(%v): %v", in, err)
	}
	var out T
	if err := Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal(%x): %v", b, err)
	}
	return out
}

func TestRoundTripScalars(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 23, 24, 255, 256, -129, math.MaxInt64, math.MinInt64} {
		if got := roundTrip(t, v); got != v {
			t.Errorf("int64 %d: got %d", v, got)
		}
	}
	if got := roundTrip(t, uint64(math.MaxUint64)); got != math.MaxUint64 {
		t.Errorf("uint64 max: got %d", got)
	}
	for _, f := range []float64{0, -0.5, 1.1, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1)} {
		if got := roundTrip(t, f); got != f {
			t.Errorf("float64 %v: got %v", f, got)
		}
	}
	if got := roundTrip(t, math.NaN()); !math.IsNaN(got) {
		t.Errorf("NaN: got %v", got)
	}
	if got := roundTrip(t, float32(math.Inf(-1))); !math.IsInf(float64(got), -1) {
		t.Errorf("float32 -Inf: got %v", got)
	}
	for _, s := range []string{"", "héllo", "\xff\xfe not utf-8", strings.Repeat("x", 1000)} {
		if got := roundTrip(t, s); got != s {
			t.Errorf("string %q: got %q", s, got)
		}
	}
}

func TestRoundTripStruct(t *testing.T) {
	ts := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("X", 3600))
	in := rich{
		I: -42, U: 200, F: math.Inf(1), S: "s", Bs: []byte{0, 1, 2},
		T:    ts,
		M:    map[string]int{"a": 1, "b": 2},
		IM:   map[int32]inner{-3: {A: 1, B: []string{"x"}}},
		AK:   map[[2]int]bool{{1, 2}: true},
		P:    &inner{A: 7},
		Arr:  [3]float32{1, 2.5, -3},
		Deep: map[string][]map[string]*inner{"k": {{"z": {A: 9}}}},
	}
	out := roundTrip(t, in)
	if diff := cmp.Diff(in, out, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	if got := roundTrip(t, time.Time{}); !got.IsZero() {
		t.Errorf("zero time: got %v", got)
	}
}

func TestDeterministic(t *testing.T) {
	m := map[string]int{}
	for i := range 100 {
		m[strings.Repeat("k", i%7)+string(rune('a'+i%26))] = i
	}
	a, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatal("same map encoded to different bytes")
		}
	}
}

func TestOverflowFails(t *testing.T) {
	b, err := Marshal(300)
	if err != nil {
		t.Fatal(err)
	}
	var i8 int8
	if err := Unmarshal(b, &i8); err == nil {
		t.Fatalf("decoding 300 into int8 succeeded with %d", i8)
	}
	b, _ = Marshal(-1)
	var u uint32
	if err := Unmarshal(b, &u); err == nil {
		t.Fatalf("decoding -1 into uint32 succeeded with %d", u)
	}
	b, _ = Marshal(uint64(math.MaxUint64))
	var i64 int64
	if err := Unmarshal(b, &i64); err == nil {
		t.Fatalf("decoding MaxUint64 into int64 succeeded with %d", i64)
	}
}

func TestLargeContainers(t *testing.T) {
	s := make([]int, 200_000) // above the library's default limit of 131072
	if got := roundTrip(t, s); len(got) != len(s) {
		t.Fatalf("got %d elements, want %d", len(got), len(s))
	}
}

// selfEnc encodes itself through unexported fields, which is fine.
type selfEnc struct{ x int }

func (s selfEnc) MarshalCBOR() ([]byte, error)    { return Marshal(s.x) }
func (s *selfEnc) UnmarshalCBOR(b []byte) error   { return Unmarshal(b, &s.x) }
func (s selfEnc) MarshalBinary() ([]byte, error)  { return nil, nil }
func (s *selfEnc) UnmarshalBinary(b []byte) error { return nil }

type binEnc struct{ x int }

func (b binEnc) MarshalBinary() ([]byte, error)  { return []byte{byte(b.x)}, nil }
func (b *binEnc) UnmarshalBinary(p []byte) error { b.x = int(p[0]); return nil }

type onlyMarshal struct{ x int }

func (o onlyMarshal) MarshalCBOR() ([]byte, error) { return Marshal(o.x) }

type withUnexported struct {
	A     int
	inner int
}

type skipped struct {
	A    int
	Fn   func() `cbor:"-"`
	priv int    `json:"-"`
}

type list struct {
	V    int
	Next *list
}

type tree struct {
	Kids map[string]tree
	Arr  []tree
}

type Embedded struct{ X int }
type embedded struct{ Y int }

type embeds struct {
	Embedded
	embedded
}

type embedsPtr struct {
	*embedded
}

type nestedBad struct {
	Outer struct {
		Items []struct{ ch chan int }
	}
}

type ifaceField struct{ V any }

type recursiveSlice []recursiveSlice

func TestCheckType(t *testing.T) {
	_ = skipped{priv: 0}
	_ = withUnexported{inner: 0}
	ok := []any{
		0, int8(0), uint64(0), 0.5, float32(0), "", true, []byte(nil),
		rich{}, &rich{}, map[string]*inner{}, map[uint16][]int{}, map[[4]byte]string{}, map[bool]int{},
		time.Time{}, big.Int{}, &big.Int{}, selfEnc{}, &selfEnc{}, binEnc{}, netip.Addr{},
		skipped{}, list{}, tree{}, embeds{}, recursiveSlice{}, [2][]string{},
	}
	for _, v := range ok {
		if err := CheckType(reflect.TypeOf(v)); err != nil {
			t.Errorf("CheckType(%T) = %v, want nil", v, err)
		}
	}
	bad := []struct {
		v    any
		want string
	}{
		{withUnexported{}, "state type codec.withUnexported: field .inner is unexported (the codec would drop it silently): export it (Inner), or tag it `cbor:\"-\"` to leave it out of snapshots"},
		{onlyMarshal{}, "field .x is unexported"},
		{func() {}, "the type func() is a func"},
		{make(chan int), "is a chan"},
		{unsafe.Pointer(nil), "raw pointer"},
		{uintptr(0), "raw pointer"},
		{complex(1, 2), "complex number"},
		{ifaceField{}, ".V (interface {}) is an interface"},
		{map[string]any{}, "[value] (interface {}) is an interface"},
		{map[float64]int{}, "has map key type float64; keys must be strings, integers, bools or fixed-size arrays of them (floats do not compare exactly: NaN != NaN, -0 == 0); key by an integer"},
		{map[Embedded]int{}, "has map key type codec.Embedded"},
		{nestedBad{}, "field .Outer.Items[].ch is unexported"},
		{embedsPtr{}, "pointer to an unexported struct"},
		{[]map[string]func(){}, "[][value] (func()) is a func"},
		{cbor.Tag{}, "interface"},
	}
	for _, c := range bad {
		err := CheckType(reflect.TypeOf(c.v))
		if err == nil {
			t.Errorf("CheckType(%T) = nil, want error containing %q", c.v, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckType(%T) = %q, want it to contain %q", c.v, err, c.want)
		}
		if !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("CheckType(%T) error does not wrap ErrUnsupportedType", c.v)
		}
	}
	if err := CheckType(nil); err == nil {
		t.Error("CheckType(nil) = nil")
	}

	// TypeError.Path locates the offending part for programs.
	for _, c := range []struct {
		v    any
		path string
	}{
		{withUnexported{}, ".inner"},
		{ifaceField{}, ".V"},
		{map[string]any{}, "[value]"},
		{nestedBad{}, ".Outer.Items[].ch"},
		{[]map[string]func(){}, "[][value]"},
		{func() {}, ""},
	} {
		var te *TypeError
		if err := CheckType(reflect.TypeOf(c.v)); !errors.As(err, &te) || te.Path != c.path {
			t.Errorf("CheckType(%T): error %v, want a *TypeError with Path %q", c.v, err, c.path)
		}
	}
}

func TestToJSON(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{42, `42`},
		{-7, `-7`},
		{uint64(math.MaxUint64), `18446744073709551615`},
		{1.5, `1.5`},
		{math.NaN(), `"NaN"`},
		{math.Inf(1), `"+Inf"`},
		{math.Inf(-1), `"-Inf"`},
		{"a<b>&\"c\"", `"a<b>&\"c\""`},
		{[]byte("hi"), `"aGk="`},
		{nil, `null`},
		{true, `true`},
		{[]int{1, 2}, `[1,2]`},
		{map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{map[int]string{10: "x", -1: "y"}, `{"-1":"y","10":"x"}`},
		{map[[2]int]bool{{1, 2}: true}, `{"[1,2]":true}`},
		{map[bool]int{true: 1}, `{"true":1}`},
		{inner{A: 1, B: []string{"x"}}, `{"A":1,"B":["x"]}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), `"2024-01-02T03:04:05.000000006Z"`},
		{map[string][]map[int]float64{"k": {{1: math.NaN()}}}, `{"k":[{"1":"NaN"}]}`},
	}
	for _, c := range cases {
		b, err := Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ToJSON(b)
		if err != nil {
			t.Errorf("ToJSON(%v): %v", c.v, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("ToJSON(%v) = %s, want %s", c.v, got, c.want)
		}
	}
	for _, bad := range [][]byte{nil, {0x82, 0x01}, {0x01, 0x02}, {0xff}} {
		if got, err := ToJSON(bad); err == nil {
			t.Errorf("ToJSON(%x) = %s, want error", bad, got)
		}
	}
}

func BenchmarkMarshalInt(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Marshal(i); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWellformed(t *testing.T) {
	good, err := Marshal(map[string][]float64{"a": {1.5, math.NaN()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Wellformed(good); err != nil {
		t.Errorf("Wellformed(%x) = %v", good, err)
	}
	for _, bad := range [][]byte{{}, {0x1b, 0xff}, append(append([]byte{}, good...), 0x01), {0xff}} {
		if err := Wellformed(bad); err == nil {
			t.Errorf("Wellformed(%x) = nil, want an error", bad)
		}
	}
}
